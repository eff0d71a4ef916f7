// Dispatch of the vectorized math (vmath.h) on the active ISA.
#include "train/vmath.h"

#include <algorithm>
#include <cmath>

#include "runtime/cpu_features.h"

namespace moe::train {

void exp_f32(float* y, const float* x, int64_t n) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::exp_avx512(y, x, n);
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

float max_f32(const float* x, int64_t n) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::max_avx512(x, n);
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

float sum_f32(const float* x, int64_t n) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::sum_avx512(x, n);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i];
  return s;
}

float sumsq_f32(const float* x, int64_t n) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::sumsq_avx512(x, n);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}

float dot3_f32(const float* a, const float* b, const float* c, int64_t n) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::dot3_avx512(a, b, c, n);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i] * c[i];
  return s;
}

void rmsnorm_rows_f32(float* out, float* rstd, const float* x, const float* w, int64_t n, int64_t c, double eps) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::rmsnorm_rows_avx512(out, rstd, x, w, n, c, eps);
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * c;
    float ss = 0;
    for (int64_t j = 0; j < c; ++j) ss += xi[j] * xi[j];
    const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(c) + eps));
    rstd[i] = r;
    for (int64_t j = 0; j < c; ++j) out[i * c + j] = xi[j] * r * w[j];
  }
}

void rmsnorm_rows_backward_f32(float* dx, const float* g, const float* x, const float* w, const float* rstd, int64_t n,
                               int64_t c) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::rmsnorm_rows_backward_avx512(dx, g, x, w, rstd, n, c);
  for (int64_t i = 0; i < n; ++i) {
    const float *gi = g + i * c, *xi = x + i * c, r = rstd[i];
    float dot = 0;
    for (int64_t j = 0; j < c; ++j) dot += gi[j] * w[j] * xi[j];
    const float m = static_cast<float>(static_cast<double>(dot) * r / static_cast<double>(c));
    for (int64_t j = 0; j < c; ++j) dx[i * c + j] += r * (gi[j] * w[j] - xi[j] * r * m);
  }
}

void rmsnorm_rows_dw_f32(float* dw, const float* g, const float* x, const float* rstd, int64_t n, int64_t c) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::rmsnorm_rows_dw_avx512(dw, g, x, rstd, n, c);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) dw[j] += g[i * c + j] * x[i * c + j] * rstd[i];
}

void softmax_f32(float* x, int64_t n, float scale) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::softmax_avx512(x, n, scale);
  if (n == 0) return;
  for (int64_t i = 0; i < n; ++i) x[i] *= scale;
  const float mx = max_f32(x, n);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - mx));
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void softmax_backward_f32(float* d, const float* p, int64_t n, float scale) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::softmax_backward_avx512(d, p, n, scale);
  float dot = 0;
  for (int64_t i = 0; i < n; ++i) dot += d[i] * p[i];
  for (int64_t i = 0; i < n; ++i) d[i] = p[i] * (d[i] - dot) * scale;
}

void swiglu_f32(float* out, const float* gate, const float* up, int64_t n) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::swiglu_avx512(out, gate, up, n);
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] * (1.0f / (1.0f + std::exp(-gate[i]))) * up[i];
}

void swiglu_backward_f32(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                         float* out) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::swiglu_backward_avx512(dgate, dup, dout, gate, up, n, out);
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], sg = 1.0f / (1.0f + std::exp(-g)), d = dout[i];
    if (out != nullptr) out[i] = g * sg * up[i];
    dup[i] = d * (g * sg);
    dgate[i] = d * up[i] * (sg * (1.0f + g * (1.0f - sg)));
  }
}

void adamw_f32(const AdamWStep& s, float* p, float* m, float* v, const float* g, int64_t n) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::adamw_avx512(s, p, m, v, g, n);
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * s.grad_scale;
    p[i] *= s.decay;
    m[i] = s.b1 * m[i] + (1.0f - s.b1) * gi;
    v[i] = s.b2 * v[i] + (1.0f - s.b2) * gi * gi;
    p[i] -= s.step_size * m[i] / (std::sqrt(v[i]) / s.bc2_sqrt + s.eps);
  }
}

}  // namespace moe::train
