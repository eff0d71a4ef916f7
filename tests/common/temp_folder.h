// A folder of the test process's own, "<system temp>/<prefix>_<pid>", removed with what it holds when the
// object is destroyed (a static one: when the process exits), by the process that made it only (not a
// forked death-test child). Runs side by side do not share files, and none are left behind.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace moe::testing {

class ProcessTempFolder {
 public:
  explicit ProcessTempFolder(const std::string& prefix)
      : path_(std::filesystem::temp_directory_path() / (prefix + "_" + std::to_string(::getpid()))),
        owner_(::getpid()) {
    std::filesystem::create_directories(path_);
  }
  ~ProcessTempFolder() {
    std::error_code ec;
    if (::getpid() == owner_) std::filesystem::remove_all(path_, ec);
  }
  ProcessTempFolder(const ProcessTempFolder&) = delete;
  ProcessTempFolder& operator=(const ProcessTempFolder&) = delete;

  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
  pid_t owner_;
};

}  // namespace moe::testing
