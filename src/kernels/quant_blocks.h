// Block-quantized weight formats (the GGUF / ggml block types in util/dtype.h): scalar reference
// codecs in the file layout. dequantize_row is the reference every kernel is tested against (and is
// bit-identical to ggml's dequantize_row_*); quantize_row implements ggml's reference quantizers
// (without importance weights), bit-identical for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4 and IQ4_XS and the
// same algorithm for the K-quants. Layouts of one block (little-endian, packed):
//   Q4_0  f16 d | u8 qs[16]           element j: low nibble of qs[j] (j < 16), high nibble of qs[j-16]
//   Q4_1  f16 d | f16 m | u8 qs[16]
//   Q5_0  f16 d | u8 qh[4] | qs[16]   bit j of the u32 qh is element j's fifth bit
//   Q5_1  f16 d | f16 m | qh[4] | qs[16]
//   Q8_0  f16 d | i8 qs[32]
//   MXFP4 u8 e  | u8 qs[16]           value = kFp4Values[nibble] * 2^(e - 128)
//   Q4_K  f16 d | f16 dmin | u8 scales[12] | qs[128]   (256 elements, 8 sub-blocks of 32)
//   Q5_K  as Q4_K | qh[32] before qs
//   Q6_K  ql[128] | qh[64] | i8 scales[16] | f16 d     (16 sub-blocks of 16)
//   IQ4_XS f16 d | u16 scales_h | u8 scales_l[4] | qs[128]   (8 sub-blocks of 32; sub-block ib's scale
//         ls = low nibble ib % 2 of scales_l[ib / 2] | bits 2ib, 2ib + 1 of scales_h << 4; its elements j < 16
//         in the low nibbles of qs[16 ib + j], j >= 16 in the high ones: value = d (ls - 32) kIq4nlValues[nibble])
#pragma once

#include <cstdint>

#include "util/dtype.h"

namespace moe {

// The FP4 (E2M1) values times 2, as ggml stores them for MXFP4 (the scale is halved to match).
inline constexpr int8_t kFp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// IQ4_NL / IQ4_XS's non-linear 4-bit grid (ggml's kvalues_iq4nl).
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// 2^(e - 128): MXFP4's E8M0 scale halved (kFp4Values are doubled). e = 0 and 1 give subnormals.
float e8m0_to_f32_half(uint8_t e);

// Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed scale bytes.
void k_scale_min(int j, const uint8_t* scales, uint8_t* sc, uint8_t* mn);

// n elements (a multiple of dtype_block_elems(t)) of one row in t's block layout -> f32.
// t may also be any float dtype (converted element by element).
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

// True for the block types quantize_row writes.
bool quantize_supported(DType t);
// f32 row of n elements (a multiple of the block) -> t's blocks. The input must be finite.
void quantize_row(DType t, const float* src, void* dst, int64_t n);

}  // namespace moe
