// Quantized panel kernels for AVX2 (no VNNI): the layout and arithmetic of the AVX-512 VNNI kernels
// (quant_matmul_avx512vnni.cc) on two ymm halves of a weight group (rows 0-7 and 8-15). A k-group's dot
// product is vpmaddubsw (u8 codes x s8 activations into i16 pairs) then vpmaddwd with ones; codes of at
// most 63 never saturate. Q8_0's codes (q + 128, up to 255) could: its sums use the signed codes with the
// sign trick, which is the offset-corrected sum directly. Per type (a traits struct, as in the VNNI file)
// the block scales of a group are decoded once per call with vector loads straight from the tile heads,
// and the codes of a k-group are extracted with a few shifts and masks; the integer sums and the f32
// arithmetic are the reference's (block_dot in quant_matmul.cc), so the results are bit-identical to it.
// m <= 2 (decode) runs both halves of several groups at a time per row (group_rows, SmallMPlan: more
// hardware-prefetch streams, the tiles ahead software-prefetched); m >= 3 runs row tiles against one half
// at a time (run_rows: fewer live registers, codes extracted once per tile of rows, scales once per 64-row
// chunk).
// On Zen 1 vector integer multiplies issue on one pipe: Q8_0 (one vpmaddwd per k-group) peaks near the f32
// FMA rate, the 4-bit types (one vpmaddwd per 8 k-groups) near twice that.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/matmul_internal.h"
#include "kernels/quant_internal.h"

namespace moe::quant_detail {
namespace {

inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m128i load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
// 16 f16 values (the 16 rows of a tile head) as two halves of 8 f32.
inline void load_f16x16(const uint8_t* p, __m256* s) {
  s[0] = _mm256_cvtph_ps(load16(p));
  s[1] = _mm256_cvtph_ps(load16(p + 16));
}
// 16 bytes as two halves of 8 int32 (zero- or sign-extended), stored as float bits.
inline void u8x16_to_i32(__m128i v, __m256* s) {
  s[0] = _mm256_castsi256_ps(_mm256_cvtepu8_epi32(v));
  s[1] = _mm256_castsi256_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8)));
}
inline void s8x16_to_i32(__m128i v, __m256* s) {
  s[0] = _mm256_castsi256_ps(_mm256_cvtepi8_epi32(v));
  s[1] = _mm256_castsi256_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8)));
}
// Half h (rows 8h..8h+7) of the 4-bit part of k-group kg: line kg / 2, low nibbles for even kg, high for odd.
inline __m256i nibbles(const uint8_t* lines, int kg, int h) {
  const __m256i v = load32(lines + (kg / 2) * 64 + 32 * h);
  const __m256i m15 = _mm256_set1_epi8(0x0F);
  return (kg & 1) ? _mm256_and_si256(_mm256_srli_epi16(v, 4), m15) : _mm256_and_si256(v, m15);
}
// + 16 where the k-group's fifth bit (8 bytes per k-group, one bit per byte of the line) is set.
inline __m256i add_fifth_bit(__m256i codes, const uint8_t* bits, int kg, int h) {
  uint32_t word;
  std::memcpy(&word, bits + kg * 8 + 4 * h, 4);
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int32_t>(word)),
      _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_add_epi8(codes, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
}

