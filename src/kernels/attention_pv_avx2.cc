// AVX2+FMA attention value product (see attention_pv.h): positions go in spans of kSpan; within a
// span each block of 4 query rows runs over the 16-column slices, keeping 8 accumulators (carried
// through `out` between spans) while the positions add their value rows' 16 floats times the 4 rows'
// weights, so a span's value rows come from memory once and from L1 / L2 for the other row blocks
// and slices. Per
// element the sum runs over positions in ascending order, as in the scalar twin, but with fused
// multiply-adds: results within float rounding of it. Tails of rows and columns are masked.
#include <immintrin.h>

#include <algorithm>

#include "kernels/attention_pv.h"

namespace moe::attention_detail {
namespace {

inline __m256i tail_mask(int64_t k) {  // the first k of 8 lanes
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(k)), idx);
}

constexpr int64_t kSpan = 64;

// Rows [0, R) of p and out, columns [d0, d0 + 16), positions [j0, j1); first: start from zero.
template <int R>
void block(const float* p, const float* v, float* out, const PvShape& s, int64_t d0, int64_t j0, int64_t j1,
           bool first) {
  const int64_t w = std::min<int64_t>(16, s.dv - d0);
  const __m256i m0 = tail_mask(std::min<int64_t>(8, w)), m1 = tail_mask(std::max<int64_t>(0, w - 8));
  __m256 acc[R][2];
  for (int r = 0; r < R; ++r) {
    if (first) {
      acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    } else {
      acc[r][0] = _mm256_maskload_ps(out + r * s.ldo + d0, m0);
      acc[r][1] = _mm256_maskload_ps(out + r * s.ldo + d0 + 8, m1);
    }
  }
  const float* row = v + j0 * s.ldv + d0;
  if (w == 16) {
    for (int64_t j = j0; j < j1; ++j, row += s.ldv) {
      const __m256 v0 = _mm256_loadu_ps(row), v1 = _mm256_loadu_ps(row + 8);
      for (int r = 0; r < R; ++r) {
        const __m256 pw = _mm256_broadcast_ss(p + r * s.ldp + j);
        acc[r][0] = _mm256_fmadd_ps(pw, v0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(pw, v1, acc[r][1]);
      }
    }
  } else {
    for (int64_t j = j0; j < j1; ++j, row += s.ldv) {
      const __m256 v0 = _mm256_maskload_ps(row, m0), v1 = _mm256_maskload_ps(row + 8, m1);
      for (int r = 0; r < R; ++r) {
        const __m256 pw = _mm256_broadcast_ss(p + r * s.ldp + j);
        acc[r][0] = _mm256_fmadd_ps(pw, v0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(pw, v1, acc[r][1]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    _mm256_maskstore_ps(out + r * s.ldo + d0, m0, acc[r][0]);
    _mm256_maskstore_ps(out + r * s.ldo + d0 + 8, m1, acc[r][1]);
  }
}

}  // namespace

void attention_pv_avx2(const float* p, const float* v, float* out, const PvShape& s) {
  if (s.n == 0) {  // no positions: zeros (nothing to add)
    if (s.accumulate) return;
    for (int64_t r = 0; r < s.m; ++r) std::fill(out + r * s.ldo, out + r * s.ldo + s.dv, 0.0f);
    return;
  }
  for (int64_t j0 = 0; j0 < s.n; j0 += kSpan) {  // a span's value rows once from memory for all row blocks
    const int64_t j1 = std::min(s.n, j0 + kSpan);
    for (int64_t r0 = 0; r0 < s.m; r0 += 4) {
      const int64_t rows = std::min<int64_t>(4, s.m - r0);
      const float* pr = p + r0 * s.ldp;
      float* orow = out + r0 * s.ldo;
      for (int64_t d0 = 0; d0 < s.dv; d0 += 16) {
        switch (rows) {
          case 1:
            block<1>(pr, v, orow, s, d0, j0, j1, j0 == 0 && !s.accumulate);
            break;
          case 2:
            block<2>(pr, v, orow, s, d0, j0, j1, j0 == 0 && !s.accumulate);
            break;
          case 3:
            block<3>(pr, v, orow, s, d0, j0, j1, j0 == 0 && !s.accumulate);
            break;
          default:
            block<4>(pr, v, orow, s, d0, j0, j1, j0 == 0 && !s.accumulate);
            break;
        }
      }
    }
  }
}

}  // namespace moe::attention_detail
