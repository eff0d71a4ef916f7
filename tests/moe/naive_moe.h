// Float64 naive reference for the MoE layer tests: router, capacity drops, expert FFN and combine,
// written as plain loops over tokens and their experts, independent of src/moe's code paths.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "moe/moe_layer.h"

namespace moe::testing {

inline double weight_at(const WeightView& w, int64_t r, int64_t c) {
  if (w.dtype == DType::kBF16) return bf16_to_f32(static_cast<const uint16_t*>(w.data)[r * w.ld + c]);
  return static_cast<const float*>(w.data)[r * w.ld + c];
}

struct NaiveRoute {
  std::vector<int32_t> ids;     // [T, K]
  std::vector<double> weights;  // [T, K]
  std::vector<double> sel;      // [T, E] selection scores after masking (for near-tie checks)
};

inline NaiveRoute naive_route(const RouterOptions& o, const RouterWeights& w, const float* x, int64_t T, int64_t D,
                              int K) {
  const int E = o.n_expert;
  NaiveRoute r;
  r.ids.resize(T * K);
  r.weights.resize(T * K);
  r.sel.resize(T * E);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> logit(E), score(E), sel(E);
    for (int e = 0; e < E; ++e) {
      double acc = w.bias ? w.bias[e] : 0.0;
      for (int64_t i = 0; i < D; ++i) acc += double(x[t * D + i]) * weight_at(w.weight, e, i);
      logit[e] = acc;
    }
    const double mx = *std::max_element(logit.begin(), logit.end());
    double z = 0;
    for (int e = 0; e < E; ++e) z += std::exp(logit[e] - mx);
    for (int e = 0; e < E; ++e) {
      switch (o.scoring) {
        case ScoringFunc::kSoftmax:
          score[e] = std::exp(logit[e] - mx) / z;
          break;
        case ScoringFunc::kSigmoid:
          score[e] = 1.0 / (1.0 + std::exp(-logit[e]));
          break;
        case ScoringFunc::kSqrtSoftplus:
          score[e] = std::sqrt(std::log1p(std::exp(logit[e])));
          break;
      }
      sel[e] = (o.selection == Selection::kSoftmaxOverTopK ? logit[e] : score[e]) +
               (o.use_correction_bias ? w.correction_bias[e] : 0.0);
    }
    if (o.n_group > 1) {
      const int gs = E / o.n_group;
      std::vector<double> gscore(o.n_group);
      for (int g = 0; g < o.n_group; ++g) {
        std::vector<double> v(sel.begin() + g * gs, sel.begin() + (g + 1) * gs);
        std::sort(v.rbegin(), v.rend());
        gscore[g] = o.group_score == GroupScore::kMax ? v[0] : v[0] + v[1];
      }
      std::vector<int> gi(o.n_group);
      std::iota(gi.begin(), gi.end(), 0);
      std::stable_sort(gi.begin(), gi.end(), [&](int a, int b) { return gscore[a] > gscore[b]; });
      for (int i = o.topk_group; i < o.n_group; ++i) {
        for (int e = gi[i] * gs; e < (gi[i] + 1) * gs; ++e) sel[e] = -INFINITY;
      }
    }
    std::vector<int> order(E);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return sel[a] > sel[b]; });
    std::vector<double> wk(K);
    for (int k = 0; k < K; ++k) r.ids[t * K + k] = order[k];
    if (o.selection == Selection::kSoftmaxOverTopK) {
      double s = 0;
      for (int k = 0; k < K; ++k) s += std::exp(logit[order[k]] - logit[order[0]]);
      for (int k = 0; k < K; ++k) wk[k] = std::exp(logit[order[k]] - logit[order[0]]) / s;
    } else {
      double s = 0;
      for (int k = 0; k < K; ++k) s += (wk[k] = score[order[k]]);
      if (o.norm_topk_prob)
        for (int k = 0; k < K; ++k) wk[k] /= s;
    }
    for (int k = 0; k < K; ++k) r.weights[t * K + k] = wk[k] * o.routed_scaling_factor;
    std::copy(sel.begin(), sel.end(), r.sel.begin() + t * E);
  }
  return r;
}