// Per type: kBlock, kSub, kTile (bytes of a 16-row tile), kSlots (decoded scale vectors per block, each two
// halves: f32 d [, f32 m or dmin] [, int32 sub-block scales] [, int32 mins]), scales(tile, s) filling
// 2 * kSlots halves, codes(tile, kg, h), kOffset (the codes' zero, subtracted per unit of the activation
// sum) and kSigned (Q8_0: codes are signed q, summed with the sign trick).
struct Q4_0T {
  static constexpr int kBlock = 32, kSub = 32, kTile = 288, kSlots = 1, kOffset = 8, kI16 = 8;
  static constexpr bool kSigned = false, kAffine = false, kMins = false;
  static void scales(const uint8_t* t, __m256* s) { load_f16x16(t, s); }
  static __m256i codes(const uint8_t* t, int kg, int h) { return nibbles(t + 32, kg, h); }
};
struct Q4_1T {
  static constexpr int kBlock = 32, kSub = 32, kTile = 320, kSlots = 2, kOffset = 0, kI16 = 8;
  static constexpr bool kSigned = false, kAffine = true, kMins = false;
  static void scales(const uint8_t* t, __m256* s) {
    load_f16x16(t, s);
    load_f16x16(t + 32, s + 2);
  }
  static __m256i codes(const uint8_t* t, int kg, int h) { return nibbles(t + 64, kg, h); }
};
struct Q5_0T {
  static constexpr int kBlock = 32, kSub = 32, kTile = 352, kSlots = 1, kOffset = 16, kI16 = 4;
  static constexpr bool kSigned = false, kAffine = false, kMins = false;
  static void scales(const uint8_t* t, __m256* s) { load_f16x16(t, s); }
  static __m256i codes(const uint8_t* t, int kg, int h) { return add_fifth_bit(nibbles(t + 96, kg, h), t + 32, kg, h); }
};
struct Q5_1T {
  static constexpr int kBlock = 32, kSub = 32, kTile = 384, kSlots = 2, kOffset = 0, kI16 = 4;
  static constexpr bool kSigned = false, kAffine = true, kMins = false;
  static void scales(const uint8_t* t, __m256* s) {
    load_f16x16(t, s);
    load_f16x16(t + 32, s + 2);
  }
  static __m256i codes(const uint8_t* t, int kg, int h) {
    return add_fifth_bit(nibbles(t + 128, kg, h), t + 64, kg, h);
  }
};
struct Q8_0T {
  static constexpr int kBlock = 32, kSub = 32, kTile = 544, kSlots = 1, kOffset = 0, kI16 = 1;
  static constexpr bool kSigned = true, kAffine = false, kMins = false;
  static void scales(const uint8_t* t, __m256* s) { load_f16x16(t, s); }
  static __m256i codes(const uint8_t* t, int kg, int h) {  // stored as q + 128: back to signed q
    return _mm256_xor_si256(load32(t + 32 + kg * 64 + 32 * h), _mm256_set1_epi8(static_cast<char>(0x80)));
  }
};
struct Mxfp4T {
  static constexpr int kBlock = 32, kSub = 32, kTile = 272, kSlots = 1, kOffset = 12, kI16 = 4;
  static constexpr bool kSigned = false, kAffine = false, kMins = false;
  static void scales(const uint8_t* t, __m256* s) {
    // 2^(e - 128): exponent field e - 1 for e >= 2, the subnormals 2^-128, 2^-127 below.
    const __m128i e16 = load16(t);
    for (int h = 0; h < 2; ++h) {
      const __m256i e = _mm256_cvtepu8_epi32(h == 0 ? e16 : _mm_srli_si128(e16, 8));
      const __m256i normal = _mm256_slli_epi32(_mm256_sub_epi32(e, _mm256_set1_epi32(1)), 23);
      const __m256i sub = _mm256_sllv_epi32(_mm256_set1_epi32(0x00200000), e);
      const __m256i small = _mm256_cmpgt_epi32(_mm256_set1_epi32(2), e);
      s[h] = _mm256_castsi256_ps(_mm256_blendv_epi8(normal, sub, small));
    }
  }
  static __m256i codes(const uint8_t* t, int kg, int h) {
    const __m256i table = _mm256_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0, 12, 13, 14, 15,
                                           16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0);
    return _mm256_shuffle_epi8(table, nibbles(t + 16, kg, h));
  }
};
// Q4_K / Q5_K: the 6-bit scale and min of sub-block j of the 16 rows from the 12 scale planes.
inline void k_scales_mins(const uint8_t* planes, int j, __m128i* sc, __m128i* mn) {
  auto plane = [planes](int p) { return load16(planes + 16 * p); };
  const __m128i m63 = _mm_set1_epi8(63), m15 = _mm_set1_epi8(15), m3 = _mm_set1_epi8(3);
  if (j < 4) {
    *sc = _mm_and_si128(plane(j), m63);
    *mn = _mm_and_si128(plane(j + 4), m63);
  } else {
    const __m128i hi_s = _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(plane(j - 4), 6), m3), 4);
    const __m128i hi_m = _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(plane(j), 6), m3), 4);
    *sc = _mm_or_si128(_mm_and_si128(plane(j + 4), m15), hi_s);
    *mn = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(plane(j + 4), 4), m15), hi_m);
  }
}
template <bool kFive>
struct QKAffineT {
  static constexpr int kBlock = 256, kSub = 32, kTile = kFive ? 2816 : 2304, kSlots = 18, kOffset = 0,
                       kI16 = kFive ? 4 : 8;
  static constexpr bool kSigned = false, kAffine = false, kMins = true;
  static void scales(const uint8_t* t, __m256* s) {
    load_f16x16(t, s);
    load_f16x16(t + 32, s + 2);
    for (int j = 0; j < 8; ++j) {
      __m128i sc, mn;
      k_scales_mins(t + 64, j, &sc, &mn);
      u8x16_to_i32(sc, s + 2 * (2 + j));
      u8x16_to_i32(mn, s + 2 * (10 + j));
    }
  }
  static __m256i codes(const uint8_t* t, int kg, int h) {
    if constexpr (kFive) return add_fifth_bit(nibbles(t + 768, kg, h), t + 256, kg, h);
    return nibbles(t + 256, kg, h);
  }
};
struct Q6_KT {
  static constexpr int kBlock = 256, kSub = 16, kTile = 3360, kSlots = 17, kOffset = 32, kI16 = 2;
  static constexpr bool kSigned = false, kAffine = false, kMins = false;
  static void scales(const uint8_t* t, __m256* s) {
    load_f16x16(t, s);
    for (int j = 0; j < 16; ++j) s8x16_to_i32(load16(t + 32 + 16 * j), s + 2 * (1 + j));
  }
  static __m256i codes(const uint8_t* t, int kg, int h) {
    const __m256i top = load32(t + 288 + (kg / 4) * 64 + 32 * h);
    __m256i hi;
    switch (kg % 4) {  // bits 2i, 2i + 1 of each byte to bits 4, 5
      case 0:
        hi = _mm256_slli_epi16(top, 4);
        break;
      case 1:
        hi = _mm256_slli_epi16(top, 2);
        break;
      case 2:
        hi = top;
        break;
      default:
        hi = _mm256_srli_epi16(top, 2);
        break;
    }
    return _mm256_or_si256(nibbles(t + 1312, kg, h), _mm256_and_si256(hi, _mm256_set1_epi8(0x30)));
  }
};

