// Quantized panel kernels for AVX-512 with VNNI (vpdpbusd: u8 weight codes x s8 activation codes, four
// per 32-bit lane): a zmm of 16 lanes is one k-group of the 16 rows of a weight group (quant_internal.h),
// so each vpdpbusd with a broadcast of 4 activation codes advances 16 output columns of one row of A.
// Up to a row tile of A (8 rows, 6 for K-quants: decode and small batches): several weight groups at a
// time (FewRowsPlan), each block's scales decoded where it is reached. More rows: per weight group, its
// row tiles in turn, the first decoding the blocks' scales into a buffer as it streams the group (f32
// block scales, int32 sub-block scales and mins of the K-quants), the others reading them. Either way:
// exact integer sums per block (K-quants: scaled by the sub-block scales in int32), then one or two FMAs
// into f32 lanes. The arithmetic is quant_matmul.cc's block_dot, so the bits are the same.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/avx512_common.h"
#include "kernels/matmul_internal.h"
#include "kernels/quant_internal.h"

namespace moe::quant_detail {
namespace {

inline __m512 load_f16x16(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512 u8x16_to_ps(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)); }
inline __m512i load_line(const uint8_t* p) { return _mm512_loadu_si512(p); }
inline __m512i low_nibbles(__m512i v) { return _mm512_and_si512(v, _mm512_set1_epi8(0x0F)); }
inline __m512i high_nibbles(__m512i v) { return _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F)); }
// A k-group is named kg0 + g: kg0 a multiple of 4 (a sub-block's first k-group), g a constant of the
// unrolled loops, so a line's address is the sub-block's base plus a constant and the half or shift
// (odd g, Q6_K's g % 4) is known at compile time (with one index kg, the compiler redid kg / 2, kg / 4 and
// kg % 4 per k-group).
// The line holding k-group kg0 + g's 4-bit codes: line (kg0 + g) / 2, low nibbles for even g, high for odd.
inline __m512i nibble_line(const uint8_t* lines, size_t kg0, int g) {
  return load_line(lines + kg0 * 32 + (g / 2) * 64);
}
inline __m512i nibbles(const uint8_t* lines, size_t kg0, int g) {
  const __m512i v = nibble_line(lines, kg0, g);
  return (g & 1) ? high_nibbles(v) : low_nibbles(v);
}
// 16 x the 4-bit part of odd k-group kg0 + g (g odd): the line's high nibbles left in place, one and
// instead of a shift and an and (sub_block_sums sums these apart and shifts the sum back).
inline __m512i high_nibbles_x16(const uint8_t* lines, size_t kg0, int g) {
  return _mm512_and_si512(nibble_line(lines, kg0, g), _mm512_set1_epi8(static_cast<char>(0xF0)));
}
// + 16 where the k-group's fifth bit (8 bytes, bit per byte of the line) is set.
inline __m512i add_fifth_bit(__m512i codes, const uint8_t* bits, size_t kg) {
  __mmask64 m;
  std::memcpy(&m, bits + kg * 8, 8);
  return _mm512_mask_add_epi8(codes, m, codes, _mm512_set1_epi8(0x10));
}

// Per type: kBlock, kSub, kTile (bytes of a 16-row tile), kSlots (zmm of decoded scales per block: f32
// d [, f32 m or dmin] [, int32 sub-block scales] [, int32 mins]), scales(tile, slots), codes(tile, kg0, g) the
// unsigned codes of k-group kg0 + g, and kOffset (subtracted per unit of the activation sum: the codes' zero);
// types whose codes are plain nibble lines name where those lines start (kNibbles).
struct Q4_0T {
  static constexpr DType kType = DType::kQ4_0;
  static constexpr int kBlock = 32, kSub = 32, kTile = 288, kSlots = 1, kOffset = 8, kNibbles = 32;
  static void scales(const uint8_t* t, __m512* s) { s[0] = load_f16x16(t); }
  static __m512i codes(const uint8_t* t, size_t kg0, int g) { return nibbles(t + kNibbles, kg0, g); }
};
struct Q4_1T {
  static constexpr DType kType = DType::kQ4_1;
  static constexpr int kBlock = 32, kSub = 32, kTile = 320, kSlots = 2, kOffset = 0, kNibbles = 64;
  static void scales(const uint8_t* t, __m512* s) {
    s[0] = load_f16x16(t);
    s[1] = load_f16x16(t + 32);
  }
  static __m512i codes(const uint8_t* t, size_t kg0, int g) { return nibbles(t + kNibbles, kg0, g); }
};
struct Q5_0T {
  static constexpr DType kType = DType::kQ5_0;
  static constexpr int kBlock = 32, kSub = 32, kTile = 352, kSlots = 1, kOffset = 16;
  static void scales(const uint8_t* t, __m512* s) { s[0] = load_f16x16(t); }
  static __m512i codes(const uint8_t* t, size_t kg0, int g) {
    return add_fifth_bit(nibbles(t + 96, kg0, g), t + 32, kg0 + g);
  }
};
struct Q5_1T {
  static constexpr DType kType = DType::kQ5_1;
  static constexpr int kBlock = 32, kSub = 32, kTile = 384, kSlots = 2, kOffset = 0;
  static void scales(const uint8_t* t, __m512* s) {
    s[0] = load_f16x16(t);
    s[1] = load_f16x16(t + 32);
  }
  static __m512i codes(const uint8_t* t, size_t kg0, int g) {
    return add_fifth_bit(nibbles(t + 128, kg0, g), t + 64, kg0 + g);
  }
};
struct Q8_0T {
  static constexpr DType kType = DType::kQ8_0;
  static constexpr int kBlock = 32, kSub = 32, kTile = 544, kSlots = 1, kOffset = 128;
  static void scales(const uint8_t* t, __m512* s) { s[0] = load_f16x16(t); }
  static __m512i codes(const uint8_t* t, size_t kg0, int g) { return load_line(t + 32 + (kg0 + g) * 64); }
};
struct Mxfp4T {
  static constexpr DType kType = DType::kMXFP4;
  static constexpr int kBlock = 32, kSub = 32, kTile = 272, kSlots = 1, kOffset = 12;
  static void scales(const uint8_t* t, __m512* s) {
    // 2^(e - 128): exponent field e - 1 for e >= 2, the subnormals 2^-128, 2^-127 below.
    const __m512i e = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t)));
    const __m512i normal = _mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(1)), 23);
    const __m512i sub = _mm512_sllv_epi32(_mm512_set1_epi32(0x00200000), e);
    const __mmask16 small = _mm512_cmplt_epu32_mask(e, _mm512_set1_epi32(2));
    s[0] = _mm512_castsi512_ps(_mm512_mask_blend_epi32(small, normal, sub));
  }
  static __m512i codes(const uint8_t* t, size_t kg0, int g) {
    const __m512i table =
        _mm512_broadcast_i32x4(_mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0));
    return _mm512_shuffle_epi8(table, nibbles(t + 16, kg0, g));
  }
};

