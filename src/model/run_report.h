// The activation report of a run: what sparse activation really cost, measured from the routing
// that happened, next to the analytic figures of the TensorRegistry. RunRecorder collects the
// ForwardStats of every forward call (prefill and decode steps); finish() summarizes them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/decoder.h"
#include "spec/accounting.h"
#include "util/json_out.h"

namespace moe {

struct LayerLoad {
  int layer = 0;
  std::vector<int64_t> tokens_per_expert;  // [E] summed over the run
  double max_over_mean = 0;                // hottest expert / mean load
  int experts_never_used = 0;
};

struct RunReport {
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  double prefill_tokens_per_s = 0, decode_tokens_per_s = 0;
  int64_t total_params = 0;
  int64_t activated_params_analytic = 0;  // always-on + shared + top-k routed, embedding and head included
  double activated_params_measured = 0;   // mean per token over the run, from the rows each expert computed
  int64_t activated_params_measured_min = 0, activated_params_measured_max = 0;  // over forward calls
  std::vector<LayerLoad> expert_load;                                            // MoE layers only
  double distinct_experts_per_decode_step = 0;  // mean over decode steps, summed over MoE layers
  int64_t distinct_experts_min = 0, distinct_experts_max = 0;
  double weight_bytes_per_decode_token = 0;  // always-on weights + expert weights streamed, mean per decode step
  double kv_bytes_read_per_decode_token = 0;
  double decode_bytes_per_s = 0;  // (weights + KV) / decode step time
  double read_gbps_ceiling = 0;   // measured in the same run (0 when not measured)
  CeilingFraction roofline;       // decode_bytes_per_s / read ceiling (null when the step fits in cache)
  uint64_t kv_cache_bytes = 0;    // at the end of the run
  std::string kv_cache_type;      // its rows: F32, F16 or BF16 (empty: not known)
};

class RunRecorder {
 public:
  // always_on_weight_bytes: bytes of the non-routed weights one decode step reads (loaded dtype).
  RunRecorder(const ModelSpec& spec, const TensorRegistry& registry, double always_on_weight_bytes);

  // One forward call of n_tokens (prefill when the cache was empty before it, else decode).
  void record(const ForwardStats& stats, int64_t n_tokens, double seconds, bool prefill, uint64_t kv_bytes_before);
  RunReport finish(double read_gbps_ceiling, uint64_t kv_cache_bytes) const;

 private:
  const ModelSpec& spec_;
  ParamCounts counts_;
  std::vector<int64_t> params_per_expert_;  // [L] routed parameters of one expert (0 for dense layers)
  int64_t always_on_params_ = 0;
  double always_on_bytes_ = 0;

  RunReport acc_;
  double activated_sum_ = 0;  // sum over tokens
  int64_t activated_tokens_ = 0;
  int64_t decode_steps_ = 0;
  double distinct_sum_ = 0, weight_bytes_sum_ = 0, kv_bytes_sum_ = 0;
  std::vector<std::vector<int64_t>> load_;  // [L][E]
};

// Text table and JSON of a report (JSON keys as `moe run --json` documents them).
std::string format_run_report(const RunReport& r);
std::string run_report_json(const RunReport& r, int indent = 2);

}  // namespace moe
