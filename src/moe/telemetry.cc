// MoeTelemetry: accumulation across calls and a one-line summary.
#include "moe/telemetry.h"

#include <fmt/format.h>

#include <algorithm>

namespace moe {

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
