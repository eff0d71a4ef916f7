// RMSNorm and LayerNorm (see norm.h).
#include "model/norm.h"

#include <cmath>

#include "util/check.h"

namespace moe {

void rms_norm(const float* x, const float* weight, float* y, const RmsNormShape& shape, float eps) {
  const int64_t dim = shape.dim;
  const int64_t xs = shape.x_stride ? shape.x_stride : dim, ys = shape.y_stride ? shape.y_stride : dim;
  MOE_CHECK(dim > 0 && xs >= dim && ys >= dim);
  for (int64_t r = 0; r < shape.rows; ++r) {
    const float* xr = x + r * xs;
    float* yr = y + r * ys;
    double ss = 0.0;
    for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    if (weight) {
      for (int64_t i = 0; i < dim; ++i) yr[i] = weight[i] * (xr[i] * inv);
    } else {
      for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * inv;
    }
  }
}

void layer_norm(const float* x, const float* weight, const float* bias, float* y, int64_t rows, int64_t dim,
                float eps) {
  MOE_CHECK(dim > 0 && weight != nullptr);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    double sum = 0.0, sq = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum += xr[i];
    const double mean = sum / static_cast<double>(dim);
    for (int64_t i = 0; i < dim; ++i) sq += (xr[i] - mean) * (xr[i] - mean);
    const double inv = 1.0 / std::sqrt(sq / static_cast<double>(dim) + eps);
    for (int64_t i = 0; i < dim; ++i) {
      const float n = static_cast<float>((xr[i] - mean) * inv);
      yr[i] = weight[i] * n + (bias ? bias[i] : 0.0f);
    }
  }
}

}  // namespace moe
