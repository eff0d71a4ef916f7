// The trainable MoE language model (Qwen3-MoE architecture; DeepSeek-V3 layers in model_v3.cc),
// read top to bottom in model.cc:
// embedding -> L x [RMSNorm -> attention (QK-norm per head, RoPE, causal) -> residual ->
// RMSNorm -> MoE block -> residual] -> RMSNorm -> LM head -> cross-entropy (+ balancing losses).
// Parameters in one flat array, gradients in another; T is float (training) or double (checks).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "train/mla.h"
#include "train/model_config.h"
#include "train/moe_block.h"
#include "train/swiglu_mlp.h"

namespace moe::train {

struct LossParts {
  double total = 0;                    // what backward differentiates
  double ce = 0;                       // cross-entropy (the language-model loss that is reported)
  double aux = 0, seq_aux = 0, z = 0;  // balancing losses, mean over layers, unscaled
};

// Routing statistics of one layer for the last forward.
struct LayerLoad {
  std::vector<int64_t> routed;  // [E] slots routed to each expert (before capacity drops)
  int64_t dropped = 0;          // slots dropped by capacity
  int64_t slots = 0;            // N * K
};

template <typename T>
class TrainModel {
 public:
  TrainModel(const ModelConfig& config, const BalanceOptions& balance);

  const ModelConfig& config() const { return config_; }
  const ParamLayout& layout() const { return layout_; }
  const BalanceOptions& balance() const { return balance_; }

  std::vector<T> params;                        // [layout().total]
  std::vector<T> grads;                         // [layout().total]
  std::vector<std::vector<float>> router_bias;  // [L][E] selection-only bias (DeepSeek-V3: e_score_correction_bias)

  // Normal(0, 0.02) for matrices, ones for norm weights.
  void init_params(uint64_t seed);
  // Zeroes the gradients backward() accumulates into: all but the routed experts' weights, which
  // backward() writes whole (see moe_backward).
  void zero_grad();
  // tokens, targets: [B, S]. Keeps the activations for backward().
  LossParts forward(const int32_t* tokens, const int32_t* targets, int64_t batch, int64_t seq);
  // Forward without keeping gradients' needs in mind (same as forward; for evaluation).
  double eval_loss(const int32_t* tokens, const int32_t* targets, int64_t batch, int64_t seq);
  // grads += d(total loss)/d(params) for the last forward (routed expert weights: grads =).
  void backward();
  // The aux-loss-free update: b_e += rate * sign(mean load - load_e) from the last forward.
  void update_router_bias(double rate);
  std::vector<LayerLoad> layer_loads() const;

 private:
  struct LayerActs {
    std::vector<T> x, ln1, rstd1, q, k, v, qn, kn, q_rstd, k_rstd, probs, att, mid, ln2, rstd2, moe_out;
    MoeActs<T> moe;
    MlaActs<T> mla;  // DeepSeek-V3 attention
    MlpActs<T> mlp;  // DeepSeek-V3 shared experts, or the dense MLP of a dense layer
  };
  void layer_forward(int l, const T* x, T* out);
  void layer_backward(int l, T* dres);
  // DeepSeek-V3 layers (model_v3.cc): MLA, then a dense MLP or MoE + shared experts.
  void layer_forward_v3(int l, const T* x, T* out);
  void layer_backward_v3(int l, T* dres);

  ModelConfig config_;
  ParamLayout layout_;
  BalanceOptions balance_;
  int64_t batch_ = 0, seq_ = 0;
  std::vector<int32_t> tokens_, targets_;
  std::vector<LayerActs> acts_;
  std::vector<std::pair<int64_t, int64_t>> accumulated_;  // [offset, end) spans zero_grad() clears
  std::vector<T> resid_out_, lnf_, rstdf_, logits_;
};

}  // namespace moe::train
