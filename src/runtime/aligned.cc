// Aligned allocation.
#include "runtime/aligned.h"

#include <sys/mman.h>

namespace moe {

void* aligned_alloc_bytes(size_t bytes) {
  // Large buffers (packed weights, KV caches) start on a 2 MiB boundary and ask for transparent huge
  // pages: filling gigabytes of weights at load then takes 512x fewer page faults.
  constexpr size_t kHuge = size_t(2) << 20;
  const size_t align = bytes >= 2 * kHuge ? kHuge : kAlignment;
  const size_t rounded = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded == 0 ? align : rounded);
  if (p == nullptr) throw std::bad_alloc();
  if (align == kHuge) madvise(p, rounded, MADV_HUGEPAGE);  // a hint: ignored where THP is off
  return p;
}

void aligned_free(void* p) { std::free(p); }

}  // namespace moe
