// combine_tokens (see combine.h): the one summation order of the MoE output.
#include "moe/combine.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace moe {

namespace {

// out[0, D) = sum_j w[j] * rows[j][0, D), j ascending: the sum of one output chunk stays in registers
// while the rows stream past (the rows are read once; out is written once instead of once per row).
void weighted_row_sum(const float* const* rows, const float* w, int n, int64_t D, float* out) {
  constexpr int64_t kChunk = 64;
  int64_t i0 = 0;
  for (; i0 + kChunk <= D; i0 += kChunk) {
    float acc[kChunk] = {};
    for (int j = 0; j < n; ++j) {
      const float* y = rows[j] + i0;
      const float wj = w[j];
      for (int64_t i = 0; i < kChunk; ++i) acc[i] += wj * y[i];
    }
    std::copy(acc, acc + kChunk, out + i0);
  }
  if (i0 < D) {
    std::fill(out + i0, out + D, 0.0f);
    for (int j = 0; j < n; ++j)
      for (int64_t i = i0; i < D; ++i) out[i] += w[j] * rows[j][i];
  }
}

}  // namespace

void combine_tokens(const CombineArgs& a, int64_t t0, int64_t t1, float* out) {
  const int64_t D = a.d_model;
  const RoutingPlan& plan = *a.plan;
  const int K = plan.top_k, S = a.n_shared;
  const bool gated = a.shared_gate && a.shared_gate->data;
  std::vector<const float*> rows(static_cast<size_t>(K + S));
  std::vector<float> w(static_cast<size_t>(K + S));
  for (int64_t t = t0; t < t1; ++t) {
    int n = 0;
    for (int k = 0; k < K; ++k) {
      const int64_t s = t * K + k;
      const int32_t r = plan.slot_to_row[static_cast<size_t>(s)];
      if (r < 0) continue;  // dropped: contributes nothing, the residual carries the token on
      w[n] = a.weighted ? plan.weights[static_cast<size_t>(s)] : 1.0f;
      rows[n++] = a.ys + static_cast<int64_t>(r) * D;
    }
    if (S > 0) {
      float g = 1.0f;
      if (gated) {
        float logit = 0.0f;
        matmul_nt(a.x + t * D, D, *a.shared_gate, &logit, 1, {1, 1, D}, false);
        g = 1.0f / (1.0f + std::exp(-logit));
      }
      for (int s = 0; s < S; ++s) {
        w[n] = g;
        rows[n++] = a.shared_y + (static_cast<int64_t>(s) * a.shared_tokens + a.shared_t0 + t) * D;
      }
    }
    weighted_row_sum(rows.data(), w.data(), n, D, out + t * D);
  }
}

}  // namespace moe
