// Internal interface of the quantized matmul (quant_matmul.cc) and its per-ISA kernels: the per-type
// block anatomy, and the interleaved panel tile. Not for callers outside src/kernels.
//
// A block is split into a head (its scale fields, concatenated: Q4_K d, dmin, scales[12]; Q6_K d,
// scales[16]; IQ4_XS d, scales_h, scales_l[4]; ...) and raw codes, one per element: the nibble (Q4_0, Q4_1,
// MXFP4, Q4_K, IQ4_XS), the 5-bit code (Q5_0, Q5_1, Q5_K), the 6-bit code (Q6_K), or q ^ 0x80 (Q8_0, i.e.
// q + 128).
// Panel tile of one block of a 16-row group (the same bytes as the 16 rows' blocks):
//   head planes: for each head field, the 16 rows' values contiguous (Q4_K: d[16] f16, dmin[16] f16,
//     then 12 planes of 16 scale bytes);
//   code planes, k-group g = codes 4g..4g+3 of a block; in a 64-byte line byte 4r + j is row r, code 4g + j:
//     4-bit part: block/8 lines, line L holds k-groups 2L (low nibbles) and 2L + 1 (high nibbles);
//     Q5 fifth bits: per k-group 8 bytes, bit 4r + j;
//     Q6_K top two bits: block/16 lines, line H holds k-groups 4H + i at bits 2i, 2i + 1 of each byte;
//     Q8_0: block/4 lines of whole bytes.
//   Order: head planes, then the Q8 lines or [fifth bits | top bits], then the nibble lines.
#pragma once

#include <cstdint>

#include "kernels/prefetch.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_matmul.h"
#include "util/dtype.h"

