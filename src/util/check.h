// MOE_CHECK: invariants inside the core. A failed check is a bug, not bad input:
// it prints file:line and the condition, then aborts (nothing throws across threads).
#pragma once

namespace moe::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* condition, const char* message);
}  // namespace moe::detail

#define MOE_CHECK(cond)                                                      \
  do {                                                                       \
    if (!(cond)) ::moe::detail::check_failed(__FILE__, __LINE__, #cond, ""); \
  } while (0)

#define MOE_CHECK_MSG(cond, msg)                                              \
  do {                                                                        \
    if (!(cond)) ::moe::detail::check_failed(__FILE__, __LINE__, #cond, msg); \
  } while (0)
