// combine_tokens (see combine.h): the one summation order of the MoE output.
#include "moe/combine.h"

#include <algorithm>
#include <cmath>

namespace moe {

void combine_tokens(const CombineArgs& a, int64_t t0, int64_t t1, float* out) {
  const int64_t D = a.d_model;
  const RoutingPlan& plan = *a.plan;
  const int K = plan.top_k, S = a.n_shared;
  const bool gated = a.shared_gate && a.shared_gate->data;
  for (int64_t t = t0; t < t1; ++t) {
    float* o = out + t * D;
    std::fill(o, o + D, 0.0f);
    for (int k = 0; k < K; ++k) {
      const int64_t s = t * K + k;
      const int32_t r = plan.slot_to_row[static_cast<size_t>(s)];
      if (r < 0) continue;  // dropped: contributes nothing, the residual carries the token on
      const float w = a.weighted ? plan.weights[static_cast<size_t>(s)] : 1.0f;
      const float* y = a.ys + static_cast<int64_t>(r) * D;
      for (int64_t i = 0; i < D; ++i) o[i] += w * y[i];
    }
    if (S == 0) continue;
    float g = 1.0f;
    if (gated) {
      float logit = 0.0f;
      matmul_nt(a.x + t * D, D, *a.shared_gate, &logit, 1, {1, 1, D}, false);
      g = 1.0f / (1.0f + std::exp(-logit));
    }
    for (int s = 0; s < S; ++s) {
      const float* y = a.shared_y + (static_cast<int64_t>(s) * a.shared_tokens + a.shared_t0 + t) * D;
      for (int64_t i = 0; i < D; ++i) o[i] += g * y[i];
    }
  }
}

}  // namespace moe
