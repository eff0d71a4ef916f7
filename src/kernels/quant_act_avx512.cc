// Activation quantization to Q8 rows (quant_matmul.h) with AVX-512: the scalar code's arithmetic
// (max |x|, d = max / 127, round-to-even of x / d, exact integer sums), so the same bytes.
#include <immintrin.h>

#include "kernels/quant_internal.h"

namespace moe::quant_detail {

void quantize_rows_q8_avx512(const float* x, int64_t ldx, const int32_t* idx, int64_t m, int64_t k, uint8_t* out) {
  const int64_t rb = q8_row_bytes(k);
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (int64_t i = 0; i < m; ++i) {
    const float* xr = x + (idx ? int64_t(idx[i]) : i) * ldx;
    uint8_t* o = out + i * rb;
    auto* d = reinterpret_cast<float*>(o + k);
    float* s32 = d + k / 32;
    float* s16 = d + k / 16;
    for (int64_t b = 0; b < k / 32; ++b) {
      const __m512 x0 = _mm512_loadu_ps(xr + 32 * b), x1 = _mm512_loadu_ps(xr + 32 * b + 16);
      const __m512 a = _mm512_max_ps(_mm512_andnot_ps(sign, x0), _mm512_andnot_ps(sign, x1));
      const float amax = _mm512_reduce_max_ps(a);
      const float db = amax / 127.0f;
      const float id = db != 0.0f ? 1.0f / db : 0.0f;
      const __m512 vid = _mm512_set1_ps(id);
      const __m512i lim = _mm512_set1_epi32(127), nlim = _mm512_set1_epi32(-127);
      const __m512i q0 = _mm512_max_epi32(nlim, _mm512_min_epi32(lim, _mm512_cvtps_epi32(_mm512_mul_ps(x0, vid))));
      const __m512i q1 = _mm512_max_epi32(nlim, _mm512_min_epi32(lim, _mm512_cvtps_epi32(_mm512_mul_ps(x1, vid))));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 32 * b), _mm512_cvtepi32_epi8(q0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 32 * b + 16), _mm512_cvtepi32_epi8(q1));
      const int32_t sum0 = _mm512_reduce_add_epi32(q0), sum1 = _mm512_reduce_add_epi32(q1);
      d[b] = db;
      s32[b] = db * static_cast<float>(sum0 + sum1);
      s16[2 * b] = db * static_cast<float>(sum0);
      s16[2 * b + 1] = db * static_cast<float>(sum1);
    }
  }
}

}  // namespace moe::quant_detail
