// GET /metrics of `moe serve`: Prometheus text exposition (version 0.0.4) of the scheduler's
// counters (requests, tokens, steps, queue, batch, distinct experts per step against the uniform
// routing prediction, expert load) and the HTTP requests by endpoint and status.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "serve/scheduler.h"
#include "spec/model_spec.h"

namespace moe::serve {

// Distinct experts a step of `batch` tokens touches per MoE layer when each token picks k of E
// uniformly: E (1 - (1 - k/E)^batch) (the accounting's decode floor uses the same expectation).
double expected_distinct_experts(int64_t n_expert, int64_t k, double batch);

struct HttpCounters {
  std::map<std::pair<std::string, int>, int64_t> requests;  // (endpoint, status) -> count
};

std::string prometheus_text(const ModelSpec& spec, const SchedulerOptions& options, const SchedulerStats& stats,
                            const HttpCounters& http);

}  // namespace moe::serve
