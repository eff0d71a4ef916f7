// The combine step of a MoE layer. Its one summation order, shared by MoeLayer (which fuses it into the
// experts' down projection, run_expert_down_combine) and the expert-parallel EpMoeLayer (combine_tokens
// on the rows sent back), so both add in exactly the same order (the EP tests compare their outputs bit
// for bit): per token, from 0, the routed experts' outputs in expert order (= the plan's row order;
// weighted unless the weight scaled the input), then the shared experts' outputs in order, times the
// sigmoid shared-expert gate when there is one.
#pragma once

#include <cstdint>

#include "kernels/matmul.h"
#include "moe/routing_plan.h"

namespace moe {

// The sigmoid shared-expert gate of token rows x [T, D] (row stride D) into g [T]: the value both
// combine paths multiply the shared experts' outputs by.
void shared_gate_values(const float* x, int64_t T, int64_t D, const WeightView& gate, float* g);

struct CombineArgs {
  const RoutingPlan* plan = nullptr;        // slots of tokens [0, plan T)
  const float* ys = nullptr;                // [n_rows, D] expert outputs in the plan's row order
  const float* x = nullptr;                 // [T, D] layer input (for the shared-expert gate)
  int64_t d_model = 0;                      // D
  bool weighted = true;                     // false: the routing weight already scaled the expert's input
  const float* shared_y = nullptr;          // [S, shared_tokens, D] shared experts' outputs
  int n_shared = 0;                         // S
  int64_t shared_tokens = 0;                // rows per shared expert in shared_y
  int64_t shared_t0 = 0;                    // shared_y row of the plan's token 0
  const WeightView* shared_gate = nullptr;  // [1, D], or null / null data: ungated
};

// out[t] for tokens t in [t0, t1) of the plan. out: [T, D].
void combine_tokens(const CombineArgs& args, int64_t t0, int64_t t1, float* out);

// The one step of the sum: out[i] = out[i] + w * y[i], a product then an addition (never fused into an
// FMA: this file and its callers compile without FMA), so every path that sums the same terms in the same
// order from 0 gets the same bits (run_expert_down_combine, combine_tokens).
inline void add_scaled_row(const float* y, float w, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] += w * y[i];
}

}  // namespace moe