// Q4_K / Q5_K: the 6-bit scale and min of sub-block j of the 16 rows from the 12 scale planes, as int32.
inline void k_scales_mins(const uint8_t* planes, int j, __m512i* sc, __m512i* mn) {
  auto plane = [planes](int p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(planes + 16 * p)); };
  const __m128i m63 = _mm_set1_epi8(63), m15 = _mm_set1_epi8(15), m3 = _mm_set1_epi8(3);
  __m128i s, m;
  if (j < 4) {
    s = _mm_and_si128(plane(j), m63);
    m = _mm_and_si128(plane(j + 4), m63);
  } else {
    const __m128i hi_s = _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(plane(j - 4), 6), m3), 4);
    const __m128i hi_m = _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(plane(j), 6), m3), 4);
    s = _mm_or_si128(_mm_and_si128(plane(j + 4), m15), hi_s);
    m = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(plane(j + 4), 4), m15), hi_m);
  }
  *sc = _mm512_cvtepu8_epi32(s);
  *mn = _mm512_cvtepu8_epi32(m);
}
template <bool kFive>
struct QKAffineT {
  static constexpr DType kType = kFive ? DType::kQ5_K : DType::kQ4_K;
  static constexpr int kBlock = 256, kSub = 32, kTile = kFive ? 2816 : 2304, kSlots = 18, kOffset = 0;
  static constexpr int kNibbles = kFive ? -1 : 256;  // Q5_K's codes add a fifth bit
  static void scales(const uint8_t* t, __m512* s) {
    s[0] = load_f16x16(t);
    s[1] = load_f16x16(t + 32);
    for (int j = 0; j < 8; ++j) {
      __m512i sc, mn;
      k_scales_mins(t + 64, j, &sc, &mn);
      s[2 + j] = _mm512_castsi512_ps(sc);
      s[10 + j] = _mm512_castsi512_ps(mn);
    }
  }
  static __m512i codes(const uint8_t* t, size_t kg0, int g) {
    if constexpr (kFive) return add_fifth_bit(nibbles(t + 768, kg0, g), t + 256, kg0 + g);
    return nibbles(t + 256, kg0, g);
  }
};
struct Q6_KT {
  static constexpr DType kType = DType::kQ6_K;
  static constexpr int kBlock = 256, kSub = 16, kTile = 3360, kSlots = 17, kOffset = 32;
  static void scales(const uint8_t* t, __m512* s) {
    s[0] = load_f16x16(t);
    for (int j = 0; j < 16; ++j) {
      const __m128i s8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 32 + 16 * j));
      s[1 + j] = _mm512_castsi512_ps(_mm512_cvtepi8_epi32(s8));
    }
  }
  static __m512i codes(const uint8_t* t, size_t kg0, int g) {
    const __m512i top = load_line(t + 288 + kg0 * 16 + (g / 4) * 64);
    __m512i hi;
    switch (g % 4) {  // bits 2i, 2i + 1 of each byte to bits 4, 5
      case 0:
        hi = _mm512_slli_epi16(top, 4);
        break;
      case 1:
        hi = _mm512_slli_epi16(top, 2);
        break;
      case 2:
        hi = top;
        break;
      default:
        hi = _mm512_srli_epi16(top, 2);
        break;
    }
    return _mm512_or_si512(nibbles(t + 1312, kg0, g), _mm512_and_si512(hi, _mm512_set1_epi8(0x30)));
  }
};

// IQ4_XS: the tile's head is d[16] f16, scales_h[16] u16, then 4 planes of scales_l; sub-block j's scale
// less 32 as int32; codes: the nibbles through the grid (kIq4nlValues + 128, offset 128 per 32-sub-block).
struct Iq4XsT {
  static constexpr DType kType = DType::kIQ4_XS;
  static constexpr int kBlock = 256, kSub = 32, kTile = 2176, kSlots = 9, kOffset = 128;
  static void scales(const uint8_t* t, __m512* s) {
    s[0] = load_f16x16(t);
    const __m512i sh = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + 32)));
    for (int j = 0; j < 8; ++j) {
      const __m512i sl = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 64 + 16 * (j / 2))));
      const __m512i lo = _mm512_and_si512(_mm512_srli_epi32(sl, 4 * (j % 2)), _mm512_set1_epi32(15));
      const __m512i hi = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(sh, 2 * j), _mm512_set1_epi32(3)), 4);
      s[1 + j] = _mm512_castsi512_ps(_mm512_sub_epi32(_mm512_or_si512(lo, hi), _mm512_set1_epi32(32)));
    }
  }
  static __m512i codes(const uint8_t* t, size_t kg0, int g) {
    const __m128i grid = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues));
    const __m512i table = _mm512_broadcast_i32x4(_mm_xor_si128(grid, _mm_set1_epi8(static_cast<char>(0x80))));  // + 128
    return _mm512_shuffle_epi8(table, nibbles(t + 128, kg0, g));
  }
};

inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// Where a type's plain nibble lines start (T::kNibbles), or -1.
template <typename T>
constexpr int nibble_lines() {
  if constexpr (requires { T::kNibbles; })
    return T::kNibbles;
  else
    return -1;
}

// Exact integer sum over the kKg k-groups of one sub-block starting at element p0, for R rows of A, less
// the codes' zero times the activations' sum (T::kOffset): a row's first chain starts from that term
// (neg_offset, a broadcast from memory), which saves a subtraction per row and sub-block on the ports the
// dot products use.
// Chains per row: 1 for Q6_K's 4 k-groups (its sub-blocks are independent, so more chains only added
// adds), else more where few rows leave registers free. Plain nibbles with an even count of chains keep
// the odd k-groups (high nibbles) in the odd chains as 16 x their codes: one and per line instead of a
// shift as well, and one exact arithmetic shift per row and sub-block. m 1 on 256 x 2048 (in L2), one
// thread, 3 alternated runs, GFLOP/s: Q4_K 148-149 -> 159-164, Q4_0 143-178 -> 184-185, Q6_K (one chain)
// 94-95 -> 96-98. Streamed from memory at m 1-4 nothing changed: there the reads bound them.
template <typename T, int R, int kKg>
__attribute__((always_inline)) inline void sub_block_sums(const uint8_t* tile, size_t kg0, const Q8Row* rows,
                                                          int64_t p0, __m512i* isum) {
  constexpr int kChains = kKg <= 4 ? 1 : R <= 2 ? 4 : (R <= 4 ? 2 : 1);
  constexpr bool kX16 = nibble_lines<T>() >= 0 && kChains % 2 == 0;
  __m512i acc[R][kChains];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < kChains; ++c)
      acc[r][c] =
          T::kOffset != 0 && c == 0 ? _mm512_set1_epi32(rows[r].neg_offset[p0 / T::kSub]) : _mm512_setzero_si512();
  for (int g = 0; g < kKg; ++g) {
    const __m512i w = kX16 && (g & 1) ? high_nibbles_x16(tile + nibble_lines<T>(), kg0, g) : T::codes(tile, kg0, g);
    for (int r = 0; r < R; ++r)
      acc[r][g % kChains] = _mm512_dpbusd_epi32(acc[r][g % kChains], w, bcast4(rows[r].q + p0 + 4 * g));
  }
  for (int r = 0; r < R; ++r) {
    if constexpr (kX16) {  // sums of 16 x codes: exact multiples of 16
      __m512i even = acc[r][0], odd = acc[r][1];
      for (int c = 2; c < kChains; ++c) (c % 2 ? odd : even) = _mm512_add_epi32(c % 2 ? odd : even, acc[r][c]);
      isum[r] = _mm512_add_epi32(even, _mm512_srai_epi32(odd, 4));
    } else {
      isum[r] = acc[r][0];
      for (int c = 1; c < kChains; ++c) isum[r] = _mm512_add_epi32(isum[r], acc[r][c]);
    }
  }
}

// One block (its decoded scales sc) of one weight group for R rows of A, added into f[r]; K-quants
// prefetch the tile ahead (at address ahead, when not 0) a sub-block's share at a time. Always inlined, as is
// sub_block_sums: at 8 rows the compiler called it per block and tile (the 8 row pointers reloaded, the
// stack realigned), and when it inlined block_rows it called sub_block_sums instead (its accumulators
// through memory). Inlined, 2048 x 2048 on one thread, 3 alternated runs, us: m 16 Q8_0 378-389 -> 328-341,
// Q4_0 392-396 -> 336-339; Q4_K m 4 145-147 -> 120-122; m 1, m 64 and Q6_K unchanged. The later row
// tiles of a many-row product call it through block_rows_call, as before (inlined in their loop as well,
// m 64 went 8% faster for Q8_0 but 10% slower for Q4_0).
template <typename T, int R>
__attribute__((always_inline)) inline void block_rows(const uint8_t* tile, const __m512* sc, const Q8Row* rows,
                                                      int64_t p0, __m512* f, uintptr_t ahead = 0, uintptr_t far = 0) {
  __m512i isum[R];
  if constexpr (T::kBlock == 32) {
    sub_block_sums<T, R, 8>(tile, 0, rows, p0, isum);
    for (int r = 0; r < R; ++r) {
      f[r] =
          _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), _mm512_mul_ps(sc[0], _mm512_set1_ps(rows[r].d[p0 / 32])), f[r]);
      if constexpr (T::kSlots == 2) f[r] = _mm512_fmadd_ps(sc[1], _mm512_set1_ps(rows[r].s[p0 / 32]), f[r]);
    }
    return;
  }
  constexpr bool kMins = T::kType == DType::kQ4_K || T::kType == DType::kQ5_K;
  __m512i sumi[R], summ[R];
  for (int r = 0; r < R; ++r) sumi[r] = summ[r] = _mm512_setzero_si512();
  constexpr int kNSub = T::kBlock / T::kSub, kStep = T::kTile / kNSub;
  for (int j = 0; j < kNSub; ++j) {
    if (ahead != 0) prefetch_lines(ahead + j * kStep, kStep);
    if (far != 0) prefetch_lines_l2(far + j * kStep, kStep);
    const int64_t s0 = p0 + j * T::kSub;
    sub_block_sums<T, R, T::kSub / 4>(tile, size_t(j) * (T::kSub / 4), rows, s0, isum);
    const __m512i scale = _mm512_castps_si512(sc[(kMins ? 2 : 1) + j]);
    for (int r = 0; r < R; ++r) sumi[r] = _mm512_add_epi32(sumi[r], _mm512_mullo_epi32(isum[r], scale));
  }
  if constexpr (kMins) {  // sum_j min_j * asum_j: mins (6 bits) and 32-sums (|.| <= 4064) as int16 pairs
    __m512i pairs[4];
    for (int q = 0; q < 4; ++q)
      pairs[q] = _mm512_or_si512(_mm512_castps_si512(sc[10 + 2 * q]),
                                 _mm512_slli_epi32(_mm512_castps_si512(sc[11 + 2 * q]), 16));
    for (int r = 0; r < R; ++r) {
      const int32_t* a = rows[r].sum32 + p0 / 32;
      for (int q = 0; q < 4; ++q) {
        const uint32_t ap = uint32_t(uint16_t(a[2 * q])) | (uint32_t(uint16_t(a[2 * q + 1])) << 16);
        summ[r] = _mm512_dpwssd_epi32(summ[r], pairs[q], _mm512_set1_epi32(int32_t(ap)));
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const __m512 da = _mm512_set1_ps(rows[r].d[p0 / 256]);
    f[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[r]), _mm512_mul_ps(sc[0], da), f[r]);
    if constexpr (kMins) f[r] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(summ[r]), _mm512_mul_ps(sc[1], da), f[r]);
  }
}

