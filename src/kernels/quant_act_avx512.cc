// Activation quantization to Q8 rows (quant_matmul.h) with AVX-512: the scalar code's arithmetic (max |x|,
// the same scale divisions, round-to-even codes, exact integer sums), so the same bytes.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/quant_internal.h"

namespace moe::quant_detail {
namespace {

inline float abs_max(const float* x, int n) {  // n a multiple of 16
  const __m512 sign = _mm512_set1_ps(-0.0f);
  __m512 m = _mm512_setzero_ps();
  for (int e = 0; e < n; e += 16) m = _mm512_max_ps(m, _mm512_andnot_ps(sign, _mm512_loadu_ps(x + e)));
  return _mm512_reduce_max_ps(m);
}

// 16 codes round-to-even(x * scale) clamped to [lo, 127], stored; returns their sum.
inline int32_t codes16(const float* x, __m512 scale, __m512i lo, int8_t* q) {
  const __m512i v = _mm512_max_epi32(
      lo, _mm512_min_epi32(_mm512_set1_epi32(127), _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), scale))));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(v));
  return _mm512_reduce_add_epi32(v);
}

void row_q8_32(bool with_s, const float* x, int64_t k, int64_t b0, int64_t b1, uint8_t* o) {
  const Q8Row r = q8_row(o, k);
  auto* q = const_cast<int8_t*>(r.q);
  const __m512i lo = _mm512_set1_epi32(-128);
  for (int64_t b = b0; b < b1; ++b) {
    const float amax = abs_max(x + 32 * b, 32);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    const int32_t s0 = codes16(x + 32 * b, vid, lo, q + 32 * b);
    const int32_t s1 = codes16(x + 32 * b + 16, vid, lo, q + 32 * b + 16);
    const_cast<float*>(r.d)[b] = f16_to_f32(f32_to_f16(d));
    const_cast<float*>(r.s)[b] = with_s ? f16_to_f32(f32_to_f16(d * static_cast<float>(s0 + s1))) : 0.0f;
    const_cast<int32_t*>(r.sum32)[b] = s0 + s1;
    const_cast<int16_t*>(r.sum16)[2 * b] = static_cast<int16_t>(s0);
    const_cast<int16_t*>(r.sum16)[2 * b + 1] = static_cast<int16_t>(s1);
  }
}

void row_q8_256(const float* x, int64_t k, int64_t b0, int64_t b1, uint8_t* o) {
  const Q8Row r = q8_row(o, k);
  auto* q = const_cast<int8_t*>(r.q);
  const __m512i lo = _mm512_set1_epi32(INT32_MIN);
  for (int64_t b = b0; b < b1; ++b) {
    const float* xb = x + 256 * b;
    const float amax = abs_max(xb, 256);
    float max = 0.0f;  // the first element with that magnitude, signed
    for (int e = 0; e < 256; ++e) {
      if (std::fabs(xb[e]) == amax) {
        max = xb[e];
        break;
      }
    }
    const float iscale = amax != 0.0f ? -127.0f / max : 0.0f;
    const __m512 vs = _mm512_set1_ps(iscale);
    for (int j = 0; j < 16; ++j) {
      const int32_t s = codes16(xb + 16 * j, vs, lo, q + 256 * b + 16 * j);
      const_cast<int16_t*>(r.sum16)[16 * b + j] = static_cast<int16_t>(s);
    }
    for (int j = 0; j < 8; ++j)
      const_cast<int32_t*>(r.sum32)[8 * b + j] = r.sum16[16 * b + 2 * j] + r.sum16[16 * b + 2 * j + 1];
    const_cast<float*>(r.d)[b] = amax != 0.0f ? 1.0f / iscale : 0.0f;
  }
}

}  // namespace

void quantize_part_avx512(ActFormat format, const float* x, int64_t k, int64_t b0, int64_t b1, uint8_t* row) {
  if (format == ActFormat::kQ8_K) return row_q8_256(x, k, b0, b1, row);
  row_q8_32(format == ActFormat::kQ8_1, x, k, b0, b1, row);
}

}  // namespace moe::quant_detail
