// Models bigger than RAM: a Decoder's routed experts stay in the model file and are read into an
// ExpertCache (model/expert_cache.h) sized by --mem-budget. The always-on weights (attention, dense and
// shared FFNs, routers, embeddings, head) load as usual; the budget left after them, divided by one
// expert's slot size, is the pool. Each MoE layer's block asks the cache for the experts its router
// chose, then predicts the next MoE layer's experts by running that layer's router on its own input
// (pre-gating) and queues their reads, so disk and compute overlap. Outputs are bit-identical to the
// all-in-memory run: the slots hold the same panels the load would have packed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/expert_cache.h"
#include "model/moe_block.h"
#include "moe/router.h"
#include "spec/model_spec.h"

namespace moe {

// How well pre-gating predicted one MoE layer's experts: of the experts the previous layer's look-ahead
// named, how many the layer then used. Prefetch reads for a layer are issued only while its recent
// precision is at least ExpertOffload::kMinPrecision (a moving average, still measured while reads are
// withheld), so routing the look-ahead cannot predict (random, or a router that changes its mind
// between layers) costs no disk bandwidth.
struct PrefetchLayerStats {
  int64_t predictions = 0;     // look-aheads for this layer
  int64_t predicted = 0;       // experts they named
  int64_t predicted_used = 0;  // of those, used by the layer's call
  int64_t withheld = 0;        // look-aheads whose reads were not issued (precision too low)
  double precision() const { return predicted ? double(predicted_used) / double(predicted) : 0.0; }
};

// What the offload run did, for reports.
struct OffloadReport {
  uint64_t mem_budget = 0;
  uint64_t resident_bytes = 0;  // always-on weights and the process around them, measured after the load
  uint64_t slot_bytes = 0;
  int64_t slots = 0;
  int64_t experts_total = 0;  // routed experts of the model
  int64_t pinned = 0;         // from --expert-profile
  ExpertCacheStats stats;
  std::vector<PrefetchLayerStats> prefetch;  // [L]
  PrefetchLayerStats prefetch_total() const {
    PrefetchLayerStats t;
    for (const PrefetchLayerStats& p : prefetch) {
      t.predictions += p.predictions;
      t.predicted += p.predicted;
      t.predicted_used += p.predicted_used;
      t.withheld += p.withheld;
    }
    return t;
  }
};

class ExpertOffload {
 public:
  ExpertOffload(const ModelSpec& spec, OffloadOptions options);
  ~ExpertOffload();

  // The file index of a path (registered on first use).
  int file_index(const std::string& path);
  // Registers a MoE layer: where each routed expert is, and its router (for the previous layer's prefetch).
  void add_layer(int64_t layer, std::vector<ExpertSource> sources, const MoeLayerConfig& config,
                 const RouterWeights& router);
  // Sizes the pool from the budget minus what is resident now and pins the profile's hottest experts.
  // Throws naming the budget it needs when one MoE layer's experts do not fit.
  void start(uint64_t resident_bytes);
  std::unique_ptr<MoeBlock> make_block(int64_t layer, const MoeLayerConfig& config, const MoeLayerWeights& w);

  ExpertCache& cache() { return *cache_; }
  const std::vector<std::string>& files() const { return files_; }  // the files experts are read from
  OffloadReport report() const;
  void reset_stats();  // the cache's and the look-ahead's counters (not the precision it has learned)
  // Queues the reads of the next MoE layer's likely experts for the tokens x [T, D] of `layer` (when
  // that layer's look-ahead has been precise enough lately).
  void prefetch_after(int64_t layer, const float* x, int64_t n_tokens);
  // Scores the look-ahead made for `layer` against the distinct experts it used (sorted).
  void score_prediction(int64_t layer, const std::vector<int32_t>& used);
  static constexpr double kMinPrecision = 0.3;     // below it, a layer's prefetch reads are withheld
  static constexpr double kPrecisionWeight = 0.2;  // of the latest call in the moving average

 private:
  struct LayerInfo {
    std::vector<ExpertSource> sources;
    MoeLayerConfig config;
    RouterWeights router;
    std::vector<int32_t> predicted;  // the look-ahead's experts for the coming call, sorted
    double precision = 1.0;          // moving average; starts trusting the look-ahead
    PrefetchLayerStats stats;
  };
  const ModelSpec& spec_;
  OffloadOptions options_;
  std::vector<std::string> files_;
  std::vector<LayerInfo> layers_;  // [L]; empty sources for dense layers
  std::unique_ptr<ExpertCache> cache_;
  uint64_t resident_ = 0;
  int64_t pinned_ = 0;
  RouterOutput predicted_;
};

// What `moe inspect --mem-budget` predicts: the pool a budget leaves and the decode hit rate, for uniform
// routing (any policy caches a fraction f of equally likely experts: hit rate f) and, given a routing trace,
// by replaying it through the cache's replacement rule (demand reads only, no prefetch).
struct OffloadPrediction {
  uint64_t mem_budget = 0;
  double always_on_bytes = 0, expert_bytes = 0;  // at the checkpoint's dtypes
  int64_t experts_total = 0, experts_per_layer = 0, top_k = 0, moe_layers = 0;
  int64_t slots = 0;
  bool fits = false;      // the always-on weights and one layer's experts fit
  double min_budget = 0;  // what fits needs
  double fraction_cached = 0;
  double uniform_hit_rate = 0, uniform_bytes_per_token = 0;
  int64_t trace_tokens = 0;  // 0: no trace
  double trace_hit_rate = 0, trace_bytes_per_token = 0;
};
OffloadPrediction predict_offload(const ModelSpec& spec, double always_on_bytes, double expert_bytes,
                                  uint64_t mem_budget, const std::string& trace_path);

// Counts of each (layer, expert) in a routing trace (`moe run --trace` JSON lines), most used first.
std::vector<std::pair<int64_t, int32_t>> hottest_experts(const std::string& trace_path, int64_t n_layer);

}  // namespace moe