// block_rows as a call (see block_rows): what the later row tiles of a many-row product run.
template <typename T, int R>
__attribute__((noinline)) void block_rows_call(const uint8_t* tile, const __m512* sc, const Q8Row* rows, int64_t p0,
                                               __m512* f) {
  block_rows<T, R>(tile, sc, rows, p0, f);
}

// How decode and small batches walk the weight groups (groups_rows): how many at once, and how many blocks
// ahead the software prefetch runs. A core keeps too few lines in flight on one hardware-prefetch stream
// at a time (11 GB/s read against 16 for four streams on a Sapphire Rapids core); measured there on
// streamed 768 x 2048 experts, GB/s of one thread at m = 1:
//   Q8_0 / Q4_0 from 11.0 / 7.6 (one group at a time, no prefetch) to 17.1 / 15.8 (8 groups, 2 ahead);
//   Q4_K / Q6_K from 6.7 / 7.1 to 13.8 / 12.6 (1 group, 1 ahead spread over the sub-blocks: a whole tile
//   at once loses, the tile being 2-3 KB).
// A group's last blocks prefetch the first blocks of the group that stream takes next (the next chunk of
// G groups: G - 1 groups on): stopping at the group's end left a third of the blocks of a 768-wide
// K-quant matrix (3 blocks per group) without a prefetch. With that, 2 K-quant groups at m = 1 beat 1
// (an AVX-512 Xeon VM without AMX, one thread, 768 x 2048 and 2048 x 768, 3 alternated runs: Q4_K
// 11.8-12.9 -> 13.6-14.0 GB/s, Q6_K 11.4-12.8 -> 13.1-13.9, against a 16.1 read ceiling; 4 groups or 2
// ahead gained nothing more).
// With that prefetch, blocks of 32 at 3-4 rows walk 4 groups (was 2) and at 5-6 rows 2 (was 1): one
// thread, streamed 768 x 2048, 3 alternated runs, GB/s: Q8_0 m 3 / 4 / 5 10.8-11.0 / 10.1-10.7 / 7.5-7.7
// -> 12.6-13.4 / 12.5-12.7 / 9.5-9.8, Q4_0 and MXFP4 alike. At 7-8 rows 2 groups streamed faster too
// but lost up to 30% with the matrix in cache (16 float accumulators live beside 8 integer ones), so 1.
// Again with the sums in registers (groups_rows), 3 alternated runs: Q8_0 at 8 rows streamed +14-19%
// (151936 x 2048 on 2 threads, 768 x 2048 on one) and lost 14-19% in L2, Q4_0 and MXFP4 lost either way.
// Where 7-8 rows occur (a batched decode step's LM head and attention projections) the weights stream
// from memory, so Q8_0 takes 2 there: `bench serve --streams 8` on a Q8_0 Qwen3-30B-A3B-shaped model, 4
// alternated runs, all 4 won: LM head 16.6-18.2 -> 15.5-15.9 ms, attention 4.9-5.5 -> 4.7-5.0, 139.8
// -> 145.9 tokens/s (medians).
// Past one row tile (two tiles, up to 16 rows) a block takes long enough that 2 ahead fell behind memory:
// 6 ahead (151936 x 2048 Q8_0 at m 16 on 2 threads, quant_bench).
// A second, far look-ahead (kFar tiles on, prefetcht1: into L2, which holds many more requests in flight
// than L1's miss buffers) keeps the stream ahead where the first cannot: the K-quants' two streams and
// blocks of 32 at 2-16 rows. One thread, streamed, 3 alternated runs, median ratio to without: Q4_K / Q6_K
// m 1 x1.11 / x1.07 (Q6_K 151936 x 2048 LM head 13.5-14.5 -> 16.3-16.8 GB/s, the read ceiling 15.6-18.6),
// m 2 x1.23 / x1.20; Q8_0 m 2 / 5 / 8 x1.08 / x1.11 / x1.31, Q4_0 and MXFP4 alike. Its cost is instructions:
// in L2 (256 x 2048) m 1 went x0.89-0.98, and blocks of 32 at m 1 x0.73 for Q8_0 while 8 streams with the
// near look-ahead already read at the ceiling, so they have none. Not past the weights the call reads
// (end): a thread's slice of an expert is short enough that 8-16 tiles past it were a few % of its bytes.
// Unless the caller says what it reads next (QuantArgs::next): then on into that, so the next product
// starts with its first tiles on the way (an expert's gate then up slice, the experts' down slices in turn:
// a Q4_K_M layer's experts at 1 token +3% on one thread, +0-3% on two; 4 tokens +1-6%).
// With the far look-ahead, Q6_K (the largest tile, 3360 bytes) streams better one group at a time: the
// AVX-512 + AMX Xeon VM, 2 threads, 12 alternated rounds (medians of 3 each) of 1 against 2 groups, GB/s:
// the 151936 x 2048 LM head won 10 of 12, median ratio x1.04 (e.g. 28.1-29.5 -> 30.3-31.2), 2048 x 768 8
// of 12, x1.03; one thread x1.02-1.04. Q4_K's 768 x 2048 came out even (24.3 against 24.4), so it keeps 2.
template <typename T, int R>
struct FewRowsPlan {
  static constexpr int kStreams = T::kBlock == 32 ? (R == 1                               ? 8
                                                     : R <= 4                             ? 4
                                                     : R <= 6 || T::kType == DType::kQ8_0 ? 2
                                                                                          : 1)
                                                  : (R == 1 && T::kType != DType::kQ6_K ? 2 : 1);
  static constexpr int kAhead = T::kBlock == 32 ? (R > 8 ? 6 : 2) : 1;
  static constexpr int kFar = T::kBlock == 32 ? (R == 1 ? 0 : 16) : 8;
};

