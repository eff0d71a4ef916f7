// Dispatch of the NT matmul kernels on active_isa(), the portable kernel (the scalar
// dispatch target), the scalar reference twin, and the per-thread scratch buffers.
#include "kernels/matmul.h"

#include <cstring>

#include "kernels/matmul_internal.h"
#include "runtime/aligned.h"
#include "runtime/cpu_features.h"
#include "util/check.h"

namespace moe {
namespace {

using matmul_detail::MatmulArgs;

inline float load_weight(const WeightView& b, int64_t row, int64_t col) {
  if (b.dtype == DType::kBF16) return bf16_to_f32(static_cast<const uint16_t*>(b.data)[row * b.ld + col]);
  return static_cast<const float*>(b.data)[row * b.ld + col];
}

// Portable f32-accumulating kernel (the scalar dispatch target; auto-vectorizes to SSE2).
void matmul_nt_scalar(const MatmulArgs& g) {
  const MatmulShape s = g.s;
  for (int64_t i = 0; i < s.m; ++i) {
    const float* ar = g.a + i * g.lda;
    for (int64_t j = 0; j < s.n; ++j) {
      float acc = 0.0f;
      if (g.b.dtype == DType::kBF16) {
        const uint16_t* br = static_cast<const uint16_t*>(g.b.data) + j * g.b.ld;
        for (int64_t p = 0; p < s.k; ++p) acc += ar[p] * bf16_to_f32(br[p]);
      } else {
        const float* br = static_cast<const float*>(g.b.data) + j * g.b.ld;
        for (int64_t p = 0; p < s.k; ++p) acc += ar[p] * br[p];
      }
      float& out = g.c[i * g.ldc + j];
      out = g.accumulate ? out + acc : acc;
    }
  }
}

void check_args(const float* a, int64_t lda, const WeightView& b, const float* c, int64_t ldc, MatmulShape s) {
  MOE_CHECK(b.dtype == DType::kF32 || b.dtype == DType::kBF16);
  MOE_CHECK(s.m >= 0 && s.n >= 0 && s.k >= 0);
  if (s.m == 0 || s.n == 0) return;
  MOE_CHECK(c != nullptr && ldc >= s.n);
  if (s.k == 0) return;
  MOE_CHECK(a != nullptr && lda >= s.k && b.data != nullptr && b.ld >= s.k);
}

}  // namespace

namespace matmul_detail {

void* scratch(int slot, size_t bytes) {
  struct Slots {
    AlignedBuffer<unsigned char> buf[kScratchCount];
  };
  thread_local Slots slots;
  MOE_CHECK(slot >= 0 && slot < kScratchCount);
  AlignedBuffer<unsigned char>& b = slots.buf[slot];
  if (b.size() < bytes) b = AlignedBuffer<unsigned char>(bytes + bytes / 4 + 4096);
  return b.data();
}

}  // namespace matmul_detail

void matmul_nt_ref(const float* a, int64_t lda, const WeightView& b, float* c, int64_t ldc, MatmulShape s,
                   bool accumulate) {
  check_args(a, lda, b, c, ldc, s);
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
  check_args(a, lda, b, c, ldc, shape);
  if (shape.m == 0 || shape.n == 0) return;
  if (shape.k == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < shape.m; ++i) std::memset(c + i * ldc, 0, size_t(shape.n) * sizeof(float));
    return;
  }
  const MatmulArgs g{a, lda, b, c, ldc, shape, accumulate};
  const bool gemm = shape.m >= matmul_detail::kGemmMinRows;
  switch (active_isa()) {
    case Isa::kAvx512Bf16:
      // bf16 weights take the vdpbf16ps kernels at every m (A rounded to bf16), so a token's
      // result does not switch precision with the batch size; f32 weights fall through.
      if (b.dtype == DType::kBF16) {
        return gemm ? matmul_detail::gemm_bf16dot_avx512bf16(g) : matmul_detail::decode_bf16dot_avx512bf16(g);
      }
      [[fallthrough]];
    case Isa::kAvx512:
      return gemm ? matmul_detail::gemm_avx512(g) : matmul_detail::decode_avx512(g);
    case Isa::kAvx2:
      return gemm ? matmul_detail::gemm_avx2(g) : matmul_detail::decode_avx2(g);
    case Isa::kScalar:
      break;
  }
  matmul_nt_scalar(g);
}

void matmul_nt_dual(const float* a, int64_t lda, const WeightView& b0, const WeightView& b1, float* c0, float* c1,
                    int64_t ldc, MatmulShape shape) {
  matmul_nt(a, lda, b0, c0, ldc, shape, false);
  matmul_nt(a, lda, b1, c1, ldc, shape, false);
}

}  // namespace moe
