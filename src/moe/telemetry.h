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
  int64_t activated_params = 0;       // router + touched routed experts + shared experts (+ gate)
  int64_t expert_bytes_streamed = 0;  // routed + shared expert weight bytes read by the work items
  int64_t expert_flops = 0;           // 2 * rows * 3 * F * D over routed and shared experts
  int64_t work_items = 0;
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

}  // namespace moe
