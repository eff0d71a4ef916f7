// The portable f32 GEMM (gemm_f32_portable.h) compiled with AVX2 flags: 6x16 tiles in 12 ymm
// accumulators, fused multiply-adds (the scalar twin's order of sums, one rounding fewer per term).
#define MOE_GEMM_F32_PORTABLE_FMA 1
#include "kernels/gemm_f32.h"
#include "kernels/gemm_f32_portable.h"

namespace moe::gemm_f32_detail {

void gemm_avx2(GemmOperand a, GemmOperand b, float* c, int64_t ldc, GemmShape s, bool accumulate) {
  gemm_portable(a, b, c, ldc, s, accumulate);
}

void gemm_packed_avx2(GemmOperand a, const float* packed, int64_t packed_k, int64_t p0, float* c, int64_t ldc,
                      GemmShape s, bool accumulate) {
  gemm_packed_portable(a, packed, packed_k, p0, c, ldc, s, accumulate);
}

}  // namespace moe::gemm_f32_detail
