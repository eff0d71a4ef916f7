// EpMoeLayer: one MoE layer with its routed experts spread over the ranks of a Comm (expert
// parallelism). forward(): tokens are data parallel: each rank routes its own tokens, the
// exchange sends their rows to the experts' owners and brings the results back, and the rank
// combines them and adds its tokens' shared experts. forward_replicated(): every rank holds all
// tokens (replicated attention, as in `moe eval --ep`): router and shared experts run on all of
// them, each rank exchanges and combines its block of tokens, and an all-gather gives every rank
// the whole output. The combine is MoeLayer's, in the same order; see docs/EXPERT_PARALLELISM.md
// for when the output is bitwise the one process's output.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moe/moe_layer.h"
#include "parallel/comm.h"
#include "parallel/ep_exchange.h"
#include "parallel/placement.h"

namespace moe::parallel {

// What one call cost on this rank.
struct EpTelemetry {
  int rank = 0;
  int n_rank = 1;
  int64_t n_tokens = 0;                        // this rank's tokens
  std::vector<int> local_experts;              // global ids of this rank's experts
  std::vector<int64_t> rows_per_local_expert;  // [n_local] rows each local expert computed (load)
  EpExchangeStats exchange;                    // rows and bytes to / from the other ranks
  double route_ms = 0;                         // router + RoutingPlan
  double dispatch_ms = 0;                      // packing, regrouping and unpacking rows
  double experts_ms = 0;                       // local routed experts + this rank's tokens' shared experts
  double combine_ms = 0;                       // weighted combine + shared output
  double wait_ms = 0;                          // inside the collectives: transfer and waiting for the other ranks
  int64_t calls = 0;

  double total_ms() const { return route_ms + dispatch_ms + experts_ms + combine_ms + wait_ms; }
  int64_t rows_computed() const;
  void accumulate(const EpTelemetry& other);  // sums counts, bytes and times
  // One line: "rank r/R T=.. rows=.. sent=..B recv=..B ms route/dispatch/experts/combine/wait".
  std::string summary() const;
};

// Not thread-safe: one call at a time per object. Every rank calls forward() the same number of
// times (it is collective), also with zero tokens.
class EpMoeLayer {
 public:
  // weights.experts has all E entries; only this rank's experts need data (each rank loads only
  // its experts). Throws moe::Error("ep") naming the mismatch.
  EpMoeLayer(Comm& comm, ExpertPlacement placement, const MoeLayerConfig& config, const MoeLayerWeights& weights);

  // out = MoE(x) for this rank's tokens. x, out: [T, D] row-major f32, not overlapping.
  void forward(const float* x, int64_t n_tokens, float* out, const RunOptions& options = {},
               EpTelemetry* telemetry = nullptr);

  // out = MoE(x) for all T tokens, x identical on every rank; out is identical on every rank and
  // bitwise equal to MoeLayer::forward over the same x (dropless dispatch: in capacity mode each
  // rank decides the drops of its token block). x, out: [T, D], not overlapping.
  void forward_replicated(const float* x, int64_t n_tokens, float* out, const RunOptions& options = {},
                          EpTelemetry* telemetry = nullptr);

  const MoeLayerConfig& config() const { return config_; }
  const ExpertPlacement& placement() const { return placement_; }
  const RoutingPlan& last_plan() const { return plan_; }
  // The last call's routing of every token it routed (all T for forward_replicated).
  const RouterOutput& last_router_output() const { return router_out_; }

 private:
  void compute_local(const EpLocalBatch& batch, const RunOptions& options, float* y);
  void run_shared(const float* x, int64_t n_tokens, const RunOptions& options);
  // Combines tokens [t0, t0 + n) of the plan's token block; shared_y_ rows are indexed by
  // shared_t0 + t (shared experts may have run on more tokens than the block).
  void combine(const float* x, int64_t n_tokens, int64_t shared_tokens, int64_t shared_t0, float* out) const;
  // Plan for tokens [t0, t0 + n) of router_out_, exchange, returns the exchange stats.
  EpExchangeStats exchange(const float* x, int64_t t0, int64_t n, const RunOptions& options,
                           std::vector<int64_t>* rows_per_local);

  Comm& comm_;
  ExpertPlacement placement_;
  MoeLayerConfig config_;
  MoeLayerWeights weights_;
  RouterOutput router_out_;
  RoutingPlan plan_;
  EpExchangeWorkspace workspace_;
  std::vector<float> ys_;        // [n_rows, D] expert outputs in plan row order
  std::vector<float> xs_;        // [n_local_rows, D] scaled inputs (weight before expert)
  std::vector<float> hs_;        // [n_local_rows, F]
  std::vector<uint16_t> hbs_;    // [n_local_rows, F even] bf16 copy of hs_ (ExpertTask::hb), or empty
  std::vector<float> shared_h_;  // [S, T, Fs]
  std::vector<float> shared_y_;  // [S, T, D]
};

}  // namespace moe::parallel
