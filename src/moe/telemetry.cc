// MoeTelemetry: the accounting of one call, accumulation across calls and a one-line summary.
#include "moe/telemetry.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace moe {

void account_moe_call(const MoeLayerSizes& s, int64_t T, int top_k, std::vector<int64_t> tokens_per_expert,
                      int64_t dropped_slots, MoeTelemetry* tel) {
  tel->n_tokens = T;
  tel->top_k = top_k;
  tel->tokens_per_expert = std::move(tokens_per_expert);
  tel->dropped_slots = dropped_slots;
  int64_t rows = 0;
  tel->experts_touched = 0;
  for (const int64_t n : tel->tokens_per_expert) {
    rows += n;
    tel->experts_touched += n > 0 ? 1 : 0;
  }
  const bool shared = T > 0;  // the shared experts run on every token, so on none of an empty call
  tel->activated_params = s.router_params + tel->experts_touched * s.expert_params + (shared ? s.shared_params : 0);
  tel->expert_bytes_streamed = tel->experts_touched * s.expert_bytes + (shared ? s.shared_bytes : 0);
  tel->expert_flops = 2 * 3 * s.d_model * (rows * s.d_ff + T * s.shared_d_ff);
}

void MoeTelemetry::accumulate(const MoeTelemetry& o) {
  n_tokens += o.n_tokens;
  top_k = o.top_k;
  if (tokens_per_expert.size() < o.tokens_per_expert.size()) tokens_per_expert.resize(o.tokens_per_expert.size(), 0);
  for (size_t e = 0; e < o.tokens_per_expert.size(); ++e) tokens_per_expert[e] += o.tokens_per_expert[e];
  dropped_slots += o.dropped_slots;
  experts_touched = static_cast<int>(
      std::count_if(tokens_per_expert.begin(), tokens_per_expert.end(), [](int64_t c) { return c > 0; }));
  activated_params += o.activated_params;
  expert_bytes_streamed += o.expert_bytes_streamed;
  expert_flops += o.expert_flops;
  work_items += o.work_items;
  route_ms += o.route_ms;
  dispatch_ms += o.dispatch_ms;
  experts_ms += o.experts_ms;
  combine_ms += o.combine_ms;
}

std::string MoeTelemetry::summary() const {
  return fmt::format(
      "T={} K={} touched={}/{} dropped={} activated_params={} expert_bytes={} ms route/dispatch/experts/combine "
      "{:.3f}/{:.3f}/{:.3f}/{:.3f}",
      n_tokens, top_k, experts_touched, tokens_per_expert.size(), dropped_slots, activated_params,
      expert_bytes_streamed, route_ms, dispatch_ms, experts_ms, combine_ms);
}

}  // namespace moe
