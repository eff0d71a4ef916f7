// RoutingPlan: the dispatch handle produced once per MoE layer call and reused by gather,
// expert compute, combine, the backward passes (combine's backward is dispatch) and the
// expert-parallel all-to-all (which cuts the layer between dispatch and combine).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moe {

enum class CapacityMode {
  kDropless,  // every slot is computed (default)
  kCapacity,  // each expert keeps at most C = ceil(capacity_factor * T * K / E) slots
};

enum class DropPolicy {
  kPosition,     // keep an expert's slots in token order (earlier tokens first), drop the rest
  kProbability,  // keep an expert's C slots with the largest routing weight (ties: earlier slot)
};

struct DispatchOptions {
  CapacityMode mode = CapacityMode::kDropless;
  double capacity_factor = 1.0;  // used in kCapacity mode; must be > 0
  DropPolicy drop_policy = DropPolicy::kPosition;
  void validate() const;  // throws moe::Error("dispatch", ...)
};

// Indexing. A *slot* s = t * K + k is token t's k-th choice (0 <= t < T, 0 <= k < K).
// A *row* r is a position in the expert-sorted buffer [n_rows, D]: the kept slots grouped by
// expert (expert 0 first), and inside one expert in increasing slot order (so in token order).
//   expert e's rows are r in [expert_offsets[e], expert_offsets[e + 1]); expert_counts[e] of them.
//   slot_to_row[s] = r, or -1 when slot s was dropped (capacity mode).
//   row_to_slot[r] = s; token of row r = row_to_slot[r] / K.
// Dispatch gives row r the input x[token(r)] (MoeLayer's experts read it in place; expert parallelism
// copies it into the send buffer); combine computes
//   out[t] = sum_k weights[t * K + k] * y[slot_to_row[t * K + k]] over kept slots,
// summed in row order (= expert order; moe/combine.h).
// Backward: the gradient of combine w.r.t. y is dispatch of dout scaled by the weights, and the
// gradient of dispatch is combine without weights. Expert parallelism sends rows
// [expert_offsets[e0], expert_offsets[e1]) to the rank owning experts [e0, e1).
struct RoutingPlan {
  int64_t n_tokens = 0;  // T
  int top_k = 0;         // K
  int n_expert = 0;      // E
  int64_t capacity = 0;  // C per expert in capacity mode; 0 in dropless mode

  std::vector<int32_t> expert_ids;      // [T * K] chosen expert per slot
  std::vector<float> weights;           // [T * K] routing weight per slot (kept even when dropped)
  std::vector<int64_t> routed_counts;   // [E] slots routed to each expert before drops
  std::vector<int64_t> expert_counts;   // [E] rows each expert computes (after drops)
  std::vector<int64_t> expert_offsets;  // [E + 1] prefix sum of expert_counts
  std::vector<int32_t> slot_to_row;     // [T * K] row, or -1 when dropped
  std::vector<int32_t> row_to_slot;     // [n_rows]
  std::vector<int32_t> dropped_slots;   // slots dropped by capacity, increasing

  int64_t n_slots() const { return n_tokens * top_k; }
  int64_t n_rows() const { return expert_offsets.empty() ? 0 : expert_offsets.back(); }
  int64_t token_of_row(int64_t r) const { return row_to_slot[r] / top_k; }
  int n_experts_touched() const;  // experts with at least one row

  // Checks every invariant above (MOE_CHECK); for tests and after an EP exchange.
  void check_consistent() const;
};

// Capacity per expert for T tokens: ceil(cf * T * K / E), at least 1 (0 in dropless mode).
int64_t expert_capacity(const DispatchOptions& options, int64_t n_tokens, int top_k, int n_expert);

// Builds the plan from ids and weights [T, K] by a stable counting sort over experts.
// Throws moe::Error("dispatch", ...) for an id outside [0, E).
RoutingPlan make_routing_plan(const int32_t* expert_ids, const float* weights, int64_t n_tokens, int top_k,
                              int n_expert, const DispatchOptions& options);

}  // namespace moe
