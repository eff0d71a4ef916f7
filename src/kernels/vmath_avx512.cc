// AVX-512 exp (see vmath.h): n = round(x / ln 2), r = x - n ln 2 in two parts, e^r by a degree-6
// polynomial on [-ln2/2, ln2/2] (Cephes expf coefficients), then scalef by 2^n. Inputs are
// clamped to [-104, 88.7] (e^-104 underflows to 0) and NaN inputs are passed through.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/vmath.h"

namespace moe::vmath_detail {
namespace {

inline __m512 exp16(__m512 x) {
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(88.7f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  __m512 y = _mm512_scalef_ps(p, n);
  y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(88.7f), _CMP_GT_OQ), y,
                           _mm512_set1_ps(__builtin_inff()));
  return _mm512_mask_blend_ps(nan, y, x);
}

inline __mmask16 tail(int64_t left) {
  return left >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << left) - 1);
}

}  // namespace

float max_avx512(const float* x, int64_t n) {
  __m512 m = _mm512_set1_ps(-__builtin_inff());
  for (int64_t i = 0; i < n; i += 16)
    m = _mm512_mask_max_ps(m, tail(n - i), m, _mm512_maskz_loadu_ps(tail(n - i), x + i));
  return _mm512_reduce_max_ps(m);
}

float sum_avx512(const float* x, int64_t n) {
  __m512 s = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(tail(n - i), x + i));
  return _mm512_reduce_add_ps(s);
}

float sumsq_avx512(const float* x, int64_t n) {
  __m512 s = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(tail(n - i), x + i);
    s = _mm512_fmadd_ps(v, v, s);
  }
  return _mm512_reduce_add_ps(s);
}

float dot3_avx512(const float* a, const float* b, const float* c, int64_t n) {
  __m512 s = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail(n - i);
    const __m512 ab = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i));
    s = _mm512_fmadd_ps(ab, _mm512_maskz_loadu_ps(k, c + i), s);
  }
  return _mm512_reduce_add_ps(s);
}

void exp_avx512(float* y, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

void rmsnorm_rows_avx512(float* out, float* rstd, const float* x, const float* w, int64_t n, int64_t c, double eps) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * c;
    const float r = static_cast<float>(1.0 / std::sqrt(sumsq_avx512(xi, c) / static_cast<double>(c) + eps));
    rstd[i] = r;
    const __m512 rv = _mm512_set1_ps(r);
    for (int64_t j = 0; j < c; j += 16) {
      const __mmask16 k = tail(c - j);
      const __m512 xr = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, xi + j), rv);
      _mm512_mask_storeu_ps(out + i * c + j, k, _mm512_mul_ps(xr, _mm512_maskz_loadu_ps(k, w + j)));
    }
  }
}

void rmsnorm_rows_backward_avx512(float* dx, const float* g, const float* x, const float* w, const float* rstd,
                                  int64_t n, int64_t c) {
  for (int64_t i = 0; i < n; ++i) {
    const float *gi = g + i * c, *xi = x + i * c;
    const float r = rstd[i];
    const float m = static_cast<float>(static_cast<double>(dot3_avx512(gi, w, xi, c)) * r / static_cast<double>(c));
    const __m512 rv = _mm512_set1_ps(r), mv = _mm512_set1_ps(m);
    for (int64_t j = 0; j < c; j += 16) {
      const __mmask16 k = tail(c - j);
      const __m512 gw = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, gi + j), _mm512_maskz_loadu_ps(k, w + j));
      const __m512 xrm = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, xi + j), rv), mv);
      const __m512 d = _mm512_mul_ps(rv, _mm512_sub_ps(gw, xrm));
      float* dxi = dx + i * c + j;
      _mm512_mask_storeu_ps(dxi, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, dxi), d));
    }
  }
}

void rmsnorm_rows_dw_avx512(float* dw, const float* g, const float* x, const float* rstd, int64_t n, int64_t c) {
  for (int64_t j = 0; j < c; j += 16) {  // a 16-column strip of dw stays in a register over all rows
    const __mmask16 k = tail(c - j);
    __m512 acc = _mm512_maskz_loadu_ps(k, dw + j);
    for (int64_t i = 0; i < n; ++i) {
      const __m512 gx = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + i * c + j), _mm512_maskz_loadu_ps(k, x + i * c + j));
      acc = _mm512_add_ps(acc, _mm512_mul_ps(gx, _mm512_set1_ps(rstd[i])));
    }
    _mm512_mask_storeu_ps(dw + j, k, acc);
  }
}

