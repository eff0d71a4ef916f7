// Matmul on F8_E4M3_B128 weights, the form block-scaled FP8 checkpoints (DeepSeek-V3 / R1, Kimi-K2,
// Qwen3-FP8: E4M3 codes with weight_scale_inv per 128 x 128 block) are held in at 1.03 bytes per weight:
//   C[m, n] (+)= A[m, k] . B[n, k]^T,  w = fp8(code) * scale  (one f32 rounding, as dequantize_row).
// A stays f32 and the products accumulate in f32, so results are the f32 matmul on the dequantized
// weights up to the order of additions (~1e-6 relative).
// - m < 9 (decode), AVX-512: a streaming kernel converts the codes in registers (16 at a time:
//   sign-extend, shift into the f16 position, vcvtph2ps, times scale * 2^8) and feeds them straight to
//   the FMA tile, so every weight byte is read once;
// - otherwise: slices of B's rows converted to f32 into per-thread scratch (cache-sized), then the f32
//   kernels (m >= 9: the blocked GEMM; the conversion is amortized over the m rows).
// The scalar reference twin is matmul_nt_ref (weight_element dequantizes).
#pragma once

#include <cstdint>

#include "kernels/matmul.h"

namespace moe {

// b: kRows view of F8_E4M3_B128 rows (ld = row length, a multiple of 128). Single-threaded like matmul_nt.
void matmul_fp8(const float* a, int64_t lda, const WeightView& b, float* c, int64_t ldc, MatmulShape shape,
                bool accumulate);

// Rows [r0, r0 + rows) of b, k columns, to f32 dst [rows, k]; bit for bit dequantize_row.
void fp8_rows_to_f32(const WeightView& b, int64_t r0, int64_t rows, int64_t k, float* dst);

}  // namespace moe
