// Input and output path checks (see paths.h): stat() identities, never string comparisons, so
// "./a", "a", a symbolic link to a and a hard link to a are all the same file.
#include "io/paths.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/error.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const FileId&) const = default;
};

bool file_id(const std::string& path, FileId* id, bool* is_dir = nullptr) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  *id = {st.st_dev, st.st_ino};
  if (is_dir) *is_dir = S_ISDIR(st.st_mode);
  return true;
}

// Every input as file identities: a file itself, a folder as the files directly in it.
std::vector<std::pair<FileId, std::string>> input_ids(const std::vector<std::string>& inputs) {
  std::vector<std::pair<FileId, std::string>> ids;
  for (const std::string& in : inputs) {
    FileId id;
    bool dir = false;
    if (in.empty() || !file_id(in, &id, &dir)) continue;
    if (!dir) {
      ids.emplace_back(id, in);
      continue;
    }
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(in, ec)) {
      if (file_id(e.path().string(), &id, &dir) && !dir) ids.emplace_back(id, e.path().string());
    }
  }
  return ids;
}

}  // namespace

void check_output_file(const std::string& path, const std::string& what, const std::vector<std::string>& inputs,
                       const std::string& component) {
  FileId out;
  bool dir = false;
  if (file_id(path, &out, &dir)) {
    if (dir) fail_usage(component, "{} {}: is a folder; expected a file path to write", what, path);
    for (const auto& [id, in] : input_ids(inputs)) {
      if (id == out) {
        fail_usage(component, "{} {}: is the input {} (the same file); writing it would destroy the input", what, path,
                   in);
      }
    }
  }
  const fs::path parent = fs::path(path).has_parent_path() ? fs::path(path).parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(parent, ec))
    fail_usage(component, "{} {}: the folder {} does not exist", what, path, parent.string());
}

void check_output_folder(const std::string& dir, const std::string& what, const std::vector<std::string>& inputs,
                         const std::string& component) {
  FileId out;
  bool is_dir = false;
  if (!file_id(dir, &out, &is_dir)) return;  // created later, so nothing is inside it yet
  if (!is_dir) fail_usage(component, "{} {}: is a file; expected a folder", what, dir);
  for (const std::string& in : inputs) {
    if (in.empty()) continue;
    std::error_code ec;
    // The input and each folder above it: is one of them the output folder?
    for (fs::path p = fs::absolute(in, ec); !p.empty(); p = p.parent_path()) {
      FileId id;
      if (file_id(p.string(), &id) && id == out) {
        fail_usage(component, "{} {}: holds the input {}, which this run could overwrite or delete; use another folder",
                   what, dir, in);
      }
      if (p == p.parent_path()) break;
    }
  }
}

}  // namespace moe
