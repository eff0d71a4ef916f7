// Matmul on block-quantized weights (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, MXFP4):
//   C[m, n] (+)= A[m, k] . B[n, k]^T, B a WeightView of a block dtype (kernels/quant_blocks.h).
// A is quantized on the fly to 8-bit blocks of 32 ("Q8 rows": int8 codes, an f32 scale per 32, and the
// scaled sums of the codes per 32 and per 16), and every weight block is computed on as unsigned integer
// codes with an f32 scale and offset per sub-block of 32 (16 for Q6_K):
//   w = sw * code + mw          (Q4_0: code = nibble, mw = -8 sw; Q8_0: code = q + 128, mw = -128 sw; ...)
//   C[i, j] = sum over sub-blocks s of  float(sum_p code[j, p] * qa[i, p]) * (sw_s * da_s) + mw_s * sa_s
// with da the activation block's scale and sa = da * sum_p qa[i, p]. Integer sums are exact; the f32 steps
// are two fused multiply-adds per sub-block in sub-block order, so every kernel below gives the same bits:
// - quant_matmul_rows_ref: scalar, on the file's row layout (the reference twin);
// - panel kernels (AVX512-VNNI vpdpbusd; AVX2 vpmaddubsw) on the interleaved layout that pack_quant_panels
//   writes at load: 16 rows per group, per block the 16 rows' scales then their codes arranged so one
//   64-byte line holds 4 consecutive codes of each of the 16 rows (the vpdpbusd operand), nibbles paired.
//   Same bytes as the rows (n padded to 16): memory is not doubled.
// Accuracy against f32: the weights' own quantization plus ~0.5% relative from the 8-bit activations.
#pragma once

#include <cstdint>

#include "kernels/matmul.h"

namespace moe {

// Rows of quantized activations, each q8_row_bytes(k) bytes: row i is base + idx[i] * row_bytes (idx null:
// + i * row_bytes); scale (optional) multiplies row i's results (a token's routing weight).
struct Q8Rows {
  const uint8_t* base = nullptr;
  int64_t row_bytes = 0;
  const int32_t* idx = nullptr;
  const float* scale = nullptr;
};

// Bytes of one quantized row of k values (k a multiple of 32): k int8, then k/32 f32 scales d, k/32 f32
// sums d * sum(q) per 32, k/16 f32 sums per 16; rounded up to 64 bytes.
int64_t q8_row_bytes(int64_t k);
// x [m, k] (row stride ldx) -> out [m, q8_row_bytes(k)]. d = max|x| / 127, q = round-to-even(x / d).
void quantize_rows_q8(const float* x, int64_t ldx, int64_t m, int64_t k, uint8_t* out);
// The same for rows x[idx[i]] (the rows routed to one expert).
void quantize_rows_q8_gathered(const float* x, int64_t ldx, const int32_t* idx, int64_t m, int64_t k, uint8_t* out);

// C = A . B^T (+ C when accumulate), B block-quantized in rows (kRows: ld = row length in elements) or
// panels (kPanels). Dispatches on the ISA; equals quant_matmul_rows_ref bit for bit.
void matmul_q8(const Q8Rows& a, const WeightView& b, float* c, int64_t ldc, MatmulShape shape, bool accumulate);
// Scalar reference twin on the row layout.
void matmul_q8_ref(const Q8Rows& a, const WeightView& b, float* c, int64_t ldc, MatmulShape shape, bool accumulate);

// True when the active ISA has panel kernels for block types (AVX2 or better).
bool quant_panels_supported();
inline constexpr int64_t kQuantGroupRows = 16;
// Bytes of [n, k] in panels: n rounded up to 16 rows of dtype_row_bytes(k).
size_t quant_panel_bytes(DType dtype, int64_t n, int64_t k);
// src: kRows view of [n, k] (row stride src.ld elements); dst: quant_panel_bytes bytes, 64-byte aligned.
// Rows past n are zero blocks (all scales zero). Returns the kPanels view (ld = k).
WeightView pack_quant_panels(const WeightView& src, int64_t n, int64_t k, void* dst);
// Element (row j, column p) of a block-quantized view of either layout, dequantized (reference paths).
float quant_weight_element(const WeightView& b, int64_t j, int64_t p);
// Back to the file's row layout (dst [n] rows of dtype_row_bytes(k)): the same bytes pack_quant_panels read.
void unpack_quant_panels(const WeightView& src, int64_t n, int64_t k, void* dst);

}  // namespace moe