// R rows of A (and R2 more, a second row tile) against G weight groups at once (FewRowsPlan), each
// block's scales decoded where it is reached (and, keep_scales given, G 1, kept there for the group's
// later row tiles), the tiles kAhead and kFar blocks on prefetched (past the group's end: in the group this
// stream reads next, which for_group_chunks puts G groups on; past the matrix's end a prefetch is a
// harmless hint, and the far one stops at end). f[g * (R + R2) + r] = row r's 16 columns of group g.
template <typename T, int R, int G, int R2 = 0>
void groups_rows(const uint8_t* const* groups, int64_t nb, const Q8Row* rows, __m512* f, FarReach reach,
                 __m512* keep_scales = nullptr) {
  static_assert(G >= 1);
  constexpr int kRows = R + R2, kAhead = FewRowsPlan<T, kRows>::kAhead, kFar = FewRowsPlan<T, kRows>::kFar;
  // The sums stay in registers through the loop (through f, a pointer, each block stored and reloaded
  // them): 256 x 2048 in L2 at m 8, one thread, 2 alternated runs of 3, GFLOP/s: Q8_0 316 -> 338-368, Q4_0
  // 301-312 -> 346-361, MXFP4 284-292 -> 324-339; other row counts, the K-quants and streamed reads even.
  __m512 acc[G * kRows];
  for (int i = 0; i < G * kRows; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    for (int g = 0; g < G; ++g) {
      const uint8_t* tile = groups[g] + b * T::kTile;
      const uintptr_t ahead = ahead_address(tile, b, nb, kAhead, G, T::kTile);
      const uintptr_t far = far_address(tile, b, nb, kFar, G, T::kTile, reach);
      if (T::kBlock == 32) {
        prefetch_lines(ahead, T::kTile);
        if (far != 0) prefetch_lines_l2(far, T::kTile);
      }
      __m512 sc[T::kSlots];
      T::scales(tile, sc);
      if (keep_scales)
        for (int i = 0; i < T::kSlots; ++i) keep_scales[b * T::kSlots + i] = sc[i];
      block_rows<T, R>(tile, sc, rows, b * T::kBlock, acc + g * kRows, T::kBlock == 32 ? 0 : ahead,
                       T::kBlock == 32 ? 0 : far);
      if constexpr (R2 > 0) block_rows<T, R2>(tile, sc, rows + R, b * T::kBlock, acc + g * kRows + R);
    }
  }
  for (int i = 0; i < G * kRows; ++i) f[i] = acc[i];
}

// A group's later row tiles: its scales as the first tile kept them, the group read from cache.
template <typename T, int R>
void cached_group_rows(const uint8_t* group, int64_t nb, const __m512* scales, const Q8Row* rows, __m512* f) {
  for (int r = 0; r < R; ++r) f[r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b)
    block_rows_call<T, R>(group + b * T::kTile, scales + b * T::kSlots, rows, b * T::kBlock, f);
}

// Row i's 16 (or fewer, at the matrix's edge) results of the group starting at column c0 into C.
inline void store_cols(const QuantArgs& g, int64_t i, int64_t c0, __m512 v) {
  const int64_t cols = std::min<int64_t>(16, g.s.n - c0);
  const __mmask16 mask = static_cast<__mmask16>((1u << cols) - 1);
  if (g.a.scale) v = _mm512_mul_ps(v, _mm512_set1_ps(g.a.scale[i]));
  float* out = g.c + i * g.ldc + c0;
  if (g.accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), v);
  _mm512_mask_storeu_ps(out, mask, v);
}

// The first n rows of A for the kernels: their activation blocks and, where the codes have a zero
// (T::kOffset), each sub-block's negated offset term, kept in this thread's scratch.
template <typename T>
void load_rows(const QuantArgs& g, int64_t n, Q8Row* rows) {
  const int64_t k = g.s.k, subs = k / T::kSub;
  int32_t* off = nullptr;
  if constexpr (T::kOffset != 0)
    off = static_cast<int32_t*>(matmul_detail::scratch(matmul_detail::kScratchQuantOffsets, size_t(n * subs) * 4));
  for (int64_t r = 0; r < n; ++r) {
    rows[r] = q8_row(q8_row_ptr(g.a, r), k);
    if constexpr (T::kOffset != 0) {
      int32_t* o = off + r * subs;
      for (int64_t j = 0; j < subs; ++j)
        o[j] = -T::kOffset * (T::kSub == 16 ? int32_t(rows[r].sum16[j]) : rows[r].sum32[j]);
      rows[r].neg_offset = o;
    }
  }
}

