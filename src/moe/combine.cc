// combine_tokens (see combine.h): the one summation order of the MoE output.
#include "moe/combine.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace moe {

namespace {

// out[0, D) = sum_j w[j] * rows[j][0, D), j ascending, from 0, each step add_scaled_row's: the sum of
// one output chunk stays in registers while the rows stream past (the rows are read once; out is written
// once instead of once per row).
void weighted_row_sum(const float* const* rows, const float* w, int n, int64_t D, float* out) {
  constexpr int64_t kChunk = 64;
  int64_t i0 = 0;
  for (; i0 + kChunk <= D; i0 += kChunk) {
    float acc[kChunk] = {};
    for (int j = 0; j < n; ++j) add_scaled_row(rows[j] + i0, w[j], kChunk, acc);
    std::copy(acc, acc + kChunk, out + i0);
  }
  if (i0 < D) {
    std::fill(out + i0, out + D, 0.0f);
    for (int j = 0; j < n; ++j) add_scaled_row(rows[j] + i0, w[j], D - i0, out + i0);
  }
}

}  // namespace

void shared_gate_values(const float* x, int64_t T, int64_t D, const WeightView& gate, float* g) {
  for (int64_t t = 0; t < T; ++t) {
    float logit = 0.0f;
    matmul_nt(x + t * D, D, gate, &logit, 1, {1, 1, D}, false);
    g[t] = 1.0f / (1.0f + std::exp(-logit));
  }
}

void combine_tokens(const CombineArgs& a, int64_t t0, int64_t t1, float* out) {
  const int64_t D = a.d_model;
  const RoutingPlan& plan = *a.plan;
  const int K = plan.top_k, S = a.n_shared;
  const bool gated = a.shared_gate && a.shared_gate->data;
  std::vector<const float*> rows(static_cast<size_t>(K + S));
  std::vector<float> w(static_cast<size_t>(K + S));
  std::vector<int32_t> row_of(static_cast<size_t>(K));
  for (int64_t t = t0; t < t1; ++t) {
    // Kept slots in row order (= expert order: the plan's rows are expert-major), by insertion.
    int n = 0;
    for (int k = 0; k < K; ++k) {
      const int64_t s = t * K + k;
      const int32_t r = plan.slot_to_row[static_cast<size_t>(s)];
      if (r < 0) continue;  // dropped: contributes nothing, the residual carries the token on
      const float ws = a.weighted ? plan.weights[static_cast<size_t>(s)] : 1.0f;
      int i = n++;
      for (; i > 0 && row_of[size_t(i - 1)] > r; --i) {
        row_of[size_t(i)] = row_of[size_t(i - 1)];
        w[size_t(i)] = w[size_t(i - 1)];
      }
      row_of[size_t(i)] = r;
      w[size_t(i)] = ws;
    }
    for (int i = 0; i < n; ++i) rows[size_t(i)] = a.ys + static_cast<int64_t>(row_of[size_t(i)]) * D;
    if (S > 0) {
      float g = 1.0f;
      if (gated) shared_gate_values(a.x + t * D, 1, D, *a.shared_gate, &g);
      for (int s = 0; s < S; ++s) {
        w[n] = g;
        rows[n++] = a.shared_y + (static_cast<int64_t>(s) * a.shared_tokens + a.shared_t0 + t) * D;
      }
    }
    weighted_row_sum(rows.data(), w.data(), n, D, out + t * D);
  }
}

}  // namespace moe