// IQ4_XS: the tile's head is d[16] f16, scales_h[16] u16, then 4 planes of scales_l; sub-block j's scale
// less 32 as int32. Its grid values (kIq4nlValues, |v| <= 127) are the signed codes of the sign trick, as
// Q8_0's: the grid + 128 could saturate vpmaddubsw's pair sums.
struct Iq4XsT {
  static constexpr int kBlock = 256, kSub = 32, kTile = 2176, kSlots = 9, kOffset = 0, kI16 = 1;
  static constexpr bool kSigned = true, kAffine = false, kMins = false;
  static void scales(const uint8_t* t, __m256* s) {
    load_f16x16(t, s);
    const __m128i sh0 = load16(t + 32), sh1 = load16(t + 48);  // rows 0-7, 8-15 (u16 each)
    // The two top bits of sub-block j for the 16 rows as bytes: scales_h >> 2j, packed to u8.
    for (int j = 0; j < 8; ++j) {
      const __m128i m3 = _mm_set1_epi16(3);
      const __m128i hi16 = _mm_packus_epi16(_mm_and_si128(_mm_srli_epi16(sh0, 2 * j), m3),
                                            _mm_and_si128(_mm_srli_epi16(sh1, 2 * j), m3));
      const __m128i sl = load16(t + 64 + 16 * (j / 2));
      const __m128i lo = _mm_and_si128(j % 2 ? _mm_srli_epi16(sl, 4) : sl, _mm_set1_epi8(15));
      const __m128i ls = _mm_or_si128(lo, _mm_slli_epi16(hi16, 4));  // 0..63: no bits cross a byte
      s8x16_to_i32(_mm_sub_epi8(ls, _mm_set1_epi8(32)), s + 2 * (1 + j));
    }
  }
  static __m256i codes(const uint8_t* t, int kg, int h) {
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
    return _mm256_shuffle_epi8(table, nibbles(t + 128, kg, h));
  }
};
// Q8_0, whose row tiles of many rows take i16 codes (tile_rows): the other signed type, IQ4_XS, does not.
template <typename T>
constexpr bool kWideQ8 = T::kSigned&& T::kBlock == 32;

constexpr int64_t kPrefetchAhead = 4096;
// Up to this many rows run through group_rows (both halves of a group at once), more through run_rows
// (measured: at m = 2 group_rows is faster for most types, at m = 3 run_rows for the K-quants).
constexpr int64_t kGroupRowsMax = 2;

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// 16 lanes of i16: the pair sums w * a over 2 of the 4 bytes of each lane (w unsigned, or signed via the sign
// trick). A code of at most c bits gives at most (2^c - 1) * 127 * 2 per lane, so kI16 of them (per type:
// 8 for 4-bit codes, 4 for 5-bit and MXFP4, 2 for 6-bit, 1 for Q8_0) add up in i16 without overflow before
// vpmaddwd widens them: the integer sums are exact, as the reference's.
template <bool kSigned>
inline __m256i pairs(__m256i w, __m256i a) {
  if constexpr (kSigned) return _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
  return _mm256_maddubs_epi16(w, a);
}

