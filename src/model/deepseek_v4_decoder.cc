// The Decoder's DeepSeek-V4 path: `moe run`, `moe eval` and `moe bench model` drive a Decoder, and for
// deepseek_v4 it hands each sequence to DeepseekV4Model with the state that sequence's KvCache holds (the
// window rows and compressor states: the KvCache itself keeps no rows, its layers count as recurrent).
#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "model/decoder.h"
#include "model/deepseek_v4.h"
#include "util/error.h"

namespace moe {

void Decoder::load_v4(const std::string& path) {
  v4_ = std::make_unique<DeepseekV4Model>(path);
  spec_ = v4_->spec();
  PackCacheOptions off;
  off.enabled = false;  // DeepSeek-V4 reads its weights as they are stored: nothing is packed
  pack_cache_ = std::make_unique<PackCache>(path, "deepseek_v4 rows", off);
  if (options_.offload.mem_budget > 0 || options_.moe_block || options_.load_expert)
    fail("model", "{}: DeepSeek-V4 runs on one process with every expert resident (no --ep, no --mem-budget)", path);
}

KvCache Decoder::v4_cache(int64_t max_tokens) const {
  RecurrentLayers recurrent;
  recurrent.mask.assign(static_cast<size_t>(spec_.n_layer), 1);
  recurrent.state_floats = 1;
  return KvCache(spec_.n_layer, max_tokens, 1, 1, 1, recurrent, kv_type());  // the type Dsv4Cache keeps its rows in
}

// The chunks were checked by forward_batch (check_chunks).
void Decoder::forward_v4(const SequenceChunk* chunks, int64_t n_chunks, ForwardStats* stats) {
  ForwardStats one;  // a chunk's routing; stats rows follow the chunks' order
  if (stats) {
    stats->moe_layers.assign(static_cast<size_t>(spec_.n_layer), MoeTelemetry{});
    stats->expert_ids.assign(static_cast<size_t>(spec_.n_layer), {});
    stats->expert_weights.assign(static_cast<size_t>(spec_.n_layer), {});
  }
  for (int64_t c = 0; c < n_chunks; ++c) {
    const SequenceChunk& s = chunks[c];
    KvCache& cache = *s.cache;
    std::shared_ptr<Dsv4Cache>& state = cache.dsv4_state();
    if (!state || cache.length() == 0) state = std::make_shared<Dsv4Cache>(v4_->make_cache(kv_type()));
    if (state->length() != cache.length())
      fail("model", "{}: a DeepSeek-V4 cache of {} tokens cannot return to a prefix of {}: reset it", spec_.source,
           state->length(), cache.length());
    v4_->forward(s.ids, s.n_tokens, *state, s.logits, options_.tap, stats ? &one : nullptr, s.last_only);
    for (size_t l = 0; stats && l < one.moe_layers.size(); ++l) {
      stats->moe_layers[l].accumulate(one.moe_layers[l]);
      auto& ids = stats->expert_ids[l];
      ids.insert(ids.end(), one.expert_ids[l].begin(), one.expert_ids[l].end());
      auto& w = stats->expert_weights[l];
      w.insert(w.end(), one.expert_weights[l].begin(), one.expert_weights[l].end());
    }
    cache.record_ids(s.ids, s.n_tokens);
    cache.advance(s.n_tokens);
  }
}

}  // namespace moe
