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

void rmsnorm_row_f32(float* out, const float* x, const float* w, float r, int64_t n) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::rmsnorm_row_avx512(out, x, w, r, n);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * r * w[i];
}

void rmsnorm_row_backward_f32(float* dx, const float* g, const float* x, const float* w, float r, float m, int64_t n) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::rmsnorm_row_backward_avx512(dx, g, x, w, r, m, n);
  for (int64_t i = 0; i < n; ++i) dx[i] += r * (g[i] * w[i] - x[i] * r * m);
}

void mul_acc_f32(float* y, const float* a, const float* b, float s, int64_t n) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::mul_acc_avx512(y, a, b, s, n);
  for (int64_t i = 0; i < n; ++i) y[i] += a[i] * b[i] * s;
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

void adamw_f32(const AdamWStep& s, float* p, float* m, float* v, const float* g, int64_t n) {
  if (active_isa() >= Isa::kAvx512) return vmath_detail::adamw_avx512(s, p, m, v, g, n);
  for (int64_t i = 0; i < n; ++i) {
    p[i] *= s.decay;
    m[i] = s.b1 * m[i] + (1.0f - s.b1) * g[i];
    v[i] = s.b2 * v[i] + (1.0f - s.b2) * g[i] * g[i];
    p[i] -= s.step_size * m[i] / (std::sqrt(v[i]) / s.bc2_sqrt + s.eps);
  }
}

}  // namespace moe::train