// Exact integer sums over the kKg k-groups of one sub-block starting at element p0, for R rows of A, as two
// halves of 8 lanes.
template <typename T, int R, int kKg>
inline void sub_block_sums(const uint8_t* tile, int kg0, const Q8Row* rows, int64_t p0, __m256i (*isum)[2]) {
  static_assert(kKg % T::kI16 == 0);
  const __m256i ones = _mm256_set1_epi16(1);
  for (int r = 0; r < R; ++r) isum[r][0] = isum[r][1] = _mm256_setzero_si256();
  if constexpr (T::kI16 == 1) {  // each pair sum widened at once
    for (int g = 0; g < kKg; ++g) {
      const __m256i w0 = T::codes(tile, kg0 + g, 0), w1 = T::codes(tile, kg0 + g, 1);
      for (int r = 0; r < R; ++r) {
        const __m256i a = bcast4(rows[r].q + p0 + 4 * g);
        isum[r][0] = _mm256_add_epi32(isum[r][0], _mm256_madd_epi16(pairs<T::kSigned>(w0, a), ones));
        isum[r][1] = _mm256_add_epi32(isum[r][1], _mm256_madd_epi16(pairs<T::kSigned>(w1, a), ones));
      }
    }
    return;
  }
  for (int g0 = 0; g0 < kKg; g0 += T::kI16) {
    __m256i s16[R][2];
    for (int g = g0; g < g0 + T::kI16; ++g) {
      const __m256i w0 = T::codes(tile, kg0 + g, 0), w1 = T::codes(tile, kg0 + g, 1);
      for (int r = 0; r < R; ++r) {
        const __m256i a = bcast4(rows[r].q + p0 + 4 * g);
        const __m256i p0v = pairs<T::kSigned>(w0, a), p1v = pairs<T::kSigned>(w1, a);
        s16[r][0] = g == g0 ? p0v : _mm256_add_epi16(s16[r][0], p0v);
        s16[r][1] = g == g0 ? p1v : _mm256_add_epi16(s16[r][1], p1v);
      }
    }
    for (int r = 0; r < R; ++r) {
      isum[r][0] = _mm256_add_epi32(isum[r][0], _mm256_madd_epi16(s16[r][0], ones));
      isum[r][1] = _mm256_add_epi32(isum[r][1], _mm256_madd_epi16(s16[r][1], ones));
    }
  }
}

