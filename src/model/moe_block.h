// The Decoder's hook for how a MoE layer runs: MoeBlock is the interface the decoder calls per
// MoE layer (the default wraps MoeLayer; parallel/ builds expert-parallel blocks), and DecoderOptions
// carries the factory, a filter saying which routed experts' tensors this process loads, and the
// tap of named intermediate tensors (model/forward_tap.h).
#pragma once

#include <algorithm>
#include <optional>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/forward_tap.h"
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

// Benchmarks only: each token's k experts drawn uniformly at random (the router still weights them), the
// worst case for an expert cache. seed 0: off.
class UniformRouting {
 public:
  explicit UniformRouting(uint64_t seed) : state_(seed) {}
  bool on() const { return state_ != 0; }
  // [T * K] distinct experts per token (xorshift64).
  const int32_t* draw(int64_t n_tokens, int k, int n_expert) {
    ids_.resize(size_t(n_tokens * k));
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int j = 0; j < k; ++j) {
        int32_t e;
        do {
          state_ ^= state_ << 13, state_ ^= state_ >> 7, state_ ^= state_ << 17;
          e = static_cast<int32_t>(state_ % uint64_t(n_expert));
        } while (std::find(ids_.begin() + t * k, ids_.begin() + t * k + j, e) != ids_.begin() + t * k + j);
        ids_[size_t(t * k + j)] = e;
      }
    }
    return ids_.data();
  }

 private:
  uint64_t state_;
  std::vector<int32_t> ids_;
};

// The one-process block: MoeLayer with default run options.
class LocalMoeBlock final : public MoeBlock {
 public:
  LocalMoeBlock(const MoeLayerConfig& config, const MoeLayerWeights& weights, uint64_t uniform_seed = 0)
      : layer_(config, weights), uniform_(uniform_seed) {}
  void forward(const float* x, int64_t n_tokens, float* out, MoeTelemetry* telemetry) override {
    RunOptions o;
    if (uniform_.on())
      o.expert_ids = uniform_.draw(n_tokens, layer_.config().router.top_k, layer_.config().router.n_expert);
    layer_.forward(x, n_tokens, out, o, telemetry);
  }
  const RouterOutput& last_router_output() const override { return layer_.last_router_output(); }

 private:
  MoeLayer layer_;
  UniformRouting uniform_;
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
  bool direct_io = true;              // O_DIRECT reads where the file system allows them
  int64_t slots = 0;                  // > 0: exactly this many expert slots instead of what the budget leaves (tests)
  uint64_t uniform_routing_seed = 0;  // copied from DecoderOptions (benchmarks)
};

struct DecoderOptions {
  MoeBlockFactory moe_block;  // empty: LocalMoeBlock
  ExpertFilter load_expert;   // empty: every expert
  // Where packed panels are cached between loads (model/pack_cache.h); nullopt: PackCacheOptions::from_env().
  std::optional<PackCacheOptions> pack_cache;
  OffloadOptions offload;
  // Keys and values of the KV caches make_cache() builds: kF32, kF16 or kBF16. nullopt: f32 for a
  // float32 checkpoint (config torch_dtype), else f16 (llama.cpp's default; half the bytes decode reads).
  std::optional<DType> kv_type;
  // Benchmarks only (`bench model --uniform-routing`): every MoE layer picks each token's experts
  // uniformly at random from this seed instead of by its router's top-k. 0: off.
  uint64_t uniform_routing_seed = 0;
  // Called after each decoder layer is loaded (layers done, layers): a progress display.
  std::function<void(int64_t, int64_t)> load_progress;
  // Called with every named intermediate tensor of every forward (model/forward_tap.h); empty: none.
  ForwardTap tap;
};

}  // namespace moe
