// Training run folders as model folders (see run_folder.h).
#include "io/run_folder.h"

#include <filesystem>

#include "util/error.h"
#include "util/input_file.h"

namespace moe {

namespace fs = std::filesystem;

bool is_run_folder(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::is_regular_file(fs::path(path) / "latest", ec) &&
         !fs::exists(fs::path(path) / "config.json", ec);
}

std::string resolve_model_path(const std::string& path) {
  std::error_code ec;
  if (!is_run_folder(path)) {
    if (fs::is_directory(path, ec) && !fs::exists(fs::path(path) / "config.json", ec) &&
        fs::exists(fs::path(path) / "metrics.jsonl", ec)) {
      fail("model", "{}: a training run folder without a checkpoint yet (no `latest` file)", path);
    }
    return path;
  }
  const std::string pointer = (fs::path(path) / "latest").string();
  std::string name = read_input_file(pointer, "", "model");
  if (const size_t eol = name.find('\n'); eol != std::string::npos) name.resize(eol);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\r')) name.pop_back();
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
    fail("model", "{}: expected the name of a checkpoint folder in {} (such as step-00000100), found \"{}\"", pointer,
         path, name);
  }
  const fs::path dir = fs::path(path) / name;
  if (!fs::is_directory(dir, ec)) {
    fail("model",
         "{} names {}, but {} does not exist (a stale pointer: the checkpoint was moved or deleted); give one of "
         "the run's step-* folders instead",
         pointer, name, dir.string());
  }
  if (!fs::exists(dir / "config.json", ec)) {
    fail("model", "{} names {}, but {} has no config.json (an incomplete checkpoint)", pointer, name, dir.string());
  }
  return dir.string();
}

}  // namespace moe
