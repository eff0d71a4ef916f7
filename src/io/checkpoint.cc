// Checkpoint: one safetensors file, a model folder, or shards listed by model.safetensors.index.json.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/json_keys.h"
#include "io/safetensors.h"
#include "util/error.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
constexpr const char* kComponent = "safetensors";

nlohmann::json read_index(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) fail_usage(kComponent, "{}: is a folder; expected the shard index file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(kComponent, "{}: cannot open the shard index", path);
  std::ostringstream text;
  text << in.rdbuf();
  nlohmann::json index;
  DuplicateKey dup;
  try {
    index = parse_json_checking_keys(text.str(), &dup);
  } catch (const nlohmann::json::exception& e) {
    fail(kComponent, "{}: shard index is not valid JSON: {}", path, e.what());
  }
  if (dup.parent == "weight_map" && dup.depth == 2) {
    fail(kComponent, "{}: weight_map names tensor '{}' twice", path, dup.key);
  }
  if (!dup.key.empty()) fail(kComponent, "{}: key '{}' appears twice in one object", path, dup.key);
  return index;
}

// fs::exists without its exception: a name longer than the system allows (fuzzing found a shard name of
// 1,200 bytes: std::filesystem_error escaped, naming no field) or a denied folder is reported in *why.
bool exists_checked(const fs::path& p, std::string* why) {
  std::error_code ec;
  const bool found = fs::exists(p, ec);
  *why = ec ? ec.message() : std::string();
  return found && !ec;
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& path, bool header_only) {
  Checkpoint c;
  c.path_ = path;
  auto open_file = [&](const std::string& p) {
    return header_only ? SafetensorsFile::open_header_only(p) : SafetensorsFile::open(p);
  };
  auto add_file = [&](SafetensorsFile f) {
    const size_t idx = c.files_.size();
    for (const TensorInfo& t : f.tensors()) {
      if (c.where_.count(t.name)) {
        fail(kComponent, "{}: tensor '{}' appears in both {} and {}", path, t.name, c.files_[c.where_[t.name]].path(),
             f.path());
      }
      c.where_[t.name] = idx;
    }
    c.files_.push_back(std::move(f));
  };

  std::string why;
  if (!exists_checked(path, &why)) fail(kComponent, "{}: {}", path, why.empty() ? "no such file or directory" : why);
  std::error_code dir_ec;
  if (!fs::is_directory(path, dir_ec)) {
    add_file(open_file(path));
    return c;
  }
  const fs::path dir(path);
  const fs::path index_path = dir / "model.safetensors.index.json";
  if (exists_checked(index_path, &why)) {
    const nlohmann::json index = read_index(index_path.string());
    auto wm = index.find("weight_map");
    if (wm == index.end() || !wm->is_object()) {
      fail(kComponent, "{}: missing object field 'weight_map' (tensor name -> shard file)", index_path.string());
    }
    std::map<std::string, std::vector<std::string>> by_shard;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it->is_string()) fail(kComponent, "{}: weight_map['{}'] must be a file name", index_path.string(), it.key());
      const std::string& shard = it->get_ref<const std::string&>();
      // Shards sit beside the index: a path out of the folder (or to a device) is never a shard.
      if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos ||
          shard.find('\0') != std::string::npos) {
        fail(kComponent, "{}: weight_map['{}'] is {:?}; expected the name of a shard file in this folder",
             index_path.string(), it.key(), shard);
      }
      by_shard[it->get<std::string>()].push_back(it.key());
    }
    for (const auto& [shard, names] : by_shard) {
      const fs::path shard_path = dir / shard;
      if (!exists_checked(shard_path, &why)) {
        fail(kComponent, "{}: shard '{}' (holding '{}' and {} more) is {}", index_path.string(), shard, names.front(),
             names.size() - 1, why.empty() ? "missing" : "unusable: " + why);
      }
      add_file(open_file(shard_path.string()));
      for (const std::string& n : names) {
        auto w = c.where_.find(n);
        if (w == c.where_.end() || c.files_[w->second].path() != shard_path.string()) {
          fail(kComponent, "{}: weight_map says '{}' is in '{}' but that shard has no such tensor", index_path.string(),
               n, shard);
        }
      }
    }
    return c;
  }
  const fs::path single = dir / "model.safetensors";
  if (exists_checked(single, &why)) {
    add_file(open_file(single.string()));
    return c;
  }
  fail(kComponent, "{}: no model.safetensors or model.safetensors.index.json in this folder", path);
}

std::vector<std::string> Checkpoint::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(where_.size());
  for (const auto& [n, i] : where_) names.push_back(n);
  return names;
}

bool Checkpoint::has(const std::string& name) const { return where_.count(name) != 0; }

const SafetensorsFile& Checkpoint::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail(kComponent, "{}: checkpoint has no tensor named '{}'", path_, name);
  return files_[it->second];
}

const TensorInfo& Checkpoint::info(const std::string& name) const { return file_of(name).info(name); }

}  // namespace moe