// One block (scales sc decoded) of one group for R rows against both halves, added into acc[r][h].
template <typename T, int R>
inline void block_rows(const uint8_t* tile, const __m256* sc, const Q8Row* rows, int64_t p0, __m256 (*acc)[2],
                       uintptr_t ahead, uintptr_t far) {
  __m256i isum[R][2];
  if constexpr (T::kBlock == 32) {
    sub_block_sums<T, R, 8>(tile, 0, rows, p0, isum);
    for (int r = 0; r < R; ++r) {
      const __m256i o = _mm256_set1_epi32(T::kOffset * rows[r].sum32[p0 / 32]);
      const __m256 da = _mm256_set1_ps(rows[r].d[p0 / 32]);
      for (int h = 0; h < 2; ++h) {
        __m256i s = isum[r][h];
        if constexpr (T::kOffset != 0) s = _mm256_sub_epi32(s, o);
        acc[r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(sc[h], da), acc[r][h]);
        if constexpr (T::kAffine) acc[r][h] = _mm256_fmadd_ps(sc[2 + h], _mm256_set1_ps(rows[r].s[p0 / 32]), acc[r][h]);
      }
    }
    return;
  }
  __m256i sumi[R][2], summ[R][2];
  for (int r = 0; r < R; ++r) sumi[r][0] = sumi[r][1] = summ[r][0] = summ[r][1] = _mm256_setzero_si256();
  constexpr int kNSub = T::kBlock / T::kSub, kStep = T::kTile / kNSub;
  for (int j = 0; j < kNSub; ++j) {
    if (ahead != 0) prefetch_lines(ahead + j * kStep, kStep);
    if (far != 0) prefetch_lines_l2(far + j * kStep, kStep);
    const int64_t s0 = p0 + j * T::kSub;
    sub_block_sums<T, R, T::kSub / 4>(tile, j * (T::kSub / 4), rows, s0, isum);
    const __m256* scale = sc + 2 * ((T::kMins ? 2 : 1) + j);
    for (int r = 0; r < R; ++r) {
      for (int h = 0; h < 2; ++h) {
        __m256i s = isum[r][h];
        if constexpr (!T::kMins && T::kOffset != 0)
          s = _mm256_sub_epi32(s, _mm256_set1_epi32(T::kOffset * rows[r].sum16[s0 / 16]));
        sumi[r][h] = _mm256_add_epi32(sumi[r][h], _mm256_mullo_epi32(s, _mm256_castps_si256(scale[h])));
        if constexpr (T::kMins) {
          summ[r][h] = _mm256_add_epi32(summ[r][h], _mm256_mullo_epi32(_mm256_castps_si256(sc[2 * (10 + j) + h]),
                                                                       _mm256_set1_epi32(rows[r].sum32[s0 / 32])));
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const __m256 da = _mm256_set1_ps(rows[r].d[p0 / 256]);
    for (int h = 0; h < 2; ++h) {
      acc[r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[r][h]), _mm256_mul_ps(sc[h], da), acc[r][h]);
      if constexpr (T::kMins) {
        acc[r][h] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(summ[r][h]), _mm256_mul_ps(sc[2 + h], da), acc[r][h]);
      }
    }
  }
}

// m <= 2 (decode, and the smallest batches): R rows against both halves of G groups at once, block scales
// decoded as each tile comes (a separate pass would only add a second walk through memory), the tile
// kAhead blocks on prefetched. Several groups at once are several hardware-prefetch streams: one stream
// keeps too few lines in flight for a core's read bandwidth (the VNNI file's OneRowPlan has the figures).
// (16 ymm registers: 4 groups x 1 row x 2 halves of accumulators, or 2 groups x 2 rows.)
template <typename T, int R>
struct SmallMPlan {
  static constexpr int kStreams = T::kBlock == 32 ? 4 / R : 1;
  static constexpr int kAhead = T::kBlock == 32 ? 2 : 1;
  // Into L2 (the VNNI file's FewRowsPlan), here at m 1 too (4 streams, not 8): `MOE_ISA=avx2` on an
  // AVX-512 VM, one thread, 3 alternated runs, GB/s: m 1 Q4_0 14.1 -> 14.7-15.6, Q4_K 11.8 -> 13.5-13.7,
  // Q6_K 11.7-11.9 -> 13.4-13.7; m 2 Q8_0 13.1-13.3 -> 14.3-15.3; in L2 x0.96-1.0.
  static constexpr int kFar = T::kBlock == 32 ? 16 : 8;
};
template <typename T, int R, int G>
void group_rows(const uint8_t* const* groups, int64_t nb, const Q8Row* rows, __m256* out, FarReach reach) {
  constexpr int kAhead = SmallMPlan<T, R>::kAhead, kFar = SmallMPlan<T, R>::kFar;
  __m256 acc[G][R][2];
  for (int g = 0; g < G; ++g)
    for (int r = 0; r < R; ++r) acc[g][r][0] = acc[g][r][1] = _mm256_setzero_ps();
  __m256 sc[2 * T::kSlots];
  for (int64_t b = 0; b < nb; ++b) {
    for (int g = 0; g < G; ++g) {
      const uint8_t* tile = groups[g] + b * T::kTile;
      // Past the group's end: the group this stream reads next (G groups on), as in the VNNI kernel.
      const uintptr_t ahead = ahead_address(tile, b, nb, kAhead, G, T::kTile);
      const uintptr_t far = far_address(tile, b, nb, kFar, G, T::kTile, reach);
      if (T::kBlock == 32) {
        prefetch_lines(ahead, T::kTile);
        if (far != 0) prefetch_lines_l2(far, T::kTile);
      }
      T::scales(tile, sc);
      block_rows<T, R>(tile, sc, rows, b * T::kBlock, acc[g], T::kBlock == 32 ? 0 : ahead, T::kBlock == 32 ? 0 : far);
    }
  }
  for (int g = 0; g < G; ++g)
    for (int r = 0; r < R; ++r) {
      out[(g * R + r) * 2] = acc[g][r][0];
      out[(g * R + r) * 2 + 1] = acc[g][r][1];
    }
}

// m >= 2: row tiles of R rows against one half (8 columns) of a tile at a time, so that few registers are
// live (R i32 sums, R i16 sums, the codes, one activation broadcast: R = 6, or 8 for Q8_0 which has no i16
// sums) and a k-group's codes are extracted once for R rows. A tile's scales are decoded once for all the
// rows of a chunk, in the forms the integer sums take them:
//   mul[j]: sub-block j's scale in both i16 of each i32 lane (K-quants, Q6_K), so that vpmaddwd of the i16
//     pair sums with it gives sc_j * sum directly (no vpmulld);
//   pair[p]: sub-blocks 2p and 2p + 1 as the two i16 of each lane: K-quants' mins (times the i16 pair of the
//     activation's 32-sums), Q6_K's scales (times the pair of 16-sums: the offset term 32 sum_j sc_j sum_j a).
// All of it integer and exact, so the per-block f32 steps, unchanged, give the reference's bits.
// Q8_0 row tiles of at least this many rows take i16 codes (vpmaddwd alone), smaller ones vpmaddubsw with the
// sign trick: the i16 path extracts two vectors per k-group and broadcasts two per row, which only pays over
// enough rows (measured with quant_bench: +5..10% at m 8 and 512, -10% at m 3 and 4).
constexpr int kWideRows = 5;

// Q8_0 activation codes q [k] as i16 out [k], each k-group reordered a0 a2 a1 a3 (the even pair, then the odd).
inline void widen_q8_0(const int8_t* q, int64_t k, int16_t* out) {
  for (int64_t i = 0; i < k; i += 16) {
    __m256i v = _mm256_cvtepi8_epi16(load16(reinterpret_cast<const uint8_t*>(q + i)));
    v = _mm256_shufflehi_epi16(_mm256_shufflelo_epi16(v, 0xD8), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), v);
  }
}

