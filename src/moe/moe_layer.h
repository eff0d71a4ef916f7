// One MoE layer: router -> RoutingPlan (dispatch: rows listed, not copied) -> grouped expert FFN with
// the combine fused into its down projection,
// plus shared experts (optionally sigmoid-gated), with telemetry for every call.
// Weights are non-owning views (MoeLayerWeights), so a loader can point into mmapped tensors.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/matmul.h"
#include "moe/expert_ffn.h"
#include "moe/router.h"
#include "moe/routing_plan.h"
#include "moe/telemetry.h"

namespace moe {

// Architecture of the layer (from the model's config; no runtime knobs).
struct MoeLayerConfig {
  int64_t d_model = 0;  // D
  RouterOptions router;
  ActivationOptions activation;  // routed and shared experts
  DispatchOptions dispatch;      // dropless by default
  // Llama 4: the routing weight scales the expert's input instead of its output.
  bool weight_before_expert = false;
  // Routed experts may be absent from the weights: every call's RunOptions::prepare_experts supplies the
  // chosen ones (experts served from disk, model/offload.h).
  bool experts_per_call = false;
};

struct MoeLayerWeights {
  RouterWeights router;    // weight [E, D]
  ExpertWeights experts;   // routed: E experts of [F, D] / [D, F]
  ExpertWeights shared;    // shared experts (any count, own F), each sees every token; may be empty
  WeightView shared_gate;  // [1, D]: out += sigmoid(x . g) * sum of shared outputs (Qwen2-MoE); data null = ungated
};

// Runtime knobs for one call.
struct RunOptions {
  int top_k_override = 0;                     // 0, or fewer experts per token than the config's top_k
  const int32_t* expert_ids = nullptr;        // [T, K]: given choices (DeepSeek-V4 hash layers, benchmarks);
                                              // weights still come from the router's scores
  const DispatchOptions* dispatch = nullptr;  // overrides the config's capacity mode when set
  ExpertRunOptions experts;                   // kernel path and blocking
  // Called once per call after routing, before any expert runs, with this call's routing and the routed
  // experts' views: a caller that keeps experts out of memory (model/expert_cache.h) points the chosen
  // ones at where it loaded them. Only experts the routing chose are read.
  std::function<void(const RouterOutput& routing, std::vector<ExpertMatrices>& experts)> prepare_experts;
};

// What the accounting of a call (account_moe_call, moe/telemetry.h) needs of this layer; per-expert
// sizes from the first routed expert whose weights are present.
MoeLayerSizes moe_layer_sizes(const MoeLayerConfig& config, const MoeLayerWeights& weights);

// The routing of one MoE layer call, the same bits in every layer that routes (MoeLayer, the
// expert-parallel layer of parallel/): route_tokens over x [T, D], or with options.expert_ids (choices
// given [T, K]) the router's logits and scores (no group limit) with the weights taken at the given
// ids. out: ids and weights [T, K], logits [T, E].
void route_layer(const MoeLayerConfig& config, const RouterWeights& weights, const float* x, int64_t n_tokens,
                 const RunOptions& options, RouterOutput* out);

// Not thread-safe: one call at a time per object (it reuses its workspace between calls).
class MoeLayer {
 public:
  // Validates the config against the weights; throws moe::Error naming the mismatch.
  MoeLayer(const MoeLayerConfig& config, const MoeLayerWeights& weights);

  // out = MoE(x). x, out: [T, D] row-major f32, not overlapping. telemetry may be null.
  void forward(const float* x, int64_t n_tokens, float* out, const RunOptions& options = {},
               MoeTelemetry* telemetry = nullptr);

  // Points the layer at other weights of the same config (validated as in the constructor);
  // keeps the workspace (benchmarks rotate weight sets without reallocating).
  void set_weights(const MoeLayerWeights& weights);

  const MoeLayerConfig& config() const { return config_; }
  const MoeLayerWeights& weights() const { return weights_; }
  // The last call's routing (for training, statistics and tests).
  const RouterOutput& last_router_output() const { return router_out_; }
  const RoutingPlan& last_plan() const { return plan_; }

 private:
  void gather();  // per row of the plan: its token and scale (no copy of x)
  void shared_gates(const float* x, int64_t n_tokens);
  void run_experts(const float* x, int64_t n_tokens, float* out, const RunOptions& options, ExpertRunStats* stats);

  MoeLayerConfig config_;
  MoeLayerWeights weights_;
  RouterOutput router_out_;
  RoutingPlan plan_;
  std::vector<int32_t> x_rows_;      // [n_rows] token of each row of the plan (the experts gather x in place)
  std::vector<float> x_scale_;       // [n_rows] its routing weight when it scales the input, else empty
  std::vector<float> y_scale_;       // [n_rows] its routing weight when it scales the output, else empty
  std::vector<int32_t> token_rows_;  // [T] 0..T-1: the shared experts' output rows (empty without them)
  std::vector<float> shared_g_;      // [T] sigmoid shared-expert gate, or empty (no gate)
  std::vector<float> hs_;            // [n_rows, F] activations
  std::vector<float> shared_h_;      // [S, T, Fs]
  std::vector<uint16_t> hbs_;        // [n_rows, F even] bf16 copy of hs_ (ExpertTask::hb), or empty
  std::vector<uint16_t> shared_hb_;  // [S, T, Fs even] the same for shared_h_
  // Block-quantized experts: x quantized once per activation format the gate/up weights need, and h
  // quantized by the up phase for the down weights (ExpertTask::xq / hq).
  std::vector<uint8_t> xq_[3];           // [T, q8_row_bytes(D)] per ActFormat
  std::vector<uint8_t> hq_, shared_hq_;  // [n_rows, q8_row_bytes(F)], [S, T, q8_row_bytes(Fs)]
};

}  // namespace moe
