// Portable ceiling loops (fallback when the CPU has no AVX2).
#include "kernels/ceilings.h"

namespace moe::ceilings_detail {

double read_sum_scalar(const float* a, size_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i];
    s1 += a[i + 1];
    s2 += a[i + 2];
    s3 += a[i + 3];
  }
  for (; i < n; ++i) s0 += a[i];
  return static_cast<double>(s0 + s1 + s2 + s3);
}

void triad_scalar(float* a, const float* b, const float* c, float s, size_t n) {
  for (size_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
}

double fma_loop_scalar(long iters, float* sink) {
  float x[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  const float m = 0.999999f, add = 1e-7f;
  for (long i = 0; i < iters; ++i)
    for (float& v : x) v = v * m + add;
  float s = 0;
  for (float v : x) s += v;
  *sink += s;
  return 2.0 * 8 * static_cast<double>(iters);
}

}  // namespace moe::ceilings_detail
