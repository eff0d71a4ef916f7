// Software prefetch of a byte range, a cache line at a time (any ISA: __builtin_prefetch is prefetcht0 /
// prefetcht1 on x86). The address is an integer, not a pointer: a look-ahead may run past the end of
// what it reads, where a prefetch hint may point (a pointer may not).
#pragma once

#include <cstdint>

namespace moe {

// [p, p + bytes) into L1 (prefetcht0): a near look-ahead.
inline void prefetch_lines(uintptr_t p, int bytes) {
  for (int l = 0; l < bytes; l += 64) __builtin_prefetch(reinterpret_cast<const void*>(p + l), 0, 3);
}
// The same into L2 only (prefetcht1): a far look-ahead, which L1's few miss buffers would not hold.
inline void prefetch_lines_l2(uintptr_t p, int bytes) {
  for (int l = 0; l < bytes; l += 64) __builtin_prefetch(reinterpret_cast<const void*>(p + l), 0, 2);
}

}  // namespace moe
