// RMSNorm (see norm.h).
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

}  // namespace moe