struct TileScales {
  __m256 d[2], m[2];  // d_w; Q4_1 / Q5_1 m, K-quants' dmin
  __m256i mul[16][2], pair[8][2];
};

inline __m256i dup16(__m256i x) {  // the low i16 of each i32 lane in both halves
  return _mm256_or_si256(_mm256_and_si256(x, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(x, 16));
}
inline __m256i pair16(__m256i lo, __m256i hi) {
  return _mm256_or_si256(_mm256_and_si256(lo, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(hi, 16));
}

template <typename T>
inline void tile_scales(const uint8_t* tile, TileScales* ts) {
  __m256 s[2 * T::kSlots];
  T::scales(tile, s);
  for (int h = 0; h < 2; ++h) {
    ts->d[h] = s[h];
    if constexpr (T::kAffine || T::kMins) ts->m[h] = s[2 + h];
  }
  if constexpr (T::kBlock == 256) {
    constexpr int kSubs = T::kBlock / T::kSub, kScale = T::kMins ? 2 : 1, kPair = T::kMins ? 10 : 1;
    for (int h = 0; h < 2; ++h) {
      for (int j = 0; j < kSubs; ++j) ts->mul[j][h] = dup16(_mm256_castps_si256(s[2 * (kScale + j) + h]));
      for (int p = 0; p < kSubs / 2; ++p) {
        ts->pair[p][h] = pair16(_mm256_castps_si256(s[2 * (kPair + 2 * p) + h]),
                                _mm256_castps_si256(s[2 * (kPair + 2 * p + 1) + h]));
      }
    }
  }
}

// isum[r] += the i32 sums over k-groups [kg0, kg0 + kKg) of half h for R rows (q[r]: row r's codes at kg0),
// each i16 pair sum weighted by mul (ones, or a sub-block scale) in vpmaddwd.
template <typename T, int R, int kKg>
inline void add_row_sums(const uint8_t* tile, int kg0, int h, const int8_t* const* q, __m256i mul, __m256i* isum) {
  static_assert(kKg % T::kI16 == 0);
  for (int g0 = 0; g0 < kKg; g0 += T::kI16) {
    __m256i s16[R];
    for (int r = 0; r < R; ++r) s16[r] = _mm256_setzero_si256();
    for (int g = g0; g < g0 + T::kI16; ++g) {
      const __m256i w = T::codes(tile, kg0 + g, h);
      __m256i wu = w;
      if constexpr (T::kSigned) wu = _mm256_sign_epi8(w, w);  // the sign trick's |w|, once for R rows
      for (int r = 0; r < R; ++r) {
        __m256i a = bcast4(q[r] + 4 * g);
        if constexpr (T::kSigned) a = _mm256_sign_epi8(a, w);
        s16[r] = _mm256_add_epi16(s16[r], _mm256_maddubs_epi16(wu, a));
      }
    }
    for (int r = 0; r < R; ++r) isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(s16[r], mul));
  }
}

// acc[r * 16 + 8h ..] += rows' products with half h of one tile (block p0 / kBlock), the reference's f32 steps.
template <typename T, int R>
inline void tile_rows(const uint8_t* tile, const TileScales& ts, int h, const Q8Row* rows, const int16_t* const* a16,
                      int64_t p0, float* acc) {
  const int8_t* q[R];
  for (int r = 0; r < R; ++r) q[r] = rows[r].q + p0;
  __m256i isum[R];
  for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
  if constexpr (kWideQ8<T> && R >= kWideRows) {
    // Q8_0: vpmaddwd of i16 codes and activations (q16: the rows' codes widened and reordered per k-group as
    // a0 a2 a1 a3, see widen_q8_0), 16 products per instruction as vpmaddubsw + vpmaddwd give 32 with two,
    // without the sign trick's per-row vpsignb. Even codes (0, 2 of each k-group) are each i32 lane's low i16
    // sign-extended, odd ones its high bytes shifted down.
    const int16_t* q16[R];
    for (int r = 0; r < R; ++r) q16[r] = a16[r] + p0;
    for (int g = 0; g < 8; ++g) {
      const __m256i x = T::codes(tile, g, h);
      const __m256i even = _mm256_srai_epi16(_mm256_slli_epi16(x, 8), 8), odd = _mm256_srai_epi16(x, 8);
      for (int r = 0; r < R; ++r) {
        const __m256i pe = _mm256_madd_epi16(even, bcast4(reinterpret_cast<const int8_t*>(q16[r] + 4 * g)));
        const __m256i po = _mm256_madd_epi16(odd, bcast4(reinterpret_cast<const int8_t*>(q16[r] + 4 * g + 2)));
        isum[r] = _mm256_add_epi32(isum[r], _mm256_add_epi32(pe, po));
      }
    }
  } else if constexpr (T::kBlock == 32) {
    add_row_sums<T, R, 8>(tile, 0, h, q, _mm256_set1_epi16(1), isum);  // Q8_0: with the sign trick
  }
  if constexpr (T::kBlock == 32) {
    for (int r = 0; r < R; ++r) {
      __m256i s = isum[r];
      if constexpr (T::kOffset != 0) s = _mm256_sub_epi32(s, _mm256_set1_epi32(T::kOffset * rows[r].sum32[p0 / 32]));
      __m256 a = _mm256_load_ps(acc + r * 16 + 8 * h);
      a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(ts.d[h], _mm256_set1_ps(rows[r].d[p0 / 32])), a);
      if constexpr (T::kAffine) a = _mm256_fmadd_ps(ts.m[h], _mm256_set1_ps(rows[r].s[p0 / 32]), a);
      _mm256_store_ps(acc + r * 16 + 8 * h, a);
    }
  } else {
    constexpr int kSubs = T::kBlock / T::kSub, kKg = T::kSub / 4;
    for (int j = 0; j < kSubs; ++j) {
      const int8_t* qj[R];
      for (int r = 0; r < R; ++r) qj[r] = q[r] + j * T::kSub;
      add_row_sums<T, R, kKg>(tile, j * kKg, h, qj, ts.mul[j][h], isum);
    }
    for (int r = 0; r < R; ++r) {
      // K-quants: sum_j mn_j sum32_j; Q6_K: sum_j sc_j sum16_j (pairs of consecutive sums as i16 pairs);
      // IQ4_XS: none (its signed codes have no offset).
      constexpr bool kPairs = T::kMins || T::kOffset != 0;
      __m256i pm = _mm256_setzero_si256();
      for (int p = 0; kPairs && p < kSubs / 2; ++p) {
        int32_t pair;
        if constexpr (T::kMins) {
          const int32_t* s32 = rows[r].sum32 + p0 / 32 + 2 * p;
          pair = int32_t((uint32_t(s32[0]) & 0xFFFFu) | (uint32_t(s32[1]) << 16));
        } else {
          std::memcpy(&pair, rows[r].sum16 + p0 / 16 + 2 * p, 4);
        }
        pm = _mm256_add_epi32(pm, _mm256_madd_epi16(ts.pair[p][h], _mm256_set1_epi32(pair)));
      }
      __m256i sumi = isum[r];
      if constexpr (!T::kMins && kPairs) sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(pm, 5));  // Q6_K's 32
      static_assert(T::kMins || T::kOffset == 32 || T::kOffset == 0);
      const __m256 da = _mm256_set1_ps(rows[r].d[p0 / 256]);
      __m256 a = _mm256_load_ps(acc + r * 16 + 8 * h);
      a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_mul_ps(ts.d[h], da), a);
      if constexpr (T::kMins) a = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(pm), _mm256_mul_ps(ts.m[h], da), a);
      _mm256_store_ps(acc + r * 16 + 8 * h, a);
    }
  }
}

