// AVX-512 16-bit float row conversions (see half_rows.h): 16 values per step, the tail masked. f16
// through the F16C-style vcvtph2ps / vcvtps2ph (round to nearest even); bf16 by shifting the 16 bits
// into the top of a float, and back by the integer round-to-nearest-even of util/dtype.h's
// f32_to_bf16 (NaN kept quiet), so both give the scalar twin's bits.
#include <immintrin.h>

#include <algorithm>

#include "kernels/avx512_common.h"
#include "kernels/half_rows.h"

namespace moe::half_detail {
namespace {

inline __m256i narrow16(DType t, __m512 x) {
  if (t == DType::kF16) return _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512i b = _mm512_castps_si512(x);
  const __m512i hi = _mm512_srli_epi32(b, 16);
  const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(b, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
  const __mmask16 nan =
      _mm512_cmpgt_epu32_mask(_mm512_and_si512(b, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

}  // namespace

void widen_half_avx512(DType t, const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mk = avx512::mask16(std::min<int64_t>(16, n - i));
    _mm512_mask_storeu_ps(dst + i, mk, avx512::widen_half16(_mm256_maskz_loadu_epi16(mk, src + i), t == DType::kF16));
  }
}

void narrow_half_avx512(DType t, const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mk = avx512::mask16(std::min<int64_t>(16, n - i));
    _mm256_mask_storeu_epi16(dst + i, mk, narrow16(t, _mm512_maskz_loadu_ps(mk, src + i)));
  }
}

}  // namespace moe::half_detail
