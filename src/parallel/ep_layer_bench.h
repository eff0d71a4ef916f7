// `moe bench layer --ep R` under mpirun: one expert-parallel MoE layer (EpMoeLayer::forward, each
// rank T tokens of its own, uniform random routing) per token count. Per rank: the median time
// split into route / dispatch / experts / combine / wait, communication (dispatch + wait) as a
// share of the layer, and the bytes sent and received per layer measured from the collectives
// next to the formula for the routing that happened and the uniform-routing prediction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/layer_bench.h"
#include "parallel/comm.h"

namespace moe::parallel {

struct EpLayerBenchOptions {
  LayerBenchShape shape;
  DType dtype = DType::kBF16;
  std::vector<int64_t> tokens = {1, 512};  // per rank
  int repetitions = 5;                     // timed calls per row (median), after two warm-up calls
  std::string placement = "contiguous";
};

struct EpLayerBenchRow {
  int rank = 0;
  int64_t tokens = 0;  // this rank's tokens per call
  double layer_ms = 0;
  double route_ms = 0, dispatch_ms = 0, experts_ms = 0, combine_ms = 0, wait_ms = 0;  // medians
  double comm_share = 0;                      // median over calls of (dispatch + wait) / layer time
  double bytes_sent = 0, bytes_received = 0;  // measured, mean per call
  double predicted_bytes_sent = 0;            // ep_bytes_sent() for each call's routing, mean
  double predicted_bytes_received = 0;
  int64_t predicted_bytes_uniform = 0;  // ep_predicted_bytes_per_layer(T, K, D, R)
  int64_t local_experts = 0;
};

struct EpLayerBenchResult {
  EpLayerBenchOptions options;
  int n_rank = 1;
  int threads = 1;
  std::string placement;              // ExpertPlacement::describe()
  std::vector<EpLayerBenchRow> rows;  // rank 0: every rank's rows, token count major; others: their own
};

// Collective: every rank calls it with the same options.
EpLayerBenchResult run_ep_layer_bench(Comm& comm, const EpLayerBenchOptions& options);

std::string format_ep_layer_bench(const EpLayerBenchResult& result);
// The `bench layer --ep --json` report (docs/CLI.md conventions: counts as integers).
nlohmann::ordered_json ep_layer_bench_report(const EpLayerBenchResult& r);

}  // namespace moe::parallel
