// What one MoE layer call actually cost: tokens per expert, drops, experts touched, parameters
// activated, expert weight bytes streamed, FLOPs, and the time of each phase.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moe {

struct MoeTelemetry {
  int64_t n_tokens = 0;
  int top_k = 0;
  std::vector<int64_t> tokens_per_expert;  // [E] rows computed per routed expert (after drops)
  int64_t dropped_slots = 0;
  int experts_touched = 0;            // routed experts with at least one row
  int64_t activated_params = 0;       // router + touched routed experts + shared experts (+ gate), biases included
  int64_t expert_bytes_streamed = 0;  // weights of the touched routed experts and the shared ones, each once
  int64_t expert_flops = 0;           // 2 * rows * 3 * F * D over routed and shared experts
  int64_t work_items = 0;             // this process's kernel work items (not counted under expert parallelism)
  // dispatch: the RoutingPlan and the per-row token and weight lists (the experts read x in place).
  // MoeLayer sums the experts' outputs inside their down projection (run_expert_down_combine), so that
  // time is in experts_ms; its combine_ms is what remains outside it (the shared-expert gate).
  double route_ms = 0, dispatch_ms = 0, experts_ms = 0, combine_ms = 0;

  double total_ms() const { return route_ms + dispatch_ms + experts_ms + combine_ms; }
  // Adds another call's figures (counts and times sum; tokens_per_expert element-wise).
  void accumulate(const MoeTelemetry& other);
  // One line: "T=.. K=.. touched=../E dropped=.. params=.. bytes=.. ms route/dispatch/experts/combine".
  std::string summary() const;
};

// The sizes of one MoE layer its accounting needs (moe_layer_sizes in moe/moe_layer.h reads them off
// a layer's config and weights).
struct MoeLayerSizes {
  int64_t d_model = 0;        // D
  int64_t router_params = 0;  // E x D, + E for a router logit bias (gpt-oss)
  int64_t d_ff = 0;           // F of a routed expert
  int64_t expert_params = 0;  // one routed expert: gate, up [F, D], down [D, F] and their biases
  int64_t expert_bytes = 0;   // its bytes at their storage types (biases f32)
  int64_t shared_params = 0;  // every shared expert, and the shared gate [D]
  int64_t shared_bytes = 0;   // the shared experts' bytes
  int64_t shared_d_ff = 0;    // the shared experts' F, summed
};

// The one accounting of a MoE layer call, whoever ran it (MoeLayer, the expert-parallel block of parallel/,
// experts read from disk): from the rows each routed expert computed, [E], sets n_tokens, top_k,
// tokens_per_expert, dropped_slots, experts_touched, activated_params, expert_bytes_streamed and
// expert_flops (fields above). Times and work_items are the caller's.
void account_moe_call(const MoeLayerSizes& sizes, int64_t n_tokens, int top_k, std::vector<int64_t> tokens_per_expert,
                      int64_t dropped_slots, MoeTelemetry* telemetry);

}  // namespace moe
