// The combine step of a MoE layer, shared by MoeLayer and the expert-parallel EpMoeLayer so both
// add in exactly the same order (the EP tests compare their outputs bit for bit): per token, the
// routed experts' outputs in slot order (weighted unless the weight scaled the input), then the
// shared experts' outputs in order, times the sigmoid shared-expert gate when there is one.
#pragma once

#include <cstdint>

#include "kernels/matmul.h"
#include "moe/routing_plan.h"

namespace moe {

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

}  // namespace moe