// max(x scale) = max(x) scale for scale > 0 (rounding is monotonic), so the scaled row is never stored.
void softmax_avx512(float* x, int64_t n, float scale, const float* sink) {
  if (n == 0) return;
  const __m512 sv = _mm512_set1_ps(scale);
  const float m = sink ? std::max(*sink, max_avx512(x, n) * scale) : max_avx512(x, n) * scale;
  const __m512 mx = _mm512_set1_ps(m);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail(n - i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), sv), mx));
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(k, e));
    _mm512_mask_storeu_ps(x + i, k, e);
  }
  const float extra = sink ? std::exp(*sink - m) : 0.0f;
  const __m512 inv = _mm512_set1_ps(1.0f / (_mm512_reduce_add_ps(sum) + extra));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail(n - i);
    _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), inv));
  }
}

void softmax_backward_avx512(float* d, const float* p, int64_t n, float scale) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail(n - i);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, d + i), _mm512_maskz_loadu_ps(k, p + i), acc);
  }
  const __m512 dot = _mm512_set1_ps(_mm512_reduce_add_ps(acc)), sv = _mm512_set1_ps(scale);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail(n - i);
    const __m512 pi = _mm512_maskz_loadu_ps(k, p + i);
    const __m512 di = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, d + i), dot);
    _mm512_mask_storeu_ps(d + i, k, _mm512_mul_ps(_mm512_mul_ps(pi, di), sv));
  }
}

inline __m512 sigmoid16(__m512 g) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
}

void swiglu_avx512(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(k, gate + i);
    const __m512 silu = _mm512_mul_ps(g, sigmoid16(g));
    _mm512_mask_storeu_ps(out + i, k, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(k, up + i)));
  }
}

void swiglu_backward_avx512(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                            float* out) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(k, gate + i), d = _mm512_maskz_loadu_ps(k, dout + i);
    const __m512 u = _mm512_maskz_loadu_ps(k, up + i);
    // gate and up usually come from memory (kept since the forward): fetch 2 KB ahead.
    _mm_prefetch(reinterpret_cast<const char*>(gate + i + 512), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(up + i + 512), _MM_HINT_T0);
    const __m512 sg = sigmoid16(g), silu = _mm512_mul_ps(g, sg);
    if (out != nullptr) _mm512_mask_storeu_ps(out + i, k, _mm512_mul_ps(silu, u));
    _mm512_mask_storeu_ps(dup + i, k, _mm512_mul_ps(d, silu));
    const __m512 dsg = _mm512_mul_ps(sg, _mm512_add_ps(one, _mm512_mul_ps(g, _mm512_sub_ps(one, sg))));
    _mm512_mask_storeu_ps(dgate + i, k, _mm512_mul_ps(_mm512_mul_ps(d, u), dsg));
  }
}

void adamw_avx512(const AdamWStep& s, float* p, float* m, float* v, const float* g, int64_t n) {
  const __m512 decay = _mm512_set1_ps(s.decay), b1 = _mm512_set1_ps(s.b1), b2 = _mm512_set1_ps(s.b2);
  const __m512 c1 = _mm512_set1_ps(1.0f - s.b1), c2 = _mm512_set1_ps(1.0f - s.b2);
  const __m512 step = _mm512_set1_ps(s.step_size), bc2 = _mm512_set1_ps(s.bc2_sqrt), eps = _mm512_set1_ps(s.eps);
  const __m512 scale = _mm512_set1_ps(s.grad_scale);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 gi = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + i), scale);
    // Separate multiply and add (no FMA) keep the scalar path's rounding.
    const __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_maskz_loadu_ps(k, m + i)), _mm512_mul_ps(c1, gi));
    const __m512 vi =
        _mm512_add_ps(_mm512_mul_ps(b2, _mm512_maskz_loadu_ps(k, v + i)), _mm512_mul_ps(_mm512_mul_ps(c2, gi), gi));
    const __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), bc2), eps);
    const __m512 pi = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + i), decay);
    _mm512_mask_storeu_ps(m + i, k, mi);
    _mm512_mask_storeu_ps(v + i, k, vi);
    _mm512_mask_storeu_ps(p + i, k, _mm512_sub_ps(pi, _mm512_div_ps(_mm512_mul_ps(step, mi), den)));
  }
}

}  // namespace moe::vmath_detail
