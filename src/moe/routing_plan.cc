// RoutingPlan construction: stable counting sort of slots by expert, capacity drops by
// position or by probability, and the consistency check used by tests and EP.
#include "moe/routing_plan.h"

#include <algorithm>
#include <cmath>

#include "util/check.h"
#include "util/error.h"

namespace moe {

void DispatchOptions::validate() const {
  if (mode == CapacityMode::kCapacity && !(capacity_factor > 0.0 && std::isfinite(capacity_factor))) {
    fail("dispatch", "capacity factor must be finite and > 0, got {}", capacity_factor);
  }
}

int64_t expert_capacity(const DispatchOptions& o, int64_t n_tokens, int top_k, int n_expert) {
  if (o.mode == CapacityMode::kDropless) return 0;
  o.validate();
  const double c = std::ceil(o.capacity_factor * static_cast<double>(n_tokens) * top_k / n_expert);
  return std::max<int64_t>(1, static_cast<int64_t>(c));
}

int RoutingPlan::n_experts_touched() const {
  int n = 0;
  for (int64_t c : expert_counts) n += c > 0;
  return n;
}

RoutingPlan make_routing_plan(const int32_t* ids, const float* weights, int64_t n_tokens, int top_k, int n_expert,
                              const DispatchOptions& options) {
  options.validate();
  RoutingPlan p;
  p.n_tokens = n_tokens;
  p.top_k = top_k;
  p.n_expert = n_expert;
  const int64_t n_slots = n_tokens * top_k;
  p.expert_ids.assign(ids, ids + n_slots);       // [T * K]
  p.weights.assign(weights, weights + n_slots);  // [T * K]
  p.routed_counts.assign(n_expert, 0);           // [E]
  for (int64_t s = 0; s < n_slots; ++s) {
    const int32_t e = ids[s];
    if (e < 0 || e >= n_expert)
      fail("dispatch", "slot {} (token {}) has expert id {} outside [0, {})", s, s / top_k, e, n_expert);
    ++p.routed_counts[e];
  }
  p.capacity = expert_capacity(options, n_tokens, top_k, n_expert);
  p.slot_to_row.assign(n_slots, -1);  // [T * K]
  // keep[s]: whether slot s survives capacity. Dropless keeps all.
  std::vector<uint8_t> keep(n_slots, 1);
  if (p.capacity > 0) {
    // Per-expert lists of slots in increasing order (stable counting sort), then trim to C.
    std::vector<int64_t> start(n_expert + 1, 0);
    for (int e = 0; e < n_expert; ++e) start[e + 1] = start[e] + p.routed_counts[e];
    std::vector<int32_t> by_expert(n_slots);
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t s = 0; s < n_slots; ++s) by_expert[fill[ids[s]]++] = static_cast<int32_t>(s);
    for (int e = 0; e < n_expert; ++e) {
      if (p.routed_counts[e] <= p.capacity) continue;
      auto first = by_expert.begin() + start[e], last = by_expert.begin() + start[e + 1];
      if (options.drop_policy == DropPolicy::kProbability) {
        std::stable_sort(first, last, [&](int32_t a, int32_t b) { return weights[a] > weights[b]; });
      }
      for (auto it = first + p.capacity; it != last; ++it) keep[*it] = 0;
    }
  }
  p.expert_counts.assign(n_expert, 0);  // [E]
  for (int64_t s = 0; s < n_slots; ++s) {
    if (keep[s]) {
      ++p.expert_counts[ids[s]];
    } else {
      p.dropped_slots.push_back(static_cast<int32_t>(s));
    }
  }
  p.expert_offsets.assign(n_expert + 1, 0);  // [E + 1]
  for (int e = 0; e < n_expert; ++e) p.expert_offsets[e + 1] = p.expert_offsets[e] + p.expert_counts[e];
  p.row_to_slot.assign(p.n_rows(), -1);  // [n_rows]
  std::vector<int64_t> next(p.expert_offsets.begin(), p.expert_offsets.end() - 1);
  for (int64_t s = 0; s < n_slots; ++s) {
    if (!keep[s]) continue;
    const int64_t r = next[ids[s]]++;
    p.slot_to_row[s] = static_cast<int32_t>(r);
    p.row_to_slot[r] = static_cast<int32_t>(s);
  }
  return p;
}

void RoutingPlan::check_consistent() const {
  const int64_t ns = n_slots();
  MOE_CHECK(static_cast<int64_t>(expert_ids.size()) == ns);
  MOE_CHECK(static_cast<int64_t>(weights.size()) == ns);
  MOE_CHECK(static_cast<int64_t>(expert_offsets.size()) == n_expert + 1);
  MOE_CHECK(expert_offsets[0] == 0);
  int64_t dropped = 0;
  for (int e = 0; e < n_expert; ++e) {
    MOE_CHECK(expert_offsets[e + 1] - expert_offsets[e] == expert_counts[e]);
    MOE_CHECK(expert_counts[e] <= routed_counts[e]);
    if (capacity > 0) MOE_CHECK(expert_counts[e] <= capacity);
    dropped += routed_counts[e] - expert_counts[e];
  }
  MOE_CHECK(dropped == static_cast<int64_t>(dropped_slots.size()));
  MOE_CHECK(static_cast<int64_t>(row_to_slot.size()) == n_rows());
  for (int64_t r = 0; r < n_rows(); ++r) {
    const int32_t s = row_to_slot[r];
    MOE_CHECK(s >= 0 && s < ns);
    MOE_CHECK(slot_to_row[s] == r);
    const int32_t e = expert_ids[s];
    MOE_CHECK(r >= expert_offsets[e] && r < expert_offsets[e + 1]);
    if (r > expert_offsets[e]) MOE_CHECK(row_to_slot[r - 1] < s);
  }
  for (int32_t s : dropped_slots) MOE_CHECK(slot_to_row[s] == -1);
}

}  // namespace moe
