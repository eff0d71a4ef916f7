// Dense matrix products for training, in float (kernels/gemm_f32.h, split across thread_pool())
// and double (plain loops, for finite-difference gradient checks). Row-major, natural strides.
//   mm_nt: C[m,n] (+)= A[m,k] . B[n,k]^T   (forward of a Linear with weight B [out, in])
//   mm_nn: C[m,n] (+)= A[m,k] . B[k,n]     (dX = dY . W)
//   mm_tn: C[m,n] (+)= A[k,m]^T . B[k,n]   (dW = dY^T . X)
#pragma once

#include <cstdint>

namespace moe::train {

// Single-threaded (callers that already split work, e.g. one expert per task, use these).
template <typename T>
void mm_nt(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool accumulate);
template <typename T>
void mm_nn(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool accumulate);
template <typename T>
void mm_tn(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool accumulate);

// The same, with the rows of C split across thread_pool() (deterministic static split).
template <typename T>
void par_mm_nt(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool accumulate);
template <typename T>
void par_mm_nn(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool accumulate);
template <typename T>
void par_mm_tn(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool accumulate);

}  // namespace moe::train

#include "runtime/thread_pool.h"

namespace moe::train {

// fn(begin, end) over [0, n) split across thread_pool(), or inline when the work
// (n x cost per item, in rough multiply-adds) is too small to pay for waking the threads.
template <typename Fn>
void parallel_items(int64_t n, int64_t cost_per_item, Fn&& fn) {
  if (n <= 0) return;
  if (n * cost_per_item < 65536 || thread_pool().size() == 1) return fn(int64_t{0}, n);
  thread_pool().parallel_for(n, [&](int64_t b, int64_t e, int) { fn(b, e); });
}

}  // namespace moe::train
