// Aligned allocation.
#include "runtime/aligned.h"

namespace moe {

void* aligned_alloc_bytes(size_t bytes) {
  const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void aligned_free(void* p) { std::free(p); }

}  // namespace moe
