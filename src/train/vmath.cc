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
