// Quantized panel kernels for AVX2 (no VNNI): the layout and arithmetic of the AVX-512 VNNI kernels on
// two ymm halves of a weight group (rows 0-7 and 8-15). A k-group's dot product is vpmaddubsw (u8 codes x
// s8 activations into saturating i16 pairs) then vpmaddwd with ones; codes of at most 63 never saturate.
// Q8_0's codes (q + 128, up to 255) could: its sums use the signed codes with the sign trick and add
// 128 x the activations' sum. Sub-block scales come from the scalar sub_scales, so results are
// bit-identical to the reference.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/matmul_internal.h"
#include "kernels/quant_internal.h"

namespace moe::quant_detail {
namespace {

inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// Unsigned codes of k-group kg, half h (rows 8h..8h+7), 32 bytes.
__m256i codes_half(const QuantFormat& f, const uint8_t* tile, int kg, int h) {
  const uint8_t* lines = tile + f.tile_lines_offset();
  if (f.code_bits == 8) return load32(lines + kg * 64 + 32 * h);
  const __m256i m15 = _mm256_set1_epi8(0x0F);
  const __m256i v = load32(lines + (kg / 2) * 64 + 32 * h);
  __m256i c = (kg & 1) ? _mm256_and_si256(_mm256_srli_epi16(v, 4), m15) : _mm256_and_si256(v, m15);
  const uint8_t* bits = tile + f.tile_bits_offset();
  if (f.code_bits == 5) {
    uint32_t word;
    std::memcpy(&word, bits + kg * 8 + 4 * h, 4);
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int32_t>(word)),
                                               _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                                                2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    c = _mm256_add_epi8(c, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
  } else if (f.code_bits == 6) {
    const __m256i top = load32(bits + (kg / 4) * 64 + 32 * h);
    __m256i hi;
    switch (kg % 4) {
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
    c = _mm256_or_si256(c, _mm256_and_si256(hi, _mm256_set1_epi8(0x30)));
  }
  if (f.dtype == DType::kMXFP4) {
    const __m256i table = _mm256_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0, 12, 13, 14, 15,
                                           16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0);
    c = _mm256_shuffle_epi8(table, c);
  }
  return c;
}

// 8 lanes of sum over 4 bytes of w * a (w unsigned <= 63 or, for Q8_0, signed via the sign trick).
inline __m256i dot4(__m256i w, __m256i a, bool signed_w) {
  const __m256i ones = _mm256_set1_epi16(1);
  if (signed_w) return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w)), ones);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), ones);
}

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

inline int32_t sum_codes(const int8_t* q, int n) {
  int32_t s = 0;
  for (int e = 0; e < n; ++e) s += q[e];
  return s;
}

constexpr int kMaxRows = 4;

