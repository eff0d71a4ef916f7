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

// A shell command line: its exit code and stdout.
inline MoeResult run_shell(const std::string& cmd) {
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

// `moe <args>` through the shell; merge_stderr folds stderr into out (else it is discarded).
inline MoeResult run_moe(const std::string& args, bool merge_stderr = false) {
  std::string cmd = MOE_BINARY;
  cmd.append(" ").append(args).append(merge_stderr ? " 2>&1" : " 2>/dev/null");
  return run_shell(cmd);
}

// `ENV moe <args>` (e.g. "MOE_THREADS=3"), stderr folded into out.
inline MoeResult run_moe_env(const std::string& env, const std::string& args) {
  std::string cmd = env;
  cmd.append(" ").append(MOE_BINARY).append(" ").append(args).append(" 2>&1");
  return run_shell(cmd);
}

}  // namespace moe::testing
