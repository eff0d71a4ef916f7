// Expert parallelism inside the Decoder (`moe eval|run --ep R`): EpDecoderHook gives the Decoder
// an expert filter (each rank loads only its routed experts) and a MoeBlock factory building
// EpMoeLayers run with forward_replicated (every rank holds all tokens and runs attention, so
// the logits are those of one process), and keeps each MoE layer's EpTelemetry for the report.
// gather_ep_report() collects every rank's figures on rank 0.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/moe_block.h"
#include "parallel/comm.h"
#include "parallel/ep_layer.h"
#include "parallel/placement.h"

namespace moe::parallel {

class EpDecoderHook {
 public:
  // n_expert: the model's routed experts per MoE layer (0 for a dense model: EP is a no-op).
  // placement_spec: "contiguous", "round-robin" or "file:PATH" (ExpertPlacement::parse).
  EpDecoderHook(Comm& comm, const std::string& placement_spec, int n_expert);

  // For Decoder's constructor; refers to this hook, which must outlive the Decoder.
  DecoderOptions options();

  Comm& comm() const { return comm_; }
  bool has_experts() const { return n_expert_ > 0; }
  const ExpertPlacement& placement() const { return placement_; }
  // Summed over every MoE layer and call since construction / reset(): this rank's figures.
  const EpTelemetry& total() const { return total_; }
  int64_t layer_calls() const { return layer_calls_; }
  // Predicted bytes this rank sends (and receives) over the same layer calls: the uniform-routing
  // formula of ep_predicted_bytes_per_layer for each call's token block, plus the all-gather.
  int64_t predicted_bytes() const { return predicted_bytes_; }
  void reset();

  // Called by the blocks after each forward_replicated.
  void record(const EpTelemetry& t, int64_t predicted_bytes);

 private:
  Comm& comm_;
  int n_expert_ = 0;
  ExpertPlacement placement_;
  EpTelemetry total_;
  int64_t layer_calls_ = 0;
  int64_t predicted_bytes_ = 0;
};

// One rank's figures per MoE layer call (means over the calls).
struct EpRankSummary {
  int rank = 0;
  std::vector<int> experts;          // global ids this rank owns
  std::vector<int64_t> expert_rows;  // [n_local] rows each computed, summed over layers and calls
  int64_t rows_computed = 0;
  double bytes_sent_per_layer = 0, bytes_received_per_layer = 0;
  double predicted_bytes_per_layer = 0;  // uniform-routing prediction, same calls
  double route_ms = 0, dispatch_ms = 0, experts_ms = 0, combine_ms = 0, wait_ms = 0;  // summed
};

struct EpReport {
  int n_rank = 1;
  std::string placement;    // ExpertPlacement::describe()
  int64_t layer_calls = 0;  // MoE layer calls per rank (layers x forward calls)
  std::vector<EpRankSummary> ranks;
};

// Collective: every rank calls it; rank 0 gets every rank's summary (others get only theirs).
EpReport gather_ep_report(const EpDecoderHook& hook);

// Text block and JSON object (the "ep" key of `--json`) of the report.
std::string format_ep_report(const EpReport& report);
std::string ep_report_json(const EpReport& report);

}  // namespace moe::parallel
