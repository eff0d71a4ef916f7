// Dispatch of the NT matmul kernels and the scalar reference twin.
#include "kernels/matmul.h"

#include "runtime/cpu_features.h"
#include "util/check.h"

namespace moe {
namespace {

inline float load_weight(const WeightView& b, int64_t row, int64_t col) {
  if (b.dtype == DType::kBF16) return bf16_to_f32(static_cast<const uint16_t*>(b.data)[row * b.ld + col]);
  return static_cast<const float*>(b.data)[row * b.ld + col];
}

// Portable f32-accumulating kernel (the scalar dispatch target; auto-vectorizes to SSE2).
void matmul_nt_scalar(const float* a, int64_t lda, const WeightView& b, float* c, int64_t ldc, MatmulShape s,
                      bool accumulate) {
  for (int64_t i = 0; i < s.m; ++i) {
    const float* ar = a + i * lda;
    for (int64_t j = 0; j < s.n; ++j) {
      float acc = 0.0f;
      if (b.dtype == DType::kBF16) {
        const uint16_t* br = static_cast<const uint16_t*>(b.data) + j * b.ld;
        for (int64_t p = 0; p < s.k; ++p) acc += ar[p] * bf16_to_f32(br[p]);
      } else {
        const float* br = static_cast<const float*>(b.data) + j * b.ld;
        for (int64_t p = 0; p < s.k; ++p) acc += ar[p] * br[p];
      }
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc : acc;
    }
  }
}

}  // namespace

void matmul_nt_ref(const float* a, int64_t lda, const WeightView& b, float* c, int64_t ldc, MatmulShape s,
                   bool accumulate) {
  MOE_CHECK(b.dtype == DType::kF32 || b.dtype == DType::kBF16);
  for (int64_t i = 0; i < s.m; ++i) {
    for (int64_t j = 0; j < s.n; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < s.k; ++p) acc += double(a[i * lda + p]) * double(load_weight(b, j, p));
      c[i * ldc + j] = static_cast<float>(accumulate ? double(c[i * ldc + j]) + acc : acc);
    }
  }
}

void matmul_nt(const float* a, int64_t lda, const WeightView& b, float* c, int64_t ldc, MatmulShape shape,
               bool accumulate) {
  MOE_CHECK(b.dtype == DType::kF32 || b.dtype == DType::kBF16);
  matmul_nt_scalar(a, lda, b, c, ldc, shape, accumulate);
}

void matmul_nt_dual(const float* a, int64_t lda, const WeightView& b0, const WeightView& b1, float* c0, float* c1,
                    int64_t ldc, MatmulShape shape) {
  matmul_nt(a, lda, b0, c0, ldc, shape, false);
  matmul_nt(a, lda, b1, c1, ldc, shape, false);
}

}  // namespace moe
