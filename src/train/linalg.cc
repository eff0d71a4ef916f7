// Training matmuls: float on the kernels' f32 GEMM (kernels/gemm_f32.h: AVX-512, or its portable
// twin below it), loops for double. Threaded wrappers split the rows of C statically, so results do
// not depend on scheduling (a resumed run reproduces the same bits with the same thread count).
#include "train/linalg.h"

#include <algorithm>

#include "kernels/gemm_f32.h"
#include "runtime/thread_pool.h"

namespace moe::train {
namespace {

template <typename T>
void loop_nt(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool acc) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      T s = 0;
      for (int64_t p = 0; p < k; ++p) s += a[i * k + p] * b[j * k + p];
      c[i * n + j] = acc ? c[i * n + j] + s : s;
    }
  }
}

template <typename T>
void loop_nn(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool acc) {
  for (int64_t i = 0; i < m; ++i) {
    T* ci = c + i * n;
    if (!acc) std::fill(ci, ci + n, T(0));
    for (int64_t p = 0; p < k; ++p) {
      const T av = a[i * k + p];
      const T* bp = b + p * n;
      for (int64_t j = 0; j < n; ++j) ci[j] += av * bp[j];
    }
  }
}

// C[m,n] = A[k, m-block]^T B; lda is the full row length of A (its total m).
template <typename T>
void loop_tn(const T* a, int64_t lda, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool acc) {
  if (!acc) std::fill(c, c + m * n, T(0));
  for (int64_t p = 0; p < k; ++p) {
    const T* bp = b + p * n;
    for (int64_t i = 0; i < m; ++i) {
      const T av = a[p * lda + i];
      if (av == T(0)) continue;
      T* ci = c + i * n;
      for (int64_t j = 0; j < n; ++j) ci[j] += av * bp[j];
    }
  }
}

void tn_float(const float* a, int64_t lda, const float* b, float* c, int64_t m, int64_t n, int64_t k, bool acc) {
  gemm_f32({a, 1, lda}, {b, n, 1}, c, n, {m, n, k}, acc);
}

}  // namespace

template <>
void mm_nt<double>(const double* a, const double* b, double* c, int64_t m, int64_t n, int64_t k, bool acc) {
  loop_nt(a, b, c, m, n, k, acc);
}
template <>
void mm_nn<double>(const double* a, const double* b, double* c, int64_t m, int64_t n, int64_t k, bool acc) {
  loop_nn(a, b, c, m, n, k, acc);
}
template <>
void mm_tn<double>(const double* a, const double* b, double* c, int64_t m, int64_t n, int64_t k, bool acc) {
  loop_tn(a, m, b, c, m, n, k, acc);
}

template <>
void mm_nt<float>(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k, bool acc) {
  gemm_f32({a, k, 1}, {b, 1, k}, c, n, {m, n, k}, acc);
}
template <>
void mm_nn<float>(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k, bool acc) {
  gemm_f32({a, k, 1}, {b, n, 1}, c, n, {m, n, k}, acc);
}
template <>
void mm_tn<float>(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k, bool acc) {
  tn_float(a, m, b, c, m, n, k, acc);
}

namespace {
// Row blocks of at least 16 rows, one per thread.
template <typename Fn>
void split_rows(int64_t m, int64_t cost, Fn&& fn) {
  ThreadPool& pool = thread_pool();
  const int64_t parts = cost < 65536 ? 1 : std::max<int64_t>(1, std::min<int64_t>(pool.size(), m / 16));
  if (parts == 1) return fn(int64_t{0}, m);
  pool.parallel_for(parts, [&](int64_t b, int64_t e, int) {
    for (int64_t p = b; p < e; ++p) fn(m * p / parts, m * (p + 1) / parts);
  });
}
}  // namespace

template <typename T>
void par_mm_nt(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool acc) {
  split_rows(m, m * n * k, [&](int64_t r0, int64_t r1) { mm_nt<T>(a + r0 * k, b, c + r0 * n, r1 - r0, n, k, acc); });
}
template <typename T>
void par_mm_nn(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool acc) {
  split_rows(m, m * n * k, [&](int64_t r0, int64_t r1) { mm_nn<T>(a + r0 * k, b, c + r0 * n, r1 - r0, n, k, acc); });
}
template <typename T>
void par_mm_tn(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool acc) {
  split_rows(m, m * n * k, [&](int64_t r0, int64_t r1) {
    if constexpr (std::is_same_v<T, float>) {
      tn_float(a + r0, m, b, c + r0 * n, r1 - r0, n, k, acc);
    } else {
      loop_tn<T>(a + r0, m, b, c + r0 * n, r1 - r0, n, k, acc);
    }
  });
}

template void par_mm_nt<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, bool);
template void par_mm_nt<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, bool);
template void par_mm_nn<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, bool);
template void par_mm_nn<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, bool);
template void par_mm_tn<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, bool);
template void par_mm_tn<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, bool);

}  // namespace moe::train