// keep[s] per slot under the capacity rules, written independently of make_routing_plan.
inline std::vector<bool> naive_keep(const DispatchOptions& d, const std::vector<int32_t>& ids,
                                    const std::vector<float>& weights, int64_t T, int K, int E) {
  std::vector<bool> keep(T * K, true);
  if (d.mode == CapacityMode::kDropless) return keep;
  const int64_t cap = std::max<int64_t>(1, (int64_t)std::ceil(d.capacity_factor * T * K / E));
  for (int e = 0; e < E; ++e) {
    std::vector<int64_t> slots;
    for (int64_t s = 0; s < T * K; ++s)
      if (ids[s] == e) slots.push_back(s);
    if (d.drop_policy == DropPolicy::kProbability) {
      std::stable_sort(slots.begin(), slots.end(), [&](int64_t a, int64_t b) { return weights[a] > weights[b]; });
    }
    for (size_t i = cap; i < slots.size(); ++i) keep[slots[i]] = false;
  }
  return keep;
}

inline double naive_act(const ActivationOptions& a, double g, double u) {
  switch (a.kind) {
    case GluKind::kSwiGLU:
      if (a.limit > 0) {
        g = std::min(g, double(a.limit));
        u = std::clamp(u, -double(a.limit), double(a.limit));
      }
      return g / (1 + std::exp(-g)) * u;
    case GluKind::kGeGLU:
      return 0.5 * g * (1 + std::erf(g / std::sqrt(2.0))) * u;
    case GluKind::kGeGLUTanh:
      return 0.5 * g * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (g + 0.044715 * g * g * g))) * u;
    case GluKind::kSwiGLUOai: {
      g = std::min(g, double(a.limit));
      u = std::clamp(u, -double(a.limit), double(a.limit));
      return (u + 1) * g / (1 + std::exp(-double(a.alpha) * g));
    }
  }
  return 0;
}

// y[D] += scale * expert(x[D]) in float64.
inline void naive_expert(const ExpertMatrices& m, const ActivationOptions& a, int64_t D, int64_t F, const double* x,
                         double scale, double* y) {
  std::vector<double> h(F);
  for (int64_t f = 0; f < F; ++f) {
    double g = m.gate_bias ? m.gate_bias[f] : 0.0, u = m.up_bias ? m.up_bias[f] : 0.0;
    for (int64_t i = 0; i < D; ++i) {
      g += x[i] * weight_at(m.gate, f, i);
      u += x[i] * weight_at(m.up, f, i);
    }
    h[f] = naive_act(a, g, u);
  }
  for (int64_t d = 0; d < D; ++d) {
    double acc = m.down_bias ? m.down_bias[d] : 0.0;
    for (int64_t f = 0; f < F; ++f) acc += h[f] * weight_at(m.down, d, f);
    y[d] += scale * acc;
  }
}

// The whole layer in float64 for given ids and weights [T, K] and keep flags.
inline std::vector<double> naive_layer(const MoeLayerConfig& c, const MoeLayerWeights& w, const float* x, int64_t T,
                                       int K, const std::vector<int32_t>& ids, const std::vector<float>& weights,
                                       const std::vector<bool>& keep) {
  const int64_t D = c.d_model;
  std::vector<double> out(T * D, 0.0), xd(D);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < D; ++i) xd[i] = x[t * D + i];
    for (int k = 0; k < K; ++k) {
      const int64_t s = t * K + k;
      if (!keep[s]) continue;
      const ExpertMatrices& m = w.experts.experts[ids[s]];
      if (c.weight_before_expert) {
        std::vector<double> xs(D);
        for (int64_t i = 0; i < D; ++i) xs[i] = double(weights[s]) * xd[i];
        naive_expert(m, c.activation, D, w.experts.d_ff, xs.data(), 1.0, out.data() + t * D);
      } else {
        naive_expert(m, c.activation, D, w.experts.d_ff, xd.data(), weights[s], out.data() + t * D);
      }
    }
    double g = 1.0;
    if (w.shared_gate.data) {
      double l = 0;
      for (int64_t i = 0; i < D; ++i) l += xd[i] * weight_at(w.shared_gate, 0, i);
      g = 1 / (1 + std::exp(-l));
    }
    for (const ExpertMatrices& m : w.shared.experts) {
      naive_expert(m, c.activation, D, w.shared.d_ff, xd.data(), g, out.data() + t * D);
    }
  }
  return out;
}

