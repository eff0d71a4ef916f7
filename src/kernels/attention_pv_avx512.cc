// AVX-512 attention value product (see attention_pv.h, and attention_kv16.h for 16-bit value rows):
// positions go in spans of kSpan; per span, each block of up to 8 query rows runs over 32-column
// slices of the value rows with up to 16 zmm accumulators (carried through `out` between spans), each
// position adding its value row's 32 values times the rows' weights (16-bit rows widened in registers as
// they load). A span's value rows (64 x 128 floats = 32 KB at Dv 128) come from memory once and from L1 / L2
// for the other row blocks and slices. Per element the sum runs over positions in ascending order, as
// in the scalar twin, with fused multiply-adds: within float rounding of it.
#include <immintrin.h>

#include <algorithm>

#include "kernels/attention_kv16.h"
#include "kernels/attention_pv.h"
#include "kernels/avx512_common.h"

namespace moe::attention_detail {
namespace {

constexpr int64_t kSpan = 64;

// The 16 (masked) values at row as floats: f32, or f16 / bf16 widened.
struct LoadF32 {
  __m512 operator()(const float* row, __mmask16 mk) const { return _mm512_maskz_loadu_ps(mk, row); }
};
struct LoadHalf {
  bool f16;
  __m512 operator()(const uint16_t* row, __mmask16 mk) const {
    return avx512::widen_half16(_mm256_maskz_loadu_epi16(mk, row), f16);
  }
};

// Rows [0, R) of p and out, S 16-column slices from d0 (the last masked past dv), positions [j0, j1);
// first: from zero. Two slices share each position's 8 broadcast weights: one slice took 9 loads (8
// broadcasts and the value row) per 8 FMAs, so the load ports and not the FMAs bounded it.
template <int R, int S, typename T, typename Load>
void block(const float* p, const T* v, float* out, const PvShape& s, int64_t d0, int64_t j0, int64_t j1, bool first,
           Load load) {
  __mmask16 mk[S];
  for (int c = 0; c < S; ++c) mk[c] = avx512::mask16(std::min<int64_t>(16, s.dv - d0 - 16 * c));
  __m512 acc[R][S];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < S; ++c)
      acc[r][c] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mk[c], out + r * s.ldo + d0 + 16 * c);
  const T* row = v + j0 * s.ldv + d0;
  for (int64_t j = j0; j < j1; ++j, row += s.ldv) {
    __m512 x[S];
    for (int c = 0; c < S; ++c) x[c] = load(row + 16 * c, mk[c]);
    for (int r = 0; r < R; ++r) {
      const __m512 w = _mm512_set1_ps(p[r * s.ldp + j]);
      for (int c = 0; c < S; ++c) acc[r][c] = _mm512_fmadd_ps(w, x[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < S; ++c) _mm512_mask_storeu_ps(out + r * s.ldo + d0 + 16 * c, mk[c], acc[r][c]);
}

template <typename T, typename Load>
void pv(const float* p, const T* v, float* out, const PvShape& s, Load load) {
  if (s.n == 0) {  // no positions: zeros (nothing to add)
    if (s.accumulate) return;
    for (int64_t r = 0; r < s.m; ++r) std::fill(out + r * s.ldo, out + r * s.ldo + s.dv, 0.0f);
    return;
  }
  for (int64_t j0 = 0; j0 < s.n; j0 += kSpan) {
    const int64_t j1 = std::min(s.n, j0 + kSpan);
    const bool first = j0 == 0 && !s.accumulate;
    for (int64_t r0 = 0; r0 < s.m; r0 += 8) {
      const int rows = static_cast<int>(std::min<int64_t>(8, s.m - r0));
      for (int64_t d0 = 0; d0 < s.dv; d0 += 32) {
        avx512::with_rows<8>(rows, [&]<int R>() {
          if (s.dv - d0 > 16)
            block<R, 2>(p + r0 * s.ldp, v, out + r0 * s.ldo, s, d0, j0, j1, first, load);
          else
            block<R, 1>(p + r0 * s.ldp, v, out + r0 * s.ldo, s, d0, j0, j1, first, load);
        });
      }
    }
  }
}

}  // namespace

void attention_pv_avx512(const float* p, const float* v, float* out, const PvShape& s) { pv(p, v, out, s, LoadF32{}); }

void attention_pv16_avx512(const float* p, const uint16_t* v, DType t, float* out, const PvShape& s) {
  pv(p, v, out, s, LoadHalf{t == DType::kF16});
}

}  // namespace moe::attention_detail