template <typename T, int R = kWideQ8<T> ? 8 : 6>
inline void tile_rows_n(int rn, const uint8_t* tile, const TileScales& ts, int h, const Q8Row* rows,
                        const int16_t* const* a16, int64_t p0, float* acc) {
  if constexpr (R > 1) {
    if (rn < R) return tile_rows_n<T, R - 1>(rn, tile, ts, h, rows, a16, p0, acc);
  }
  tile_rows<T, R>(tile, ts, h, rows, a16, p0, acc);
}

// v (half h of row i's 16 results) into c's columns [c0 + 8h, c0 + cols).
inline void store_half(const QuantArgs& g, int64_t i, int64_t c0, int64_t cols, int h, __m256 v) {
  float* out = g.c + i * g.ldc + c0;
  if (g.a.scale) v = _mm256_mul_ps(v, _mm256_set1_ps(g.a.scale[i]));
  const int64_t n = std::clamp<int64_t>(cols - 8 * h, 0, 8);
  if (n == 8) {
    if (g.accumulate) v = _mm256_add_ps(_mm256_loadu_ps(out + 8 * h), v);
    _mm256_storeu_ps(out + 8 * h, v);
  } else if (n > 0) {
    alignas(32) float tmp[8];
    _mm256_store_ps(tmp, v);
    for (int64_t j = 0; j < n; ++j) out[8 * h + j] = g.accumulate ? out[8 * h + j] + tmp[j] : tmp[j];
  }
}

