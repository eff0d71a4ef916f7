// `moe bench layer`: one MoE layer with random weights in a model's shape, timed per token count
// against the machine's ceilings and dense FFNs of equal total and equal activated parameters,
// with the experts' weights kept out of the cache between timed calls (see LayerBenchResult::residency).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/ceilings.h"
#include "moe/moe_layer.h"

namespace moe {

// The layer's shape: from the catalog (--model) and/or explicit sizes.
struct LayerBenchShape {
  std::string name = "custom";
  int64_t d_model = 0, d_ff = 0, d_ff_shared = 0;  // shared: total width of the shared experts (0: none)
  int n_expert = 0, top_k = 0;
  MoeLayerConfig config;  // router and activation semantics
};

enum class RoutingPattern { kUniform, kZipf, kBalanced };

struct LayerBenchOptions {
  LayerBenchShape shape;
  std::vector<int64_t> tokens = {1, 4, 16, 128, 512};
  DType dtype = DType::kBF16;
  RoutingPattern routing = RoutingPattern::kUniform;
  double zipf_s = 1.0;
  double capacity_factor = 0;   // 0: dropless
  int repetitions = 5;          // timed calls per row (median); one warm-up call before
  double max_weight_gib = 4.0;  // memory for the expert weight pool
  int dense_max_chunks = 32;    // dense-total baseline measured on at most this many expert-sized chunks, scaled
  bool dense = true;
  bool pack_weights = true;  // pool in the kernels' panel layout (packed once) when the ISA has panel kernels
  std::function<void(int64_t rows_done, int64_t rows)> on_row;  // after each row (a progress display)
};

struct LayerBenchRow {
  int64_t tokens = 0;
  double ms = 0;                // median MoE layer time
  double gbps = 0, gflops = 0;  // unique weight bytes (router + touched experts + shared) / time; FLOPs / time
  // The read ceiling paired with each timed call (a ReadProbe pass right before it), median, and the
  // median over calls of (call's GB/s / its paired ceiling): what %read reports.
  double read_gbps_paired = 0, read_fraction = 0;
  double bytes = 0, flops = 0;
  double experts_touched = 0;                                            // mean over the timed calls
  double route_ms = 0, dispatch_ms = 0, experts_ms = 0, combine_ms = 0;  // medians
  double overhead_fraction = 0;                                          // (route + dispatch + combine) / total
  double dense_total_ms = 0, dense_activated_ms = 0;  // medians; each measured right after each MoE call
  double speedup_vs_dense_total = 0;                  // median over calls of dense total / that call's time
  // The same medians in process CPU time (all threads), for ratios on a shared machine: with one
  // thread, work per CPU-second against ceilings measured the same way (kernels/ceilings.h).
  double cpu_ms = 0, dense_total_cpu_ms = 0, dense_activated_cpu_ms = 0;
  bool dense_total_extrapolated = false;
  int64_t dropped_slots = 0;
};

struct LayerBenchResult {
  LayerBenchOptions options;
  CeilingRow ceilings;  // all threads
  std::string isa;
  int threads = 1;
  int64_t llc_bytes = 0;
  int64_t pool_bytes = 0;                         // expert weight pool actually allocated
  int physical_experts = 0;                       // expert-sized weight blocks in the pool
  int weight_sets = 1;                            // layers rotated across calls (small models)
  double total_params = 0, activated_params = 0;  // per layer (experts + shared + router)
  std::string residency;                          // how cache residency was defeated, in words
  bool packed = false;                            // expert weights in the panel layout
  std::vector<LayerBenchRow> rows;
};

// Shape from a catalog name (moe inspect's names) via ModelSpec; throws naming the model.
LayerBenchShape layer_bench_shape_from_catalog(const std::string& model);
// Parses "uniform", "balanced", "zipf:S" (S > 0); throws moe::UsageError otherwise.
void parse_routing_pattern(const std::string& text, RoutingPattern* pattern, double* zipf_s);

LayerBenchResult run_layer_bench(const LayerBenchOptions& options);

}  // namespace moe