// R rows of A against one weight group (16 columns as two halves).
template <int R>
void group_rows(const QuantFormat& f, const uint8_t* group, int64_t nb, const float* sws, const float* mws,
                const Q8Row* rows, __m256* out) {
  const int kg_per_sub = f.sub / 4, n_sub = f.block / f.sub;
  const bool q8 = f.code_bits == 8;
  __m256 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tile = group + b * f.tile_bytes();
    for (int s = 0; s < n_sub; ++s) {
      const int64_t p0 = b * f.block + s * f.sub;
      __m256i isum[R][2];
      for (int r = 0; r < R; ++r) isum[r][0] = isum[r][1] = _mm256_setzero_si256();
      for (int g = 0; g < kg_per_sub; ++g) {
        for (int h = 0; h < 2; ++h) {
          __m256i w = codes_half(f, tile, s * kg_per_sub + g, h);
          if (q8) w = _mm256_xor_si256(w, _mm256_set1_epi8(static_cast<char>(0x80)));  // back to signed q
          for (int r = 0; r < R; ++r)
            isum[r][h] = _mm256_add_epi32(isum[r][h], dot4(w, bcast4(rows[r].q + p0 + 4 * g), q8));
        }
      }
      const float* sw = sws + (b * n_sub + s) * 16;
      const float* mw = mws + (b * n_sub + s) * 16;
      for (int r = 0; r < R; ++r) {
        const __m256 da = _mm256_set1_ps(rows[r].d[p0 / 32]);
        const __m256 sa = _mm256_set1_ps(f.sub == 32 ? rows[r].s32[p0 / 32] : rows[r].s16[p0 / 16]);
        const __m256i bias = q8 ? _mm256_set1_epi32(128 * sum_codes(rows[r].q + p0, f.sub)) : _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
          const __m256 x = _mm256_cvtepi32_ps(_mm256_add_epi32(isum[r][h], bias));
          acc[r][h] = _mm256_fmadd_ps(x, _mm256_mul_ps(_mm256_load_ps(sw + 8 * h), da), acc[r][h]);
          acc[r][h] = _mm256_fmadd_ps(_mm256_load_ps(mw + 8 * h), sa, acc[r][h]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    out[2 * r] = acc[r][0];
    out[2 * r + 1] = acc[r][1];
  }
}

}  // namespace

void quant_panels_avx2(const QuantArgs& g) {
  const QuantFormat& f = quant_format(g.b.dtype);
  const int64_t k = g.s.k, nb = k / f.block, n_sub = nb * (f.block / f.sub);
  const int64_t group_bytes = nb * f.tile_bytes(), n_groups = (g.s.n + 15) / 16;
  // Sub-block scales of one group, [n_sub][16] each (lane = row of the group).
  auto* sws = static_cast<float*>(matmul_detail::scratch(matmul_detail::kScratchB, size_t(2 * n_sub * 16) * 4));
  float* mws = sws + n_sub * 16;
  const auto* base = static_cast<const uint8_t*>(g.b.data);
  uint8_t head[32], codes[256];
  float sw[16], mw[16];
  for (int64_t grp = 0; grp < n_groups; ++grp) {
    const uint8_t* group = base + grp * group_bytes;
    for (int64_t b = 0; b < nb; ++b) {
      for (int r = 0; r < 16; ++r) {
        tile_read(f, group + b * f.tile_bytes(), r, head, codes);
        sub_scales(g.b.dtype, head, sw, mw);
        for (int s = 0; s < f.block / f.sub; ++s) {
          sws[(b * (f.block / f.sub) + s) * 16 + r] = sw[s];
          mws[(b * (f.block / f.sub) + s) * 16 + r] = mw[s];
        }
      }
    }
    const int64_t c0 = grp * 16, cols = std::min<int64_t>(16, g.s.n - c0);
    for (int64_t i0 = 0; i0 < g.s.m; i0 += kMaxRows) {
      const int rn = static_cast<int>(std::min<int64_t>(kMaxRows, g.s.m - i0));
      Q8Row rows[kMaxRows];
      for (int r = 0; r < rn; ++r) rows[r] = q8_row(q8_row_ptr(g.a, i0 + r), k);
      __m256 res[2 * kMaxRows];
      switch (rn) {
        case 1:
          group_rows<1>(f, group, nb, sws, mws, rows, res);
          break;
        case 2:
          group_rows<2>(f, group, nb, sws, mws, rows, res);
          break;
        case 3:
          group_rows<3>(f, group, nb, sws, mws, rows, res);
          break;
        default:
          group_rows<4>(f, group, nb, sws, mws, rows, res);
          break;
      }
      for (int r = 0; r < rn; ++r) {
        alignas(32) float v[16];
        _mm256_store_ps(v, res[2 * r]);
        _mm256_store_ps(v + 8, res[2 * r + 1]);
        float* out = g.c + (i0 + r) * g.ldc + c0;
        for (int64_t j = 0; j < cols; ++j) {
          const float x = g.a.scale ? v[j] * g.a.scale[i0 + r] : v[j];
          out[j] = g.accumulate ? out[j] + x : x;
        }
      }
    }
  }
}

}  // namespace moe::quant_detail
