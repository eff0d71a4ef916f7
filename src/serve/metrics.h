// GET /metrics of `moe serve`: Prometheus text exposition (version 0.0.4) of the scheduler's
// counters (requests, tokens, steps, queue, batch, distinct experts per step against the uniform
// routing prediction, expert load) and the HTTP requests by endpoint and status.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "serve/scheduler.h"
#include "spec/accounting.h"
#include "spec/model_spec.h"

namespace moe::serve {

struct HttpCounters {
  std::map<std::pair<std::string, int>, int64_t> requests;  // (endpoint, status) -> count
};

std::string prometheus_text(const ModelSpec& spec, const SchedulerOptions& options, const SchedulerStats& stats,
                            const HttpCounters& http);

}  // namespace moe::serve
