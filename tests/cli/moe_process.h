// Runs the built `moe` binary (MOE_BINARY) as a child process for the CLI tests: exit code and
// stdout, with stderr discarded or folded into the output.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace moe::testing {

struct MoeResult {
  int code = -1;
  std::string out;
};

// `moe <args>` through the shell; merge_stderr folds stderr into out (else it is discarded).
inline MoeResult run_moe(const std::string& args, bool merge_stderr = false) {
  const std::string cmd = std::string(MOE_BINARY) + " " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {};
  MoeResult r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace moe::testing