// m up to a row tile (decode, small batches): FewRowsPlan's groups at a time (groups_rows), the last
// ones in narrower chunks (for_group_chunks).
template <typename T, int R>
void run_few_rows(const QuantArgs& g) {
  Q8Row rows[R];
  load_rows<T>(g, R, rows);
  const int64_t nb = g.s.k / T::kBlock, n_groups = (g.s.n + 15) / 16;
  const auto* base = static_cast<const uint8_t*>(g.b.data);
  const FarReach reach{reinterpret_cast<uintptr_t>(base) + uintptr_t(n_groups * nb * T::kTile),
                       reinterpret_cast<uintptr_t>(g.next)};
  for_group_chunks<FewRowsPlan<T, R>::kStreams>(base, nb * T::kTile, n_groups,
                                                [&]<int G>(int64_t grp, const uint8_t* const* groups) {
                                                  __m512 f[G * R];
                                                  groups_rows<T, R, G>(groups, nb, rows, f, reach);
                                                  for (int i = 0; i < G; ++i)
                                                    for (int r = 0; r < R; ++r)
                                                      store_cols(g, r, (grp + i) * 16, f[i * R + r]);
                                                });
}

// Two row tiles (kMaxRows + R2 rows: a batched decode step's LM head and attention projections, experts
// seeing 9-16 of its tokens): groups_rows takes both tiles' sums per block while it is in L1, so the weights
// stream from memory once at the pace of the dot products. Tile after tile per group (re-reading the group
// from L2, its scales kept in a buffer) took 24.0 ms against 20.2 for a 151936 x 2048 Q8_0 LM head at m 16
// on 2 threads (quant_bench, medians of 5 alternated).
template <typename T, int R1, int R2>
void run_two_tiles(const QuantArgs& g) {
  Q8Row rows[R1 + R2];
  load_rows<T>(g, R1 + R2, rows);
  const int64_t nb = g.s.k / T::kBlock, group_bytes = nb * T::kTile, n_groups = (g.s.n + 15) / 16;
  const auto* base = static_cast<const uint8_t*>(g.b.data);
  for (int64_t grp = 0; grp < n_groups; ++grp) {
    const uint8_t* group = base + grp * group_bytes;
    __m512 f[R1 + R2];
    groups_rows<T, R1, 1, R2>(&group, nb, rows, f, {reinterpret_cast<uintptr_t>(base + n_groups * group_bytes), 0});
    for (int r = 0; r < R1 + R2; ++r) store_cols(g, r, grp * 16, f[r]);
  }
}

// m up to a row tile (8 rows; 6 for the K-quants, measured against 4 and 8 on 2048 x 2048 at m 32 and 64:
// Q4_K +5-12%, Q6_K +18-26%, Q5_K +3-12% over 4): run_few_rows, weights read once. Up to two tiles:
// run_two_tiles, weights read once. More: per weight group, its row tiles in turn (the first reads the
// group from memory and keeps its scales, the others read both from cache).
template <typename T>
void run(const QuantArgs& g) {
  constexpr int kMaxRows = T::kBlock == 32 ? 8 : 6;
  if (g.s.m <= kMaxRows) return avx512::with_rows<kMaxRows>(int(g.s.m), [&]<int R>() { run_few_rows<T, R>(g); });
  if (g.s.m <= 2 * kMaxRows)
    return avx512::with_rows<kMaxRows>(int(g.s.m - kMaxRows), [&]<int R>() { run_two_tiles<T, kMaxRows, R>(g); });
  const int64_t k = g.s.k, nb = k / T::kBlock;
  const int64_t group_bytes = nb * T::kTile, n_groups = (g.s.n + 15) / 16;
  auto* scales = static_cast<__m512*>(matmul_detail::scratch(matmul_detail::kScratchB, size_t(nb * T::kSlots) * 64));
  std::vector<Q8Row> all_rows(static_cast<size_t>(g.s.m));
  load_rows<T>(g, g.s.m, all_rows.data());
  const auto* base = static_cast<const uint8_t*>(g.b.data);
  const FarReach reach{reinterpret_cast<uintptr_t>(base + n_groups * group_bytes), 0};
  for (int64_t grp = 0; grp < n_groups; ++grp) {
    const uint8_t* group = base + grp * group_bytes;
    for (int64_t i0 = 0; i0 < g.s.m; i0 += kMaxRows) {
      const int rn = static_cast<int>(std::min<int64_t>(kMaxRows, g.s.m - i0));
      const Q8Row* rows = all_rows.data() + i0;
      __m512 f[kMaxRows];
      avx512::with_rows<kMaxRows>(rn, [&]<int R>() {
        if (i0 == 0) return groups_rows<T, R, 1>(&group, nb, rows, f, reach, scales);
        cached_group_rows<T, R>(group, nb, scales, rows, f);
      });
      for (int r = 0; r < rn; ++r) store_cols(g, i0 + r, grp * 16, f[r]);
    }
  }
}

// ---- AMX-INT8: tdpbsud multiplies a 16 x 32 tile of s8 activation codes by an 8 x 64 tile of u8 weight
// codes, which is exactly one block of a 16-row weight group in the panel layout (line kg: byte 4r + j =
// row r, code 4 kg + j, AMX's "VNNI" B layout). Per 16-row chunk of A, its codes are packed per block
// (16 rows x 32 bytes); per weight group and block one tile product gives the 16 x 16 exact integer sums,
// stored and finished as block_rows finishes them (offset, scale, FMA): the same bits. Blocks of 32, and
// IQ4_XS's sub-blocks of 32 (each tile product times its sub-block's integer scale, summed per super-block
// in int32 before the FMA, as block_rows does).

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// The AMX kernel's per-call memory (thread scratch): the row chunks' codes [chunk][block][16][32]; per
// chunk, block and row the activation scale, the offset times the code sum and Q4_1 / Q5_1's scaled
// sum; one weight group's decoded scales and (types whose codes are not stored as bytes) B tiles; two
// C tiles.
struct AmxScratch {
  uint8_t* codes;
  float* da;
  int32_t* off;
  float* sa;
  __m512* scales;
  uint8_t* btiles;
  int32_t* ctile;
};

// B tiles: Q8_0's code lines are the B tile as they are (read in place: measured faster than an aligned
// copy even though each tile row then straddles two cache lines); other types decode theirs once per
// group for all row chunks.
template <typename T>
constexpr bool kAmxDecodeB = T::kType != DType::kQ8_0;