namespace moe::quant_detail {

// The address kAhead tiles on from tile in a stream of G weight groups of nb tiles each (its block b):
// within the group, else in the groups the stream reads next (G groups on per group passed; a far
// look-ahead may pass several). An integer, not a pointer: past the matrix's end it points at nothing,
// which a prefetch hint may (a pointer may not).
inline uintptr_t ahead_address(const uint8_t* tile, int64_t b, int64_t nb, int k_ahead, int g_streams,
                               int64_t tile_bytes) {
  int64_t passed = 0;
  for (int64_t p = b + k_ahead; p >= nb; p -= nb) ++passed;
  return reinterpret_cast<uintptr_t>(tile) + uintptr_t((k_ahead + passed * (g_streams - 1) * nb) * tile_bytes);
}
// How far the far look-ahead may reach: end, the end of the weights the call reads, and past it next, the
// start of the weights its caller reads next (QuantArgs::next; 0: none).
struct FarReach {
  uintptr_t end = 0, next = 0;
};
// The far look-ahead's address (ahead_address, k_far tiles on), or 0 (no prefetch) where there is none
// (k_far 0) or it would pass reach.end with no reach.next. Past the end it goes as far into next: the
// first groups of a product laid out like this one (an expert's slice, then the next expert's).
inline uintptr_t far_address(const uint8_t* tile, int64_t b, int64_t nb, int k_far, int g_streams, int64_t tile_bytes,
                             FarReach reach) {
  if (k_far == 0) return 0;
  const uintptr_t a = ahead_address(tile, b, nb, k_far, g_streams, tile_bytes);
  if (a < reach.end) return a;
  return reach.next != 0 ? reach.next + (a - reach.end) : 0;
}

// A panel matrix's 16-row weight groups [grp, n_groups) G at a time while G fit, then G / 2 at a time,
// and so on down to 1 (a thread's 12 groups of a 192-column slice: 8 then 4, not 8 then 4 single
// streams): fn.template operator()<W>(first, groups) per chunk of W groups, groups[W] their addresses.
template <int G, typename F>
void for_group_chunks(const uint8_t* base, int64_t group_bytes, int64_t n_groups, F&& fn, int64_t grp = 0) {
  for (; grp + G <= n_groups; grp += G) {
    const uint8_t* groups[G];
    for (int i = 0; i < G; ++i) groups[i] = base + (grp + i) * group_bytes;
    fn.template operator()<G>(grp, groups);
  }
  if constexpr (G > 1) for_group_chunks<G / 2>(base, group_bytes, n_groups, fn, grp);
}

struct QuantFormat {
  DType dtype = DType::kQ4_0;
  int block = 32;     // elements per block
  int sub = 32;       // elements per sub-block (one sw, mw pair)
  int code_bits = 4;  // 4, 5, 6 or 8
  int n_fields = 1;   // head fields
  int field_bytes[20] = {};
  int head_bytes = 0;   // sum of field_bytes
  int block_bytes = 0;  // head_bytes + block * code_bits / 8
  // Offsets within a 16-row tile: the planes of fifth / top bits, then the nibble (or Q8) lines.
  int64_t tile_bits_offset() const { return 16 * head_bytes; }
  int64_t tile_lines_offset() const;
  int64_t tile_bytes() const { return 16 * int64_t(block_bytes); }
};
const QuantFormat& quant_format(DType t);

// GGUF block -> head (head_bytes) and raw codes (block of them).
void split_block(DType t, const uint8_t* block, uint8_t* head, uint8_t* codes);
// The inverse.
void join_block(DType t, const uint8_t* head, const uint8_t* codes, uint8_t* block);
// Row r (0..15) of a tile <-> head and raw codes.
void tile_read(const QuantFormat& f, const uint8_t* tile, int r, uint8_t* head, uint8_t* codes);
void tile_write(const QuantFormat& f, uint8_t* tile, int r, const uint8_t* head, const uint8_t* codes);

// A block's scales as the integer kernels use them: d (f32), and per sub-block the integer scale and min
// (K-quants), or m (Q4_1 / Q5_1).
struct BlockScales {
  float d = 0, dmin = 0;  // dmin: K-quants' min scale, or Q4_1 / Q5_1's m
  int32_t sc[16] = {}, mn[16] = {};
};
void block_scales(DType t, const uint8_t* head, BlockScales* out);
// The unsigned code the integer dot product uses for a raw code (MXFP4: FP4 value * 2 + 12; IQ4_XS: the
// grid value + 128).
inline uint8_t kernel_code(DType t, uint8_t raw);
// What the kernels subtract per unit of an activation block's code sum (the codes' zero point): 8 for
// Q4_0, 16 Q5_0, 128 Q8_0 (codes are q + 128) and IQ4_XS (per 32), 12 MXFP4, 32 Q6_K (per 16), 0 otherwise.
int code_offset(DType t);

// Q8 activation row (see q8_row_bytes).
struct Q8Row {
  const int8_t* q;
  const float* d;        // [k / 32] (kQ8_K: [k / 256])
  const float* s;        // [k / 32] kQ8_1: f16(d * sum q) as f32
  const int32_t* sum32;  // [k / 32]
  const int16_t* sum16;  // [k / 16]
  // [k / sub-block]: the weight codes' zero times the sub-block's code sum, negated (set by the AVX-512
  // VNNI kernels, whose integer dot products start from it; null elsewhere).
  const int32_t* neg_offset = nullptr;
};
inline Q8Row q8_row(const uint8_t* base, int64_t k) {
  const auto* f = reinterpret_cast<const float*>(base + k);
  return {reinterpret_cast<const int8_t*>(base), f, f + k / 32, reinterpret_cast<const int32_t*>(f + 2 * (k / 32)),
          reinterpret_cast<const int16_t*>(f + 3 * (k / 32))};
}
inline const uint8_t* q8_row_ptr(const Q8Rows& a, int64_t i) {
  return a.base + (a.idx ? int64_t(a.idx[i]) : i) * a.row_bytes;
}

// Panel kernels: rows [0, m) of a, weight groups [0, ceil(n / 16)) of b (b.data at group 0), writing
// columns [0, n) of c.
struct QuantArgs {
  Q8Rows a;
  WeightView b;
  float* c = nullptr;
  int64_t ldc = 0;
  MatmulShape s;
  bool accumulate = false;
  const void* next = nullptr;  // matmul_q8's next: where the far look-ahead goes past b's end
};
void quant_panels_avx512vnni(const QuantArgs& args);
// AMX-INT8 tile products for the block-of-32 types and IQ4_XS (quant_amx_supports), the same bits as the
// VNNI kernel; only after amx_ready() (quant_matmul.h). Other types: the VNNI kernel.
void quant_panels_amx(const QuantArgs& args);
bool quant_amx_supports(DType t);
void quant_panels_avx2(const QuantArgs& args);
// Blocks [b0, b1) of one row (x: the row's start) into row (the row's Q8 bytes, length k).
void quantize_part_avx512(ActFormat format, const float* x, int64_t k, int64_t b0, int64_t b1, uint8_t* row);

inline uint8_t kernel_code(DType t, uint8_t raw) {
  if (t == DType::kMXFP4) return static_cast<uint8_t>(kFp4Values[raw & 15] + 12);
  if (t == DType::kIQ4_XS) return static_cast<uint8_t>(kIq4nlValues[raw & 15] + 128);
  return raw;
}

}  // namespace moe::quant_detail
