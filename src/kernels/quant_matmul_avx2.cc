// Quantized panel kernels for AVX2 (no VNNI): the layout and arithmetic of the AVX-512 VNNI kernels on
// two ymm halves of a weight group (rows 0-7 and 8-15). A k-group's dot product is vpmaddubsw (u8 codes x
// s8 activations into saturating i16 pairs) then vpmaddwd with ones; codes of at most 63 never saturate.
// Q8_0's codes (q + 128, up to 255) could: its sums use the signed codes with the sign trick, which is the
// offset-corrected sum directly. Block scales come from the scalar block_scales, so results are
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

constexpr int kMaxRows = 4;

// Decoded scales of one block of a group: d and m / dmin per row, then the K-quants' int32 sub-block scales
// and mins, lane = row of the group.
struct GroupScales {
  alignas(32) float d[16], m[16];
  alignas(32) int32_t sc[16][16], mn[16][16];
};

// Exact integer sums of one sub-block (n codes from element p0) for R rows, as two halves of 8 lanes.
template <int R>
void sub_block_sums(const QuantFormat& f, const uint8_t* tile, int kg0, int n, const Q8Row* rows, int64_t p0,
                    __m256i (*isum)[2]) {
  const bool q8 = f.code_bits == 8;
  for (int r = 0; r < R; ++r) isum[r][0] = isum[r][1] = _mm256_setzero_si256();
  for (int g = 0; g < n / 4; ++g) {
    for (int h = 0; h < 2; ++h) {
      __m256i w = codes_half(f, tile, kg0 + g, h);
      if (q8) w = _mm256_xor_si256(w, _mm256_set1_epi8(static_cast<char>(0x80)));  // back to signed q
      for (int r = 0; r < R; ++r)
        isum[r][h] = _mm256_add_epi32(isum[r][h], dot4(w, bcast4(rows[r].q + p0 + 4 * g), q8));
    }
  }
}

// R rows of A against one weight group (16 columns as two halves).
template <int R>
void group_rows(const QuantFormat& f, const uint8_t* group, int64_t nb, const GroupScales* scales, const Q8Row* rows,
                __m256* out) {
  const DType t = f.dtype;
  const int off = f.code_bits == 8 ? 0 : code_offset(t);  // Q8_0's signed sums need no correction
  const bool affine = t == DType::kQ4_1 || t == DType::kQ5_1, mins = t == DType::kQ4_K || t == DType::kQ5_K;
  __m256 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  __m256i isum[R][2];
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tile = group + b * f.tile_bytes();
    const GroupScales& gs = scales[b];
    const int64_t p0 = b * f.block;
    if (f.block == 32) {
      sub_block_sums<R>(f, tile, 0, 32, rows, p0, isum);
      for (int r = 0; r < R; ++r) {
        const __m256i o = _mm256_set1_epi32(off * rows[r].sum32[p0 / 32]);
        const __m256 da = _mm256_set1_ps(rows[r].d[p0 / 32]), sa = _mm256_set1_ps(rows[r].s[p0 / 32]);
        for (int h = 0; h < 2; ++h) {
          const __m256 x = _mm256_cvtepi32_ps(_mm256_sub_epi32(isum[r][h], o));
          acc[r][h] = _mm256_fmadd_ps(x, _mm256_mul_ps(_mm256_load_ps(gs.d + 8 * h), da), acc[r][h]);
          if (affine) acc[r][h] = _mm256_fmadd_ps(_mm256_load_ps(gs.m + 8 * h), sa, acc[r][h]);
        }
      }
      continue;
    }
    __m256i sumi[R][2], summ[R][2];
    for (int r = 0; r < R; ++r) sumi[r][0] = sumi[r][1] = summ[r][0] = summ[r][1] = _mm256_setzero_si256();
    for (int j = 0; j < f.block / f.sub; ++j) {
      const int64_t s0 = p0 + j * f.sub;
      sub_block_sums<R>(f, tile, j * (f.sub / 4), f.sub, rows, s0, isum);
      for (int r = 0; r < R; ++r) {
        const __m256i o = _mm256_set1_epi32(f.sub == 16 ? off * rows[r].sum16[s0 / 16] : 0);
        for (int h = 0; h < 2; ++h) {
          const __m256i sc = _mm256_load_si256(reinterpret_cast<const __m256i*>(gs.sc[j] + 8 * h));
          sumi[r][h] = _mm256_add_epi32(sumi[r][h], _mm256_mullo_epi32(_mm256_sub_epi32(isum[r][h], o), sc));
          if (mins) {
            const __m256i mn = _mm256_load_si256(reinterpret_cast<const __m256i*>(gs.mn[j] + 8 * h));
            summ[r][h] =
                _mm256_add_epi32(summ[r][h], _mm256_mullo_epi32(mn, _mm256_set1_epi32(rows[r].sum32[s0 / 32])));
          }
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const __m256 da = _mm256_set1_ps(rows[r].d[p0 / 256]);
      for (int h = 0; h < 2; ++h) {
        acc[r][h] =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[r][h]), _mm256_mul_ps(_mm256_load_ps(gs.d + 8 * h), da), acc[r][h]);
        if (mins)
          acc[r][h] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(summ[r][h]), _mm256_mul_ps(_mm256_load_ps(gs.m + 8 * h), da),
                                       acc[r][h]);
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
  const int64_t k = g.s.k, nb = k / f.block;
  const int64_t group_bytes = nb * f.tile_bytes(), n_groups = (g.s.n + 15) / 16;
  auto* scales =
      static_cast<GroupScales*>(matmul_detail::scratch(matmul_detail::kScratchB, size_t(nb) * sizeof(GroupScales)));
  const auto* base = static_cast<const uint8_t*>(g.b.data);
  uint8_t head[32], codes[256];
  BlockScales bs;
  for (int64_t grp = 0; grp < n_groups; ++grp) {
    const uint8_t* group = base + grp * group_bytes;
    for (int64_t b = 0; b < nb; ++b) {
      for (int r = 0; r < 16; ++r) {
        tile_read(f, group + b * f.tile_bytes(), r, head, codes);
        block_scales(g.b.dtype, head, &bs);
        scales[b].d[r] = bs.d;
        scales[b].m[r] = bs.dmin;
        for (int j = 0; j < f.block / f.sub && f.block == 256; ++j) {
          scales[b].sc[j][r] = bs.sc[j];
          scales[b].mn[j][r] = bs.mn[j];
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
          group_rows<1>(f, group, nb, scales, rows, res);
          break;
        case 2:
          group_rows<2>(f, group, nb, scales, rows, res);
          break;
        case 3:
          group_rows<3>(f, group, nb, scales, rows, res);
          break;
        default:
          group_rows<4>(f, group, nb, scales, rows, res);
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
