// The Decoder's hook for how a MoE layer runs: MoeBlock is the interface the decoder calls per
// MoE layer (the default wraps MoeLayer; dist/ builds expert-parallel blocks), and DecoderOptions
// carries the factory plus a filter saying which routed experts' tensors this process loads.
#pragma once

#include <optional>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/pack_cache.h"
#include "moe/moe_layer.h"
#include "moe/telemetry.h"

namespace moe {

class MoeBlock {
 public:
  virtual ~MoeBlock() = default;
  // out = MoE(x). x, out: [T, D] row-major f32, not overlapping. telemetry may be null.
  virtual void forward(const float* x, int64_t n_tokens, float* out, MoeTelemetry* telemetry) = 0;
  // The routing of the last call: expert_ids and weights [T, K], token-major.
  virtual const RouterOutput& last_router_output() const = 0;
};

// The one-process block: MoeLayer with default run options.
class LocalMoeBlock final : public MoeBlock {
 public:
  LocalMoeBlock(const MoeLayerConfig& config, const MoeLayerWeights& weights) : layer_(config, weights) {}
  void forward(const float* x, int64_t n_tokens, float* out, MoeTelemetry* telemetry) override {
    layer_.forward(x, n_tokens, out, RunOptions{}, telemetry);
  }
  const RouterOutput& last_router_output() const override { return layer_.last_router_output(); }

 private:
  MoeLayer layer_;
};

using MoeBlockFactory =
    std::function<std::unique_ptr<MoeBlock>(int64_t layer, const MoeLayerConfig& config, const MoeLayerWeights& w)>;
// True when this process loads routed expert `expert` of layer `layer`; the others get views
// with null data (only a block that never computes them, such as an expert-parallel one, may
// be given such weights).
using ExpertFilter = std::function<bool(int64_t layer, int64_t expert)>;

// Routed experts kept on disk and read into a pool of slots under a memory budget (model/offload.h).
struct OffloadOptions {
  uint64_t mem_budget = 0;     // bytes for the weights (always-on + expert slots); 0: every expert in memory
  std::string expert_profile;  // a routing trace (`moe run --trace`): its most used experts stay resident
  bool prefetch = true;        // read the next MoE layer's likely experts ahead (its router on this layer's input)
  int io_threads = 4;
  bool direct_io = true;  // O_DIRECT reads where the file system allows them
  int64_t slots = 0;      // > 0: exactly this many expert slots instead of what the budget leaves (tests)
};

struct DecoderOptions {
  MoeBlockFactory moe_block;  // empty: LocalMoeBlock
  ExpertFilter load_expert;   // empty: every expert
  // Where packed panels are cached between loads (model/pack_cache.h); nullopt: PackCacheOptions::from_env().
  std::optional<PackCacheOptions> pack_cache;
  OffloadOptions offload;
};

}  // namespace moe
