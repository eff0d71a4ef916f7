// Matmul on block-quantized weights (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, MXFP4, IQ4_XS):
//   C[m, n] (+)= A[m, k] . B[n, k]^T, B a WeightView of a block dtype (kernels/quant_blocks.h).
// A is quantized on the fly to 8-bit codes the way llama.cpp's CPU backend quantizes it for each weight
// type (act_format): Q8_0 blocks of 32 (f16-rounded scale max|x| / 127, codes round-to-even(x * 127 / max))
// for Q4_0, Q5_0, Q8_0 and MXFP4; Q8_1 (the same plus the f16 scaled sum) for Q4_1 and Q5_1; Q8_K blocks of
// 256 (scale max / -127 of the signed max) for the K-quants and IQ4_XS. The dot products are then integer, as
// ggml's:
//   Q4_0 / Q5_0 / Q8_0 / MXFP4, per block:  acc += float(sum (q - offset) a) * (d_w * d_a)
//   Q4_1 / Q5_1, per block:                  acc += float(sum q a) * (d_w * d_a) + m_w * s_a
//   Q4_K / Q5_K, per super-block of 256:     acc += float(sum_j sc_j sum q a) * (d_w * d_a)
//                                                   - float(sum_j m_j sum a) * (dmin_w * d_a)
//   Q6_K, per super-block:                   acc += float(sum_j sc_j sum (q - 32) a) * (d_w * d_a)
//   IQ4_XS, per super-block:                 acc += float(sum_j (ls_j - 32) sum v(q) a) * (d_w * d_a)
//     (v: the IQ4_NL grid; the kernels take v + 128 as the unsigned code, offset 128, or v itself signed)
// with exact integer sums and one or two fused multiply-adds per block, in block order, so every kernel
// below gives the same bits, and they differ from llama.cpp only by its order of float additions:
// - matmul_q8_ref: scalar, on the file's row layout or on panels (the reference twin);
// - panel kernels (AVX512-VNNI vpdpbusd; AVX2 vpmaddubsw) on the interleaved layout that pack_quant_panels
//   writes at load: 16 rows per group, per block the 16 rows' scales then their codes arranged so one
//   64-byte line holds 4 consecutive codes of each of the 16 rows (the vpdpbusd operand), nibbles paired.
//   Same bytes as the rows (n padded to 16): memory is not doubled.
#pragma once

#include <cstdint>

#include "kernels/matmul.h"

namespace moe {

// How activations are quantized for a weight type (llama.cpp's vec_dot_type of the type).
enum class ActFormat : uint8_t { kQ8_0, kQ8_1, kQ8_K };
ActFormat act_format(DType weight);
// True for the GGUF block types, whose kernels take A quantized to Q8 rows (act_format); false for float
// weights and for F8_E4M3_B128, whose kernels take f32 A (kernels/fp8_matmul.h).
bool takes_q8_activations(DType weight);

// Rows of quantized activations, each q8_row_bytes(k) bytes: row i is base + idx[i] * row_bytes (idx null:
// + i * row_bytes); scale (optional) multiplies row i's results (a token's routing weight).
struct Q8Rows {
  const uint8_t* base = nullptr;
  int64_t row_bytes = 0;
  const int32_t* idx = nullptr;
  const float* scale = nullptr;
  ActFormat format = ActFormat::kQ8_0;
};

// Bytes of one quantized row of k values (k a multiple of 32; of 256 for kQ8_K): k int8 codes, then k/32
// f32 scales (kQ8_K: k/256 used), k/32 f32 scaled sums (kQ8_1), k/32 int32 and k/16 int16 sums of the
// codes; rounded up to 64 bytes.
int64_t q8_row_bytes(int64_t k);
// x [m, k] (row stride ldx) -> out [m, q8_row_bytes(k)] in the format (bit-identical to ggml's CPU backend).
void quantize_rows_q8(ActFormat format, const float* x, int64_t ldx, int64_t m, int64_t k, uint8_t* out);
// Elements [c0, c1) of one row of length k (c0 and c1 multiples of act_block(format)) into the matching part
// of that row's Q8 layout (row: the whole row's q8_row_bytes(k) bytes): a producer that computes a row in
// column blocks quantizes each block when it is done. Whole rows give quantize_rows_q8's bytes.
void quantize_row_q8_part(ActFormat format, const float* x, int64_t k, int64_t c0, int64_t c1, uint8_t* row);
int64_t act_block(ActFormat format);  // 32, or 256 for kQ8_K
// The same for rows x[idx[i]] (the rows routed to one expert).
void quantize_rows_q8_gathered(ActFormat format, const float* x, int64_t ldx, const int32_t* idx, int64_t m, int64_t k,
                               uint8_t* out);

// C = A . B^T (+ C when accumulate), a.format == act_format(b.dtype), B block-quantized in rows (kRows: ld = row length in elements) or
// panels (kPanels). Dispatches on the ISA; equals quant_matmul_rows_ref bit for bit.
// next (optional): the panels of the product the caller runs next (the next expert's slice of the same
// shape): the decode kernels' look-ahead goes on into it past b's end instead of stopping there.
void matmul_q8(const Q8Rows& a, const WeightView& b, float* c, int64_t ldc, MatmulShape shape, bool accumulate,
               const void* next = nullptr);
// Scalar reference twin on the row layout.
void matmul_q8_ref(const Q8Rows& a, const WeightView& b, float* c, int64_t ldc, MatmulShape shape, bool accumulate);

// AMX-INT8 for prefill-sized products (m >= kAmxMinRows) of the block-of-32 types and IQ4_XS: true when the CPU has
// AMX-INT8 with OS support, the active ISA is AVX-512 (MOE_ISA caps it), MOE_AMX is not 0, and Linux granted
// the tile data permission (arch_prctl, asked once). set_amx_enabled(false) turns it off (tests, benches);
// returns the previous setting.
bool amx_ready();
bool set_amx_enabled(bool enabled);
// From 32 rows: at 16 the tiles beat VNNI with the weights in cache (Q8_0 2048 x 2048, one thread, 315-345 vs
// 372-385 us) but not streaming them (the 151936 x 2048 LM head on two threads, a serving step of 16
// sequences: 19-20 vs 18-19 ms with the tile kernel's look-ahead, 30 vs 17 before it); at 8 VNNI wins both
// (230 vs 278 us, 15 vs 16 ms); at 32, 620-670 vs 870-880 us in cache and 31-34 vs 42-44 ms streaming.
inline constexpr int64_t kAmxMinRows = 32;

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