template <typename T>
AmxScratch amx_scratch(int64_t nb, int64_t n_chunks) {
  const size_t codes_bytes = size_t(n_chunks * nb) * 512, per_row = size_t(n_chunks * nb) * 16 * 4;
  const size_t scale_bytes = size_t(nb * T::kSlots) * 64, b_bytes = kAmxDecodeB<T> ? size_t(nb) * 512 : 0;
  auto* p = static_cast<uint8_t*>(
      matmul_detail::scratch(matmul_detail::kScratchB, codes_bytes + 3 * per_row + scale_bytes + b_bytes + 2048));
  AmxScratch s;
  s.codes = p;
  s.da = reinterpret_cast<float*>(p + codes_bytes);
  s.off = reinterpret_cast<int32_t*>(p + codes_bytes + per_row);
  s.sa = reinterpret_cast<float*>(p + codes_bytes + 2 * per_row);
  s.scales = reinterpret_cast<__m512*>(p + codes_bytes + 3 * per_row);
  s.btiles = p + codes_bytes + 3 * per_row + scale_bytes;
  s.ctile = reinterpret_cast<int32_t*>(s.btiles + b_bytes);
  return s;
}

// Every row of A into its chunk's tiles; padding rows (past m) get zero codes.
template <typename T>
void amx_pack_rows(const QuantArgs& g, int64_t nb, int64_t n_chunks, const AmxScratch& s) {
  for (int64_t i = 0; i < n_chunks * 16; ++i) {
    const int64_t ch = i / 16, r = i % 16, info = ch * nb * 16 + r;
    uint8_t* dst = s.codes + ch * nb * 512 + r * 32;
    if (i >= g.s.m) {
      for (int64_t b = 0; b < nb; ++b) std::memset(dst + b * 512, 0, 32);
      continue;
    }
    const Q8Row row = q8_row(q8_row_ptr(g.a, i), g.s.k);
    for (int64_t b = 0; b < nb; ++b) {
      std::memcpy(dst + b * 512, row.q + b * 32, 32);
      s.da[info + b * 16] = row.d[b / (T::kBlock / 32)];  // IQ4_XS: Q8_K's one scale per 256
      s.off[info + b * 16] = T::kOffset * row.sum32[b];
      if constexpr (T::kSlots == 2) s.sa[info + b * 16] = row.s[b];
    }
  }
}

// Block t's B tile: decoded in scratch, or Q8_0's code lines in the panel as they are.
template <typename T>
inline const uint8_t* amx_b_tile(const uint8_t* group, const AmxScratch& s, int64_t t) {
  if constexpr (kAmxDecodeB<T>) {
    return s.btiles + t * 512;
  } else {
    return group + t * T::kTile + 32;
  }
}

// Block t's 16 x 16 integer sums into tile C (A codes through tile A, B through tile B). A macro: GCC's
// tile intrinsics take the tile number as a literal.
#define MOE_AMX_BLOCK_PRODUCT(C, A, B, t)           \
  do {                                              \
    _tile_loadd(B, amx_b_tile<T>(group, s, t), 64); \
    _tile_loadd(A, acodes + (t)*512, 32);           \
    _tile_zero(C);                                  \
    _tile_dpbsud(C, A, B);                          \
  } while (0)

// One row chunk against one weight group (its scales and B tiles decoded in s): f[r] = the 16 columns
// (kRows 16: a full chunk, unrolled, the sums in registers; 0: rows of them). IQ4_XS: b counts sub-blocks.
// The first chunk (ahead not 0) prefetches the next group a tile per block into L2 (and Q8_0, whose B
// tiles are read in place, 4 blocks on into L1): without it the tile loads waited on memory, and the
// 151936 x 2048 Q8_0 LM head at 32 rows on 2 threads took 45-75 ms against 31-34 with it (the byte time
// is about 10; in cache the same product is compute-bound, where a block's tile work and its 16 rows'
// float finish take about 100 cycles).
template <typename T, int kRows>
void amx_chunk(const uint8_t* group, int64_t nb, int64_t ch, int rows, const AmxScratch& s, __m512* f,
               uintptr_t ahead) {
  const int rn = kRows > 0 ? kRows : rows;
  const uint8_t* acodes = s.codes + ch * nb * 512;
  const int64_t info = ch * nb * 16;
  for (int r = 0; r < 16; ++r) f[r] = _mm512_setzero_ps();
  [[maybe_unused]] __m512i sumi[16];
  auto finish = [&](int64_t b) {
    const int32_t* sums = s.ctile + (b & 1) * 256;
    if constexpr (T::kBlock != 32) {
      constexpr int kSubs = T::kBlock / 32;
      const int j = static_cast<int>(b % kSubs);
      const __m512* sc = s.scales + (b / kSubs) * T::kSlots;
      const __m512i scale = _mm512_castps_si512(sc[1 + j]);
#pragma GCC unroll 16
      for (int r = 0; r < rn; ++r) {
        const __m512i v =
            _mm512_sub_epi32(_mm512_load_si512(sums + r * 16), _mm512_set1_epi32(s.off[info + b * 16 + r]));
        const __m512i p = _mm512_mullo_epi32(v, scale);
        sumi[r] = j == 0 ? p : _mm512_add_epi32(sumi[r], p);
        if (j == kSubs - 1)
          f[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[r]),
                                 _mm512_mul_ps(sc[0], _mm512_set1_ps(s.da[info + b * 16 + r])), f[r]);
      }
      return;
    }
    const __m512* sc = s.scales + b * T::kSlots;
#pragma GCC unroll 16
    for (int r = 0; r < rn; ++r) {
      __m512i v = _mm512_load_si512(sums + r * 16);
      if constexpr (T::kOffset != 0) v = _mm512_sub_epi32(v, _mm512_set1_epi32(s.off[info + b * 16 + r]));
      f[r] =
          _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_mul_ps(sc[0], _mm512_set1_ps(s.da[info + b * 16 + r])), f[r]);
      if constexpr (T::kSlots == 2) f[r] = _mm512_fmadd_ps(sc[1], _mm512_set1_ps(s.sa[info + b * 16 + r]), f[r]);
    }
  };
  // Even blocks on tiles 0-2, odd ones on 3-5: block t's product is issued before block t - 1's sums are
  // stored (its product done meanwhile) and block t - 2's finished (stored one block earlier).
  for (int64_t t = 0; t < nb; ++t) {
    if (ahead != 0 && t % (T::kBlock / 32) == 0) {
      prefetch_lines_l2(ahead + (t / (T::kBlock / 32)) * T::kTile, T::kTile);
      if constexpr (!kAmxDecodeB<T>) prefetch_lines(reinterpret_cast<uintptr_t>(group) + (t + 4) * T::kTile, T::kTile);
    }
    if (t & 1) {
      MOE_AMX_BLOCK_PRODUCT(3, 4, 5, t);
      _tile_stored(0, s.ctile, 64);
    } else {
      MOE_AMX_BLOCK_PRODUCT(0, 1, 2, t);
      if (t > 0) _tile_stored(3, s.ctile + 256, 64);
    }
    if (t >= 2) finish(t - 2);
  }
  if (nb & 1) {
    _tile_stored(0, s.ctile, 64);
  } else {
    _tile_stored(3, s.ctile + 256, 64);
  }
  if (nb >= 2) finish(nb - 2);
  finish(nb - 1);
}
#undef MOE_AMX_BLOCK_PRODUCT

