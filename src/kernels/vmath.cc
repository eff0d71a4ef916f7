// The scalar twins of the vectorized math (vmath.h), and the dispatch that runs the AVX-512
// kernels (vmath_avx512.cc) where the active ISA has them and the twins below it.
#include "kernels/vmath.h"

#include <algorithm>
#include <cmath>

#include "runtime/cpu_features.h"

namespace moe {

void exp_f32_ref(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

float max_f32_ref(const float* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

float sum_f32_ref(const float* x, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i];
  return s;
}

float sumsq_f32_ref(const float* x, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}

float dot3_f32_ref(const float* a, const float* b, const float* c, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i] * c[i];
  return s;
}

void rmsnorm_rows_f32_ref(float* out, float* rstd, const float* x, const float* w, int64_t n, int64_t c, double eps) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * c;
    float ss = 0;
    for (int64_t j = 0; j < c; ++j) ss += xi[j] * xi[j];
    const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(c) + eps));
    rstd[i] = r;
    for (int64_t j = 0; j < c; ++j) out[i * c + j] = xi[j] * r * w[j];
  }
}

void rmsnorm_rows_backward_f32_ref(float* dx, const float* g, const float* x, const float* w, const float* rstd,
                                   int64_t n, int64_t c) {
  for (int64_t i = 0; i < n; ++i) {
    const float *gi = g + i * c, *xi = x + i * c, r = rstd[i];
    float dot = 0;
    for (int64_t j = 0; j < c; ++j) dot += gi[j] * w[j] * xi[j];
    const float m = static_cast<float>(static_cast<double>(dot) * r / static_cast<double>(c));
    for (int64_t j = 0; j < c; ++j) dx[i * c + j] += r * (gi[j] * w[j] - xi[j] * r * m);
  }
}

void rmsnorm_rows_dw_f32_ref(float* dw, const float* g, const float* x, const float* rstd, int64_t n, int64_t c) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) dw[j] += g[i * c + j] * x[i * c + j] * rstd[i];
}

void softmax_f32_ref(float* x, int64_t n, float scale, const float* sink) {
  if (n == 0) return;
  for (int64_t i = 0; i < n; ++i) x[i] *= scale;
  const float mx = sink ? std::max(*sink, max_f32_ref(x, n)) : max_f32_ref(x, n);
  float sum = sink ? std::exp(*sink - mx) : 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - mx));
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void softmax_backward_f32_ref(float* d, const float* p, int64_t n, float scale) {
  float dot = 0;
  for (int64_t i = 0; i < n; ++i) dot += d[i] * p[i];
  for (int64_t i = 0; i < n; ++i) d[i] = p[i] * (d[i] - dot) * scale;
}

void swiglu_f32_ref(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] * (1.0f / (1.0f + std::exp(-gate[i]))) * up[i];
}

void swiglu_backward_f32_ref(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                             float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], sg = 1.0f / (1.0f + std::exp(-g)), d = dout[i];
    if (out != nullptr) out[i] = g * sg * up[i];
    dup[i] = d * (g * sg);
    dgate[i] = d * up[i] * (sg * (1.0f + g * (1.0f - sg)));
  }
}

void adamw_f32_ref(const AdamWStep& s, float* p, float* m, float* v, const float* g, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * s.grad_scale;
    p[i] *= s.decay;
    m[i] = s.b1 * m[i] + (1.0f - s.b1) * gi;
    v[i] = s.b2 * v[i] + (1.0f - s.b2) * gi * gi;
    p[i] -= s.step_size * m[i] / (std::sqrt(v[i]) / s.bc2_sqrt + s.eps);
  }
}

namespace {
bool use_avx512() { return active_isa() >= Isa::kAvx512; }
}  // namespace

void exp_f32(float* y, const float* x, int64_t n) {
  use_avx512() ? vmath_detail::exp_avx512(y, x, n) : exp_f32_ref(y, x, n);
}

float max_f32(const float* x, int64_t n) { return use_avx512() ? vmath_detail::max_avx512(x, n) : max_f32_ref(x, n); }

float sum_f32(const float* x, int64_t n) { return use_avx512() ? vmath_detail::sum_avx512(x, n) : sum_f32_ref(x, n); }

float sumsq_f32(const float* x, int64_t n) {
  return use_avx512() ? vmath_detail::sumsq_avx512(x, n) : sumsq_f32_ref(x, n);
}

float dot3_f32(const float* a, const float* b, const float* c, int64_t n) {
  return use_avx512() ? vmath_detail::dot3_avx512(a, b, c, n) : dot3_f32_ref(a, b, c, n);
}

void rmsnorm_rows_f32(float* out, float* rstd, const float* x, const float* w, int64_t n, int64_t c, double eps) {
  use_avx512() ? vmath_detail::rmsnorm_rows_avx512(out, rstd, x, w, n, c, eps)
               : rmsnorm_rows_f32_ref(out, rstd, x, w, n, c, eps);
}

void rmsnorm_rows_backward_f32(float* dx, const float* g, const float* x, const float* w, const float* rstd, int64_t n,
                               int64_t c) {
  use_avx512() ? vmath_detail::rmsnorm_rows_backward_avx512(dx, g, x, w, rstd, n, c)
               : rmsnorm_rows_backward_f32_ref(dx, g, x, w, rstd, n, c);
}

void rmsnorm_rows_dw_f32(float* dw, const float* g, const float* x, const float* rstd, int64_t n, int64_t c) {
  use_avx512() ? vmath_detail::rmsnorm_rows_dw_avx512(dw, g, x, rstd, n, c)
               : rmsnorm_rows_dw_f32_ref(dw, g, x, rstd, n, c);
}

void softmax_f32(float* x, int64_t n, float scale, const float* sink) {
  use_avx512() ? vmath_detail::softmax_avx512(x, n, scale, sink) : softmax_f32_ref(x, n, scale, sink);
}

void softmax_backward_f32(float* d, const float* p, int64_t n, float scale) {
  use_avx512() ? vmath_detail::softmax_backward_avx512(d, p, n, scale) : softmax_backward_f32_ref(d, p, n, scale);
}

void swiglu_f32(float* out, const float* gate, const float* up, int64_t n) {
  use_avx512() ? vmath_detail::swiglu_avx512(out, gate, up, n) : swiglu_f32_ref(out, gate, up, n);
}

void swiglu_backward_f32(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                         float* out) {
  use_avx512() ? vmath_detail::swiglu_backward_avx512(dgate, dup, dout, gate, up, n, out)
               : swiglu_backward_f32_ref(dgate, dup, dout, gate, up, n, out);
}

void adamw_f32(const AdamWStep& s, float* p, float* m, float* v, const float* g, int64_t n) {
  use_avx512() ? vmath_detail::adamw_avx512(s, p, m, v, g, n) : adamw_f32_ref(s, p, m, v, g, n);
}

}  // namespace moe
