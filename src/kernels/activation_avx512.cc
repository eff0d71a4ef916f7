// AVX-512 silu(gate) * up: e^-g by range reduction and a polynomial, 16 lanes per step, masked tail.
#include <immintrin.h>

#include "kernels/activation.h"

namespace moe::activation_detail {
namespace {

// e^x for x clamped to [-88, 100]: below, e^x is ~0 either way; above, it overflows to +inf exactly as
// std::exp does, while r stays accurate (so g = -inf gives -inf / inf = NaN like the scalar twin). A NaN
// x becomes finite here; the caller's numerator g keeps the NaN. x = n ln2 + r, |r| <= ln2 / 2; e^r by
// its Taylor polynomial to r^6 (truncation < 2e-7 relative); 2^n applied exactly by vscalefps.
inline __m512 exp_clamped(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(100.0f)), _mm512_set1_ps(-88.0f));
  const __m512 n =
      _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln2 split in two for exact n*ln2_hi
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

inline __m512 silu_mul16(__m512 g, __m512 u) {
  const __m512 e = exp_clamped(_mm512_sub_ps(_mm512_setzero_ps(), g));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

// (clamp(u) + up_add) * g / (1 + e^(-alpha g)), g = min(gate, limit): vminps / vmaxps return their second
// operand when either is NaN, so the data goes second and a NaN passes through.
inline __m512 swiglu_clamped16(__m512 g, __m512 u, const ClampedSwiglu& p) {
  const __m512 lim = _mm512_set1_ps(p.limit);
  g = _mm512_min_ps(lim, g);
  u = _mm512_min_ps(lim, _mm512_max_ps(_mm512_set1_ps(-p.limit), u));
  const __m512 e = exp_clamped(_mm512_mul_ps(_mm512_set1_ps(-p.alpha), g));
  const __m512 s = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
  return _mm512_mul_ps(_mm512_add_ps(u, _mm512_set1_ps(p.up_add)), s);
}

}  // namespace

void swiglu_clamped_avx512(const float* gate, const float* up, float* out, int64_t n, const ClampedSwiglu& p) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, swiglu_clamped16(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i), p));
  if (i < n) {
    const __mmask16 mk = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(out + i, mk,
                          swiglu_clamped16(_mm512_maskz_loadu_ps(mk, gate + i), _mm512_maskz_loadu_ps(mk, up + i), p));
  }
}

void silu_mul_avx512(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, silu_mul16(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
  if (i < n) {
    const __mmask16 mk = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(out + i, mk,
                          silu_mul16(_mm512_maskz_loadu_ps(mk, gate + i), _mm512_maskz_loadu_ps(mk, up + i)));
  }
}

}  // namespace moe::activation_detail
