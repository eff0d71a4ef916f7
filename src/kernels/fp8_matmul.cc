// Dispatch of the F8_E4M3_B128 kernels (see fp8_matmul.h).
#include "kernels/fp8_matmul.h"

#include <algorithm>

#include "kernels/matmul_internal.h"
#include "kernels/quant_blocks.h"
#include "runtime/cpu_features.h"
#include "util/check.h"

namespace moe {

void fp8_rows_to_f32(const WeightView& b, int64_t r0, int64_t rows, int64_t k, float* dst) {
  MOE_CHECK(b.dtype == DType::kF8E4M3_B128 && b.layout == WeightLayout::kRows && k % 128 == 0 && k <= b.ld);
  const auto* base = static_cast<const uint8_t*>(b.data);
  const int64_t row_bytes = dtype_row_bytes(b.dtype, b.ld);
  const bool simd = active_isa() >= Isa::kAvx512;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src = base + (r0 + r) * row_bytes;
    if (simd) {
      matmul_detail::fp8_row_to_f32_avx512(src, k, dst + r * k);
    } else {
      dequantize_row(b.dtype, src, dst + r * k, k);
    }
  }
}

void matmul_fp8(const float* a, int64_t lda, const WeightView& b, float* c, int64_t ldc, MatmulShape s,
                bool accumulate) {
  MOE_CHECK(b.dtype == DType::kF8E4M3_B128 && b.layout == WeightLayout::kRows && s.k % 128 == 0);
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < s.m; ++i) std::fill_n(c + i * ldc, s.n, 0.0f);
    return;
  }
  if (s.m < matmul_detail::kGemmMinRows && active_isa() >= Isa::kAvx512) {
    return matmul_detail::decode_fp8_avx512(matmul_detail::MatmulArgs{a, lda, b, c, ldc, s, accumulate});
  }
  // Slices of about 256 KiB of f32 (at least 32 rows, so the GEMM's panels are full), kept in cache.
  const int64_t slice = std::min<int64_t>(s.n, std::max<int64_t>(32, (int64_t{1} << 16) / s.k / 16 * 16));
  auto* w = static_cast<float*>(matmul_detail::scratch(matmul_detail::kScratchFp8, size_t(slice * s.k) * 4));
  for (int64_t j0 = 0; j0 < s.n; j0 += slice) {
    const int64_t nj = std::min(slice, s.n - j0);
    fp8_rows_to_f32(b, j0, nj, s.k, w);
    matmul_nt(a, lda, WeightView{w, DType::kF32, s.k}, c + j0, ldc, {s.m, nj, s.k}, accumulate);
  }
}

}  // namespace moe