template <typename T>
void run_rows(const QuantArgs& g) {
  constexpr int kTileRows = kWideQ8<T> ? 8 : 6;
  // Rows sharing one decode of each tile's scales: acc 4 KiB, codes k * 64 bytes (Q8_0: also k * 64 bytes of
  // i16 codes).
  constexpr int64_t kChunk = kWideQ8<T> ? 32 : 64;
  const int64_t k = g.s.k, nb = k / T::kBlock, group_bytes = nb * T::kTile, n_groups = (g.s.n + 15) / 16;
  const auto* base = static_cast<const uint8_t*>(g.b.data);
  alignas(64) float acc[kChunk * 16];
  Q8Row rows[kChunk];
  const int16_t* a16[kChunk] = {};
  TileScales ts;
  for (int64_t i0 = 0; i0 < g.s.m; i0 += kChunk) {
    const int64_t rc = std::min(kChunk, g.s.m - i0);
    for (int64_t r = 0; r < rc; ++r) rows[r] = q8_row(q8_row_ptr(g.a, i0 + r), k);
    if constexpr (kWideQ8<T>) {
      auto* wide = static_cast<int16_t*>(matmul_detail::scratch(matmul_detail::kScratchB, size_t(rc * k) * 2));
      for (int64_t r = 0; r < rc; ++r) {
        a16[r] = wide + r * k;
        widen_q8_0(rows[r].q, k, wide + r * k);
      }
    }
    // Row tiles of near equal size (9 rows: 5 + 4, not 8 + 1).
    const int64_t n_tiles = (rc + kTileRows - 1) / kTileRows;
    for (int64_t grp = 0; grp < n_groups; ++grp) {
      const uint8_t* group = base + grp * group_bytes;
      std::fill(acc, acc + rc * 16, 0.0f);
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* tile = group + b * T::kTile;
        for (int l = 0; l < T::kTile; l += 64)
          _mm_prefetch(reinterpret_cast<const char*>(tile + kPrefetchAhead + l), _MM_HINT_T0);
        tile_scales<T>(tile, &ts);
        for (int h = 0; h < 2; ++h) {
          for (int64_t t = 0, r0 = 0; t < n_tiles; ++t) {
            const int rn = static_cast<int>(rc / n_tiles + (t < rc % n_tiles ? 1 : 0));
            tile_rows_n<T>(rn, tile, ts, h, rows + r0, a16 + r0, b * T::kBlock, acc + r0 * 16);
            r0 += rn;
          }
        }
      }
      const int64_t c0 = grp * 16, cols = std::min<int64_t>(16, g.s.n - c0);
      for (int64_t r = 0; r < rc; ++r)
        for (int h = 0; h < 2; ++h) store_half(g, i0 + r, c0, cols, h, _mm256_load_ps(acc + r * 16 + 8 * h));
    }
  }
}

// m <= 2: SmallMPlan's groups at a time, the last ones in narrower chunks (for_group_chunks).
template <typename T, int R>
void run_small_m(const QuantArgs& g, const Q8Row* rows) {
  const int64_t nb = g.s.k / T::kBlock, n_groups = (g.s.n + 15) / 16;
  const auto* base = static_cast<const uint8_t*>(g.b.data);
  const FarReach reach{reinterpret_cast<uintptr_t>(base + n_groups * nb * T::kTile),
                       reinterpret_cast<uintptr_t>(g.next)};
  for_group_chunks<SmallMPlan<T, R>::kStreams>(
      base, nb * T::kTile, n_groups, [&]<int G>(int64_t grp, const uint8_t* const* groups) {
        __m256 res[2 * R * G];
        group_rows<T, R, G>(groups, nb, rows, res, reach);
        for (int i = 0; i < G; ++i) {
          const int64_t c0 = (grp + i) * 16, cols = std::min<int64_t>(16, g.s.n - c0);
          for (int64_t r = 0; r < R; ++r)
            for (int h = 0; h < 2; ++h) store_half(g, r, c0, cols, h, res[2 * (R * i + r) + h]);
        }
      });
}

template <typename T>
void run(const QuantArgs& g) {
  if (g.s.m > kGroupRowsMax) return run_rows<T>(g);
  Q8Row rows[kGroupRowsMax];
  for (int64_t r = 0; r < g.s.m; ++r) rows[r] = q8_row(q8_row_ptr(g.a, r), g.s.k);
  if (g.s.m == 1) return run_small_m<T, 1>(g, rows);
  run_small_m<T, 2>(g, rows);
}

}  // namespace

void quant_panels_avx2(const QuantArgs& g) {
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
