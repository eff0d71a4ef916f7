// Quantized panel kernels for AVX-512 with VNNI (vpdpbusd: u8 weight codes x s8 activation codes, four
// per 32-bit lane): a zmm of 16 lanes is one k-group of the 16 rows of a weight group (quant_internal.h),
// so each vpdpbusd with a broadcast of 4 activation codes advances 16 output columns of one row of A.
// Per weight group: the sub-block scales of all its blocks are decoded once into a buffer, then each tile
// of up to 8 rows of A runs over the group's blocks: integer sums per sub-block, two FMAs into f32 lanes.
// The arithmetic is quant_matmul.cc's reference_kernel's, so the results are bit-identical to it.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

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
// The 4-bit part of k-group kg: line kg / 2, low nibbles for even kg, high for odd.
inline __m512i nibbles(const uint8_t* lines, int kg) {
  const __m512i v = load_line(lines + (kg / 2) * 64);
  return (kg & 1) ? high_nibbles(v) : low_nibbles(v);
}
// + 16 where the k-group's fifth bit (8 bytes, bit per byte of the line) is set.
inline __m512i add_fifth_bit(__m512i codes, const uint8_t* bits, int kg) {
  __mmask64 m;
  std::memcpy(&m, bits + kg * 8, 8);
  return _mm512_mask_add_epi8(codes, m, codes, _mm512_set1_epi8(0x10));
}

// Per type: kBlock, kSub, kTile (bytes of a 16-row tile), scales(tile, sw, mw) for every sub-block, and
// codes(tile, kg) the unsigned codes of k-group kg.
struct Q4_0T {
  static constexpr DType kType = DType::kQ4_0;
  static constexpr int kBlock = 32, kSub = 32, kTile = 288;
  static void scales(const uint8_t* t, __m512* sw, __m512* mw) {
    sw[0] = load_f16x16(t);
    mw[0] = _mm512_mul_ps(sw[0], _mm512_set1_ps(-8.0f));
  }
  static __m512i codes(const uint8_t* t, int kg) { return nibbles(t + 32, kg); }
};
struct Q4_1T {
  static constexpr DType kType = DType::kQ4_1;
  static constexpr int kBlock = 32, kSub = 32, kTile = 320;
  static void scales(const uint8_t* t, __m512* sw, __m512* mw) {
    sw[0] = load_f16x16(t);
    mw[0] = load_f16x16(t + 32);
  }
  static __m512i codes(const uint8_t* t, int kg) { return nibbles(t + 64, kg); }
};
struct Q5_0T {
  static constexpr DType kType = DType::kQ5_0;
  static constexpr int kBlock = 32, kSub = 32, kTile = 352;
  static void scales(const uint8_t* t, __m512* sw, __m512* mw) {
    sw[0] = load_f16x16(t);
    mw[0] = _mm512_mul_ps(sw[0], _mm512_set1_ps(-16.0f));
  }
  static __m512i codes(const uint8_t* t, int kg) { return add_fifth_bit(nibbles(t + 96, kg), t + 32, kg); }
};
struct Q5_1T {
  static constexpr DType kType = DType::kQ5_1;
  static constexpr int kBlock = 32, kSub = 32, kTile = 384;
  static void scales(const uint8_t* t, __m512* sw, __m512* mw) {
    sw[0] = load_f16x16(t);
    mw[0] = load_f16x16(t + 32);
  }
  static __m512i codes(const uint8_t* t, int kg) { return add_fifth_bit(nibbles(t + 128, kg), t + 64, kg); }
};
struct Q8_0T {
  static constexpr DType kType = DType::kQ8_0;
  static constexpr int kBlock = 32, kSub = 32, kTile = 544;
  static void scales(const uint8_t* t, __m512* sw, __m512* mw) {
    sw[0] = load_f16x16(t);
    mw[0] = _mm512_mul_ps(sw[0], _mm512_set1_ps(-128.0f));
  }
  static __m512i codes(const uint8_t* t, int kg) { return load_line(t + 32 + kg * 64); }
};
struct Mxfp4T {
  static constexpr DType kType = DType::kMXFP4;
  static constexpr int kBlock = 32, kSub = 32, kTile = 272;
  static void scales(const uint8_t* t, __m512* sw, __m512* mw) {
    // 2^(e - 128): exponent field e - 1 for e >= 2, the subnormals 2^-128, 2^-127 below.
    const __m512i e = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t)));
    const __m512i normal = _mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(1)), 23);
    const __m512i sub = _mm512_sllv_epi32(_mm512_set1_epi32(0x00200000), e);
    const __mmask16 small = _mm512_cmplt_epu32_mask(e, _mm512_set1_epi32(2));
    sw[0] = _mm512_castsi512_ps(_mm512_mask_blend_epi32(small, normal, sub));
    mw[0] = _mm512_mul_ps(sw[0], _mm512_set1_ps(-12.0f));
  }
  static __m512i codes(const uint8_t* t, int kg) {
    const __m512i table =
        _mm512_broadcast_i32x4(_mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0));
    return _mm512_shuffle_epi8(table, nibbles(t + 16, kg));
  }
};