// Owns random weights for a layer (f32 or bf16 storage) and hands out MoeLayerWeights views.
struct RandomLayer {
  int E = 0, S = 0;
  int64_t D = 0, F = 0, Fs = 0;
  DType dtype = DType::kF32;
  std::vector<float> router, router_bias, corr_bias, shared_gate;
  std::vector<float> f32[6];  // gate, up, down, shared gate/up/down
  std::vector<uint16_t> bf16[6];
  std::vector<float> biases[3];  // gate, up, down biases [E, F], [E, F], [E, D]

  RandomLayer(int n_expert, int n_shared, int64_t d, int64_t f, int64_t fs, DType dt, uint32_t seed,
              bool with_biases = false, bool with_gate = false)
      : E(n_expert), S(n_shared), D(d), F(f), Fs(fs), dtype(dt) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> n01(0.0f, 1.0f);
    auto fill = [&](std::vector<float>& v, size_t n, float scale) {
      v.resize(n);
      for (auto& x : v) x = scale * n01(rng);
    };
    fill(router, E * D, 1.0f / std::sqrt(float(D)));
    fill(router_bias, E, 0.5f);
    fill(corr_bias, E, 0.1f);
    fill(shared_gate, D, 1.0f / std::sqrt(float(D)));
    const size_t sizes[6] = {size_t(E * F * D),  size_t(E * F * D),  size_t(E * D * F),
                             size_t(S * Fs * D), size_t(S * Fs * D), size_t(S * D * Fs)};
    const float scales[6] = {1.0f / std::sqrt(float(D)), 1.0f / std::sqrt(float(D)), 1.0f / std::sqrt(float(F)),
                             1.0f / std::sqrt(float(D)), 1.0f / std::sqrt(float(D)), 1.0f / std::sqrt(float(Fs))};
    for (int i = 0; i < 6; ++i) {
      fill(f32[i], sizes[i], scales[i]);
      bf16[i].resize(sizes[i]);
      for (size_t j = 0; j < sizes[i]; ++j) bf16[i][j] = f32_to_bf16(f32[i][j]);
    }
    if (with_biases) {
      fill(biases[0], E * F, 0.3f);
      fill(biases[1], E * F, 0.3f);
      fill(biases[2], E * D, 0.3f);
    }
    (void)with_gate;
  }
  const void* ptr(int i) const {
    return dtype == DType::kBF16 ? static_cast<const void*>(bf16[i].data()) : static_cast<const void*>(f32[i].data());
  }
  MoeLayerWeights views(bool logit_bias, bool correction_bias, bool gated_shared) const {
    MoeLayerWeights w;
    w.router.weight = {router.data(), DType::kF32, D};
    w.router.bias = logit_bias ? router_bias.data() : nullptr;
    w.router.correction_bias = correction_bias ? corr_bias.data() : nullptr;
    w.experts = ExpertWeights::stacked(
        E, D, F, dtype, ptr(0), ptr(1), ptr(2), biases[0].empty() ? nullptr : biases[0].data(),
        biases[1].empty() ? nullptr : biases[1].data(), biases[2].empty() ? nullptr : biases[2].data());
    if (S > 0) w.shared = ExpertWeights::stacked(S, D, Fs, dtype, ptr(3), ptr(4), ptr(5));
    if (gated_shared && S > 0) w.shared_gate = {shared_gate.data(), DType::kF32, D};
    return w;
  }
};

inline std::vector<float> random_input(int64_t T, int64_t D, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n01(0.0f, scale);
  std::vector<float> x(T * D);
  for (auto& v : x) v = n01(rng);
  return x;
}

}  // namespace moe::testing
