// Failure path of MOE_CHECK.
#include "util/check.h"

#include <cstdio>
#include <cstdlib>

namespace moe::detail {

void check_failed(const char* file, int line, const char* condition, const char* message) {
  std::fprintf(stderr, "moe: internal check failed at %s:%d: %s %s\n", file, line, condition, message);
  std::fflush(stderr);
  std::abort();
}

}  // namespace moe::detail
