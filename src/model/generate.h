// The two ways the CLI drives a Decoder: evaluate (one pass over given ids: logits of every
// position and the cross-entropy of each next token; `moe eval`) and generate (prefill, then
// token-by-token decode with a Sampler and stop ids, timing and per-step routing; `moe run`).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/decoder.h"
#include "model/sampler.h"

namespace moe {

struct EvalResult {
  std::vector<float> logits;  // [T, V]
  std::vector<double> nll;    // [T - 1]: -log p(ids[t + 1] | ids[..t])
  double mean_nll = 0.0;      // mean of nll (nats)
};

// Throws moe::Error "[model] ..." for fewer than two ids (nothing to score) or a bad id.
EvalResult evaluate(Decoder& model, const std::vector<int32_t>& ids);

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  SamplerOptions sampler;         // greedy by default
  std::vector<int32_t> stop_ids;  // generation ends after emitting one of these
  int64_t context = 0;            // KV cache size in tokens; 0: prompt + max_new_tokens
  bool record_routing = false;    // keep ForwardStats of the prefill and of every decode step
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (a stop id that ended it included)
  int64_t prompt_tokens = 0;
  bool stopped = false;  // ended on a stop id
  double prefill_seconds = 0.0, decode_seconds = 0.0;
  uint64_t kv_cache_bytes = 0;       // bytes of the cache actually filled
  ForwardStats prefill;              // record_routing only
  std::vector<ForwardStats> decode;  // record_routing only: one per decode step
};

using TokenCallback = std::function<void(int32_t token)>;

// Throws moe::Error for an empty prompt, max_new_tokens < 0, or a prompt + generation longer than
// the context. on_token is called as each token is chosen (streaming).
GenerateResult generate(Decoder& model, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                        const TokenCallback& on_token = {});

}  // namespace moe
