// Prometheus text for /metrics (see metrics.h).
#include "serve/metrics.h"

#include <algorithm>

#include <fmt/format.h>

namespace moe::serve {

namespace {

void metric(std::string& out, const char* name, const char* type, const char* help, double value) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
}

}  // namespace

std::string prometheus_text(const ModelSpec& spec, const SchedulerOptions& options, const SchedulerStats& s,
                            const HttpCounters& http) {
  std::string out;
  out += "# HELP moe_http_requests_total HTTP requests answered, by endpoint and status.\n";
  out += "# TYPE moe_http_requests_total counter\n";
  for (const auto& [key, n] : http.requests)
    out += fmt::format("moe_http_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  metric(out, "moe_requests_completed_total", "counter", "Generations that ended by a stop or the length.",
         double(s.requests_done));
  metric(out, "moe_requests_cancelled_total", "counter", "Generations cancelled (client gone, shutdown).",
         double(s.requests_cancelled));
  metric(out, "moe_requests_failed_total", "counter", "Generations that ended with an error.",
         double(s.requests_failed));
  metric(out, "moe_prompt_tokens_total", "counter", "Prompt tokens prefilled.", double(s.prompt_tokens));
  metric(out, "moe_generated_tokens_total", "counter", "Tokens generated.", double(s.generated_tokens));
  metric(out, "moe_busy_seconds_total", "counter", "Seconds the model spent in batch steps.", s.busy_seconds);
  metric(out, "moe_generated_tokens_per_second", "gauge", "Tokens generated per busy second (all sequences).",
         s.busy_seconds > 0 ? double(s.generated_tokens) / s.busy_seconds : 0.0);
  metric(out, "moe_queue_length", "gauge", "Requests waiting for a slot.", double(s.queued));
  metric(out, "moe_queue_limit", "gauge", "Waiting requests beyond which new ones get 429.", double(options.queue));
  metric(out, "moe_active_sequences", "gauge", "Sequences in the batch.", double(s.active));
  metric(out, "moe_parallel_slots", "gauge", "Sequences that may run together (--parallel).", double(options.parallel));
  metric(out, "moe_steps_total", "counter", "Batch steps (one forward pass each).", double(s.steps));
  metric(out, "moe_decode_steps_total", "counter", "Steps with at least one decoding sequence.",
         double(s.decode_steps));
  metric(out, "moe_batch_size", "gauge", "Decoding sequences in the last step.", double(s.last_batch));
  const double mean_batch = s.decode_steps > 0 ? double(s.decode_rows) / double(s.decode_steps) : 0.0;
  metric(out, "moe_batch_size_mean", "gauge", "Decoding sequences per decode step, mean.", mean_batch);
  if (spec.n_expert > 0) {
    const int64_t E = spec.n_expert, K = spec.n_expert_used;
    metric(out, "moe_distinct_experts_per_step", "gauge",
           "Distinct routed experts the last decode step touched, mean over MoE layers.", s.last_distinct_experts);
    metric(out, "moe_distinct_experts_predicted", "gauge",
           "E(1-(1-k/E)^B) for the last step's batch B (uniform routing).",
           expected_distinct_experts(E, K, double(s.last_batch)));
    metric(out, "moe_distinct_experts_per_step_mean", "gauge",
           "Distinct routed experts per decode step (mean over MoE layers), mean over decode steps.",
           s.decode_steps > 0 ? s.distinct_experts_sum / double(s.decode_steps) : 0.0);
    metric(out, "moe_distinct_experts_predicted_mean_batch", "gauge", "E(1-(1-k/E)^B) at the mean decode batch.",
           expected_distinct_experts(E, K, mean_batch));
    out += "# HELP moe_expert_tokens_total Tokens routed to each expert, by layer.\n";
    out += "# TYPE moe_expert_tokens_total counter\n";
    for (size_t li = 0; li < s.expert_tokens.size(); ++li) {
      const auto& load = s.expert_tokens[li];
      for (size_t e = 0; e < load.size(); ++e)
        out += fmt::format("moe_expert_tokens_total{{layer=\"{}\",expert=\"{}\"}} {}\n", li, e, load[e]);
    }
    out += "# HELP moe_expert_load_max_over_mean Hottest expert's tokens over the mean, by layer.\n";
    out += "# TYPE moe_expert_load_max_over_mean gauge\n";
    for (size_t li = 0; li < s.expert_tokens.size(); ++li) {
      const auto& load = s.expert_tokens[li];
      if (load.empty()) continue;
      double sum = 0;
      for (int64_t n : load) sum += double(n);
      const double mx = double(*std::max_element(load.begin(), load.end()));
      out += fmt::format("moe_expert_load_max_over_mean{{layer=\"{}\"}} {}\n", li,
                         sum > 0 ? mx / (sum / double(load.size())) : 0.0);
    }
  }
  return out;
}

}  // namespace moe::serve
