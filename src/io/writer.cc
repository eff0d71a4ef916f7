// Atomic writers: safetensors files and text files (temporary name, fsync, rename).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "util/error.h"

namespace moe {

namespace {

// The pid a temporary's name ends with ("x.tmp.123", ".tmp-step-5-123"), or 0.
pid_t owner_pid(const std::string& name, const std::string& marker) {
  const size_t at = name.rfind(marker);
  if (at == std::string::npos) return 0;
  const std::string digits = name.substr(name.find_last_not_of("0123456789") + 1);
  if (digits.empty() || digits.size() > 9 || name.size() - digits.size() != at + marker.size()) return 0;
  return static_cast<pid_t>(std::stol(digits));
}

bool process_gone(pid_t pid) { return pid > 0 && pid != getpid() && ::kill(pid, 0) != 0 && errno == ESRCH; }

}  // namespace

TempFile::TempFile(const std::string& path) : path_(path), tmp_(path + ".tmp." + std::to_string(getpid())) {
  const std::filesystem::path p(path);
  remove_stale_temporaries(p.has_parent_path() ? p.parent_path().string() : ".", p.filename().string());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("io", "{}: cannot create temporary file {}: {}", path_, tmp_, std::strerror(errno));
}

TempFile::~TempFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void TempFile::write(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("io", "{}: write failed: {}", tmp_, std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void TempFile::commit() {
  if (::fsync(fd_) != 0) fail("io", "{}: fsync failed: {}", tmp_, std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    fail("io", "{}: rename from {} failed: {}", path_, tmp_, std::strerror(errno));
  }
  committed_ = true;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const TensorToWrite& t : tensors) {
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) fail("safetensors", "{}: tensor '{}': negative dimension", path, t.name);
      numel *= static_cast<uint64_t>(d);
    }
    if (numel * dtype_size(t.dtype) != t.bytes.size()) {
      fail("safetensors", "{}: tensor '{}': shape needs {} bytes, {} given", path, t.name, numel * dtype_size(t.dtype),
           t.bytes.size());
    }
    if (header.contains(t.name)) fail("safetensors", "{}: tensor '{}' given twice", path, t.name);
    offset = (offset + 7) / 8 * 8;
    offsets.push_back(offset);
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(json.size()) >> (8 * i));

  TempFile out(path);
  out.write(len, 8);
  out.write(json.data(), json.size());
  uint64_t written = 0;
  static const uint8_t kZeros[8] = {};
  for (size_t i = 0; i < tensors.size(); ++i) {
    out.write(kZeros, offsets[i] - written);
    out.write(tensors[i].bytes.data(), tensors[i].bytes.size());
    written = offsets[i] + tensors[i].bytes.size();
  }
  out.commit();
}

int remove_stale_temporaries(const std::string& dir, const std::string& only_of) {
  namespace fs = std::filesystem;
  int removed = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const bool file_tmp =
        (only_of.empty() || name.rfind(only_of + ".tmp.", 0) == 0) && process_gone(owner_pid(name, ".tmp."));
    const bool dir_tmp = only_of.empty() && name.rfind(".tmp-", 0) == 0 && process_gone(owner_pid(name, "-"));
    if (file_tmp || dir_tmp) {
      std::error_code rm;
      fs::remove_all(e.path(), rm);
      removed += !rm;
    }
  }
  return removed;
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  TempFile out(path);
  out.write(contents.data(), contents.size());
  out.commit();
}

}  // namespace moe
