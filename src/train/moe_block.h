// The sparse MoE feed-forward block of one layer, forward and backward side by side:
// router (the family's rule from moe/router_math.h: softmax or sigmoid scores, group limit, top-k on
// scores + selection-only bias, norm_topk_prob, routed_scaling_factor), dispatch
// through the moe/ RoutingPlan (dropless or capacity with drops), SwiGLU experts, weighted
// combine, and the balancing losses (Switch aux loss, sequence-level aux loss, z-loss).
// Backward: combine's backward is a dispatch of dout scaled by the weights; dispatch's
// backward is a combine without weights; the router gets the gradient of the chosen weights.
#pragma once

#include <cstdint>
#include <vector>

#include "moe/routing_plan.h"
#include "train/model_config.h"

namespace moe::train {

// Balancing toolkit; every part is optional and they combine.
struct BalanceOptions {
  double aux_coef = 0.0;         // Switch/GShard: E * sum_e f_e * P_e over the batch (f = slot fraction)
  double seq_aux_coef = 0.0;     // the same per sequence, averaged over sequences (DeepSeek-V3)
  double z_coef = 0.0;           // router z-loss: mean over tokens of logsumexp(logits)^2
  double bias_rate = 0.0;        // aux-loss-free: b_e += rate * sign(mean load - load_e) after each step
  double capacity_factor = 0.0;  // 0: dropless; else C = ceil(cf * T * K / E) slots per expert
  DropPolicy drop_policy = DropPolicy::kPosition;
};

// Everything one layer's forward keeps for its backward, and its routing statistics.
template <typename T>
struct MoeActs {
  RouterOptions router;      // the family's routing rule (ModelConfig::router()), set by the first moe_forward
  std::vector<T> logits;     // [N, E]
  std::vector<T> scores;     // [N, E] softmax or (DeepSeek-V3) sigmoid of the logits
  std::vector<T> aux_probs;  // [N, E] sigmoid scores / row sum, the P of the aux losses
  std::vector<int32_t> ids;  // [N, K] chosen experts
  std::vector<T> raw;        // [N, K] scores of the chosen experts
  std::vector<T> weights;    // [N, K] combine weights (normalized when norm_topk_prob)
  RoutingPlan plan;
  std::vector<T> xg;                   // [R, D] gathered rows
  std::vector<T> h;                    // [R, 2F] gate | up of each row (silu(gate) * up: recomputed)
  std::vector<T> y;                    // [R, D] expert outputs
  double aux = 0, seq_aux = 0, z = 0;  // this layer's balancing losses (unscaled)
};

struct MoeShape {
  int64_t batch = 0, seq = 0;  // N = batch * seq tokens
};

// out[N, D] = MoE(x[N, D]). p: the flat parameters; bias: [E] selection bias or null.
template <typename T>
void moe_forward(MoeActs<T>& a, T* out, const T* x, const T* p, const LayerOffsets& o, const ModelConfig& c,
                 const BalanceOptions& bal, const float* bias, MoeShape s);

// Loss weights for one layer's balancing terms (already divided by the number of layers).
struct MoeLossScale {
  double aux = 0, seq_aux = 0, z = 0;
};

// dx[N, D] += and dp (flat gradients) += given dout[N, D], except the routed experts' weight
// gradients (gate_proj, up_proj, down_proj of every expert), which are written, not accumulated:
// each has one writer per step, and skipping the zeroing and the read of zeros saves two sweeps
// over most of the gradient memory (TrainModel::zero_grad leaves them alone).
template <typename T>
void moe_backward(T* dx, T* dp, const T* dout, const T* x, const MoeActs<T>& a, const T* p, const LayerOffsets& o,
                  const ModelConfig& c, MoeLossScale scale, MoeShape s);

}  // namespace moe::train
