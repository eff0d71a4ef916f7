// Shared by the libFuzzer targets: the input as a file without touching the disk (a memfd reached
// through /proc/self/fd), and the rule every target checks: a moe::Error is an accepted answer to
// hostile bytes; a crash, a sanitizer report, a hang, an input-driven huge allocation or any other
// exception type (which the CLI would print as "unexpected error", naming no file or field) is a
// finding.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "util/error.h"

namespace moe::fuzz {

class MemFile {
 public:
  explicit MemFile(const char* name) : fd_(memfd_create(name, MFD_CLOEXEC)) {
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;

  // Replaces the file's bytes; returns a path that opens them.
  const std::string& write(const uint8_t* data, size_t size) {
    if (ftruncate(fd_, 0) != 0) std::abort();
    size_t done = 0;
    while (done < size) {
      const ssize_t n = pwrite(fd_, data + done, size - done, static_cast<off_t>(done));
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
    return path_;
  }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

// Runs fn; a moe::Error is fine, any other exception aborts (a finding) with its message.
template <typename Fn>
void expect_moe_errors_only(const char* what, Fn&& fn) {
  try {
    fn();
  } catch (const moe::Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: an exception other than moe::Error escaped: %s\n", what, e.what());
    std::abort();
  }
}

// A finding that is not a crash: a property the parser must keep.
inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace moe::fuzz