// Every 16-row chunk of A is packed once; then per weight group its scales and B tiles are decoded once
// for all chunks, and each chunk runs amx_chunk. nb counts blocks of 32 (IQ4_XS: sub-blocks).
template <typename T>
void run_amx(const QuantArgs& g) {
  constexpr int kSubs = T::kBlock / 32;
  const int64_t nb = g.s.k / 32, n_chunks = (g.s.m + 15) / 16;
  const int64_t group_bytes = (g.s.k / T::kBlock) * T::kTile, n_groups = (g.s.n + 15) / 16;
  const AmxScratch s = amx_scratch<T>(nb, n_chunks);
  amx_pack_rows<T>(g, nb, n_chunks, s);
  TileConfig cfg;
  cfg.rows[0] = 16, cfg.colsb[0] = 64;  // C: 16 x 16 int32
  cfg.rows[1] = 16, cfg.colsb[1] = 32;  // A: 16 rows x 32 codes
  cfg.rows[2] = 8, cfg.colsb[2] = 64;   // B: 8 k-groups x 16 rows x 4 codes
  for (int t = 3; t < 6; ++t) cfg.rows[t] = cfg.rows[t - 3], cfg.colsb[t] = cfg.colsb[t - 3];  // odd blocks
  _tile_loadconfig(&cfg);
  const auto* wbase = static_cast<const uint8_t*>(g.b.data);
  for (int64_t grp = 0; grp < n_groups; ++grp) {
    const uint8_t* group = wbase + grp * group_bytes;
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* tile = group + (b / kSubs) * T::kTile;
      if (b % kSubs == 0) T::scales(tile, s.scales + (b / kSubs) * T::kSlots);
      if constexpr (kAmxDecodeB<T>)
        for (int kg = 0; kg < 8; ++kg)
          _mm512_store_si512(s.btiles + b * 512 + kg * 64, T::codes(tile, size_t(b % kSubs) * 8, kg));
    }
    for (int64_t ch = 0; ch < n_chunks; ++ch) {
      const int rn = static_cast<int>(std::min<int64_t>(16, g.s.m - ch * 16));
      __m512 f[16];
      const uintptr_t ahead = ch == 0 ? reinterpret_cast<uintptr_t>(group + group_bytes) : 0;
      if (rn == 16) {
        amx_chunk<T, 16>(group, nb, ch, rn, s, f, ahead);
      } else {
        amx_chunk<T, 0>(group, nb, ch, rn, s, f, ahead);
      }
      for (int r = 0; r < rn; ++r) store_cols(g, ch * 16 + r, grp * 16, f[r]);
    }
  }
  _tile_release();
}

}  // namespace

bool quant_amx_supports(DType t) {
  switch (t) {
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1:
    case DType::kQ8_0:
    case DType::kMXFP4:
    case DType::kIQ4_XS:
      return true;
    default:
      return false;
  }
}

void quant_panels_amx(const QuantArgs& g) {
  switch (g.b.dtype) {
    case DType::kQ4_0:
      return run_amx<Q4_0T>(g);
    case DType::kQ4_1:
      return run_amx<Q4_1T>(g);
    case DType::kQ5_0:
      return run_amx<Q5_0T>(g);
    case DType::kQ5_1:
      return run_amx<Q5_1T>(g);
    case DType::kQ8_0:
      return run_amx<Q8_0T>(g);
    case DType::kMXFP4:
      return run_amx<Mxfp4T>(g);
    case DType::kIQ4_XS:
      return run_amx<Iq4XsT>(g);
    default:
      return quant_panels_avx512vnni(g);
  }
}

void quant_panels_avx512vnni(const QuantArgs& g) {
  switch (g.b.dtype) {
    case DType::kQ4_0:
      return run<Q4_0T>(g);
    case DType::kQ4_1:
      return run<Q4_1T>(g);
    case DType::kQ5_0:
      return run<Q5_0T>(g);
    case DType::kQ5_1:
      return run<Q5_1T>(g);
    case DType::kQ8_0:
      return run<Q8_0T>(g);
    case DType::kMXFP4:
      return run<Mxfp4T>(g);
    case DType::kQ4_K:
      return run<QKAffineT<false>>(g);
    case DType::kQ5_K:
      return run<QKAffineT<true>>(g);
    case DType::kQ6_K:
      return run<Q6_KT>(g);
    case DType::kIQ4_XS:
      return run<Iq4XsT>(g);
    default:
      break;
  }
}

}  // namespace moe::quant_detail
