// A small random MoE layer for the EP tests (in-process and mpirun): router, routed experts in
// f32 or bf16, an optional gated shared expert, and each rank's partial copy of the weights.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "moe/moe_layer.h"
#include "parallel/placement.h"

namespace moe::parallel::testing {

struct Model {
  MoeLayerConfig config;
  std::vector<float> router, gate, up, down, shared_gate_up, shared_down, shared_gate;
  std::vector<uint16_t> gate16, up16, down16;
  PackedExpertWeights packed;  // the routed experts in panels, when pack_experts() was called
  MoeLayerWeights weights;
};

// The routed experts in the kernels' panel layout, as the decoder loads them (m must not move afterwards).
inline void pack_experts(Model& m) {
  m.packed = pack_expert_weights(m.weights.experts);
  m.weights.experts = m.packed.weights;
}

inline std::vector<float> random_vec(size_t n, uint32_t seed, float scale) {
  std::vector<float> v(n);
  uint32_t s = seed * 2654435761U + 1;
  for (auto& x : v) {
    s = s * 1664525U + 1013904223U;
    x = scale * (float(s >> 8) / float(1 << 24) - 0.5f);
  }
  return v;
}

inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return uint16_t(u >> 16);
}

inline Model make_model(int E, int K, int64_t D, int64_t F, bool shared, bool before, bool bf16) {
  Model m;
  m.config.d_model = D;
  m.config.router.n_expert = E;
  m.config.router.top_k = K;
  m.config.router.norm_topk_prob = true;
  m.config.weight_before_expert = before;
  m.router = random_vec(size_t(E * D), 1, 2.0f);
  m.gate = random_vec(size_t(E * F * D), 2, 0.5f);
  m.up = random_vec(size_t(E * F * D), 3, 0.5f);
  m.down = random_vec(size_t(E * D * F), 4, 0.5f);
  m.weights.router.weight = {m.router.data(), DType::kF32, D};
  if (bf16) {
    for (float f : m.gate) m.gate16.push_back(to_bf16(f));
    for (float f : m.up) m.up16.push_back(to_bf16(f));
    for (float f : m.down) m.down16.push_back(to_bf16(f));
    m.weights.experts = ExpertWeights::stacked(E, D, F, DType::kBF16, m.gate16.data(), m.up16.data(), m.down16.data());
  } else {
    m.weights.experts = ExpertWeights::stacked(E, D, F, DType::kF32, m.gate.data(), m.up.data(), m.down.data());
  }
  if (shared) {
    const int64_t Fs = 2 * F;
    m.shared_gate_up = random_vec(size_t(2 * Fs * D), 5, 0.5f);
    m.shared_down = random_vec(size_t(D * Fs), 6, 0.5f);
    m.shared_gate = random_vec(size_t(D), 7, 1.0f);
    m.weights.shared = ExpertWeights::stacked(1, D, Fs, DType::kF32, m.shared_gate_up.data(),
                                              m.shared_gate_up.data() + Fs * D, m.shared_down.data());
    m.weights.shared_gate = {m.shared_gate.data(), DType::kF32, D};
  }
  return m;
}

// Rank r's copy of the weights: the experts it does not own are empty views (not loaded).
inline MoeLayerWeights weights_of_rank(const Model& m, const ExpertPlacement& placement, int rank) {
  MoeLayerWeights w = m.weights;
  for (int e = 0; e < placement.n_expert(); ++e)
    if (placement.owner(e) != rank) w.experts.experts[size_t(e)] = ExpertMatrices{};
  return w;
}

}  // namespace moe::parallel::testing