// Q4_K / Q5_K: 6-bit scales and mins of sub-block j of the 16 rows from the 12 scale planes.
inline void k_scales_mins(const uint8_t* planes, int j, __m512* sc, __m512* mn) {
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
  *sc = u8x16_to_ps(s);
  *mn = u8x16_to_ps(m);
}
template <bool kFive>
struct QKAffineT {
  static constexpr DType kType = kFive ? DType::kQ5_K : DType::kQ4_K;
  static constexpr int kBlock = 256, kSub = 32, kTile = kFive ? 2816 : 2304;
  static void scales(const uint8_t* t, __m512* sw, __m512* mw) {
    const __m512 d = load_f16x16(t);
    const __m512 neg_dmin = _mm512_sub_ps(_mm512_setzero_ps(), load_f16x16(t + 32));
    for (int j = 0; j < 8; ++j) {
      __m512 sc, mn;
      k_scales_mins(t + 64, j, &sc, &mn);
      sw[j] = _mm512_mul_ps(d, sc);
      mw[j] = _mm512_mul_ps(neg_dmin, mn);
    }
  }
  static __m512i codes(const uint8_t* t, int kg) {
    if constexpr (kFive) return add_fifth_bit(nibbles(t + 768, kg), t + 256, kg);
    return nibbles(t + 256, kg);
  }
};
struct Q6_KT {
  static constexpr DType kType = DType::kQ6_K;
  static constexpr int kBlock = 256, kSub = 16, kTile = 3360;
  static void scales(const uint8_t* t, __m512* sw, __m512* mw) {
    const __m512 d = load_f16x16(t);
    for (int j = 0; j < 16; ++j) {
      const __m128i s8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 32 + 16 * j));
      sw[j] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(s8)));
      mw[j] = _mm512_mul_ps(sw[j], _mm512_set1_ps(-32.0f));
    }
  }
  static __m512i codes(const uint8_t* t, int kg) {
    const __m512i top = load_line(t + 288 + (kg / 4) * 64);
    __m512i hi;
    switch (kg % 4) {  // bits 2i, 2i + 1 of each byte to bits 4, 5
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
    return _mm512_or_si512(nibbles(t + 1312, kg), _mm512_and_si512(hi, _mm512_set1_epi8(0x30)));
  }
};

inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// R rows of A against one weight group: f[r] lanes = the 16 columns' results.
template <typename T, int R>
void group_rows(const uint8_t* group, int64_t nb, const __m512* sws, const __m512* mws, const Q8Row* rows, __m512* f) {
  constexpr int kKg = T::kSub / 4;                                         // k-groups per sub-block
  constexpr int kChains = R <= 2 ? (kKg >= 4 ? 4 : 2) : (R <= 4 ? 2 : 1);  // independent sums per row
  constexpr int kSubs = T::kBlock / T::kSub;
  for (int r = 0; r < R; ++r) f[r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tile = group + b * T::kTile;
    for (int s = 0; s < kSubs; ++s) {
      const int64_t p0 = b * T::kBlock + s * T::kSub;
      __m512i acc[R][kChains];
      for (int r = 0; r < R; ++r)
        for (int c = 0; c < kChains; ++c) acc[r][c] = _mm512_setzero_si512();
      for (int g = 0; g < kKg; ++g) {
        const __m512i w = T::codes(tile, s * kKg + g);
        for (int r = 0; r < R; ++r)
          acc[r][g % kChains] = _mm512_dpbusd_epi32(acc[r][g % kChains], w, bcast4(rows[r].q + p0 + 4 * g));
      }
      const __m512 sw = sws[b * kSubs + s], mw = mws[b * kSubs + s];
      for (int r = 0; r < R; ++r) {
        __m512i sum = acc[r][0];
        for (int c = 1; c < kChains; ++c) sum = _mm512_add_epi32(sum, acc[r][c]);
        const float sa = T::kSub == 32 ? rows[r].s32[p0 / 32] : rows[r].s16[p0 / 16];
        f[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(sw, _mm512_set1_ps(rows[r].d[p0 / 32])), f[r]);
        f[r] = _mm512_fmadd_ps(mw, _mm512_set1_ps(sa), f[r]);
      }
    }
  }
}

constexpr int kMaxRows = 8;

template <typename T>
void run(const QuantArgs& g) {
  const int64_t k = g.s.k, nb = k / T::kBlock, n_sub = nb * (T::kBlock / T::kSub);
  const int64_t group_bytes = nb * T::kTile, n_groups = (g.s.n + 15) / 16;
  auto* scales = static_cast<__m512*>(matmul_detail::scratch(matmul_detail::kScratchB, size_t(2 * n_sub) * 64));
  __m512* sws = scales;
  __m512* mws = scales + n_sub;
  const auto* base = static_cast<const uint8_t*>(g.b.data);
  for (int64_t grp = 0; grp < n_groups; ++grp) {
    const uint8_t* group = base + grp * group_bytes;
    for (int64_t b = 0; b < nb; ++b)
      T::scales(group + b * T::kTile, sws + b * (T::kBlock / T::kSub), mws + b * (T::kBlock / T::kSub));
    const int64_t c0 = grp * 16, cols = std::min<int64_t>(16, g.s.n - c0);
    const __mmask16 mask = static_cast<__mmask16>((1u << cols) - 1);
    for (int64_t i0 = 0; i0 < g.s.m; i0 += kMaxRows) {
      const int rn = static_cast<int>(std::min<int64_t>(kMaxRows, g.s.m - i0));
      Q8Row rows[kMaxRows];
      for (int r = 0; r < rn; ++r) rows[r] = q8_row(q8_row_ptr(g.a, i0 + r), k);
      __m512 f[kMaxRows];
      switch (rn) {
        case 1:
          group_rows<T, 1>(group, nb, sws, mws, rows, f);
          break;
        case 2:
          group_rows<T, 2>(group, nb, sws, mws, rows, f);
          break;
        case 3:
          group_rows<T, 3>(group, nb, sws, mws, rows, f);
          break;
        case 4:
          group_rows<T, 4>(group, nb, sws, mws, rows, f);
          break;
        case 5:
          group_rows<T, 5>(group, nb, sws, mws, rows, f);
          break;
        case 6:
          group_rows<T, 6>(group, nb, sws, mws, rows, f);
          break;
        case 7:
          group_rows<T, 7>(group, nb, sws, mws, rows, f);
          break;
        default:
          group_rows<T, 8>(group, nb, sws, mws, rows, f);
          break;
      }
      for (int r = 0; r < rn; ++r) {
        __m512 v = f[r];
        if (g.a.scale) v = _mm512_mul_ps(v, _mm512_set1_ps(g.a.scale[i0 + r]));
        float* out = g.c + (i0 + r) * g.ldc + c0;
        if (g.accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), v);
        _mm512_mask_storeu_ps(out, mask, v);
      }
    }
  }
}

}  // namespace

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
    default:
      break;
  }
}

}  // namespace moe::quant_detail
