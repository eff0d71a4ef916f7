// AVX2+F16C 16-bit float row conversions (see half_rows.h): 8 values per step, the tail through the
// scalar twin. f16 by vcvtph2ps / vcvtps2ph (round to nearest even); bf16 by a 16-bit shift, and back
// by util/dtype.h's integer round-to-nearest-even (NaN kept quiet): the scalar twin's bits.
#include <immintrin.h>

#include "kernels/half_rows.h"

namespace moe::half_detail {
namespace {

inline __m256 widen8(DType t, __m128i h) {
  if (t == DType::kF16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

inline __m128i narrow8(DType t, __m256 x) {
  if (t == DType::kF16) return _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256i b = _mm256_castps_si256(x);
  const __m256i hi = _mm256_srli_epi32(b, 16);
  const __m256i lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
  __m256i r = _mm256_srli_epi32(_mm256_add_epi32(b, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)), 16);
  // |x| bits above the infinity's: NaN (both sides non-negative, so the signed compare is right)
  const __m256i nan =
      _mm256_cmpgt_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
  r = _mm256_blendv_epi8(r, _mm256_or_si256(hi, _mm256_set1_epi32(0x40)), nan);
  // 8 values below 2^16 to 16 bits: pack within lanes, then the two lanes' low halves together
  const __m256i packed = _mm256_packus_epi32(r, r);
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}

}  // namespace

void widen_half_avx2(DType t, const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, widen8(t, _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  widen_half_ref(t, src + i, dst + i, n - i);
}

void narrow_half_avx2(DType t, const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), narrow8(t, _mm256_loadu_ps(src + i)));
  narrow_half_ref(t, src + i, dst + i, n - i);
}

}  // namespace moe::half_detail
