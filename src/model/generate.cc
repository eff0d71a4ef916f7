// evaluate and generate (see generate.h).
#include "model/generate.h"

#include <algorithm>
#include <cmath>

#include "runtime/process_limits.h"
#include "runtime/timer.h"
#include "util/error.h"

namespace moe {

EvalResult evaluate(Decoder& model, const std::vector<int32_t>& ids) {
  const int64_t T = static_cast<int64_t>(ids.size()), V = model.spec().vocab;
  if (T < 2) fail("model", "evaluate needs at least two token ids (found {}): nothing to score", T);
  check_fits_in_memory(4.0L * T * V, "model",
                       fmt::format("{} token ids (the logits: {} x vocab_size {} floats)", T, T, V));
  EvalResult r;
  r.logits.resize(static_cast<size_t>(T * V));  // [T, V]
  KvCache cache = model.make_cache(T);
  model.forward(ids.data(), T, cache, r.logits.data());
  r.nll.resize(static_cast<size_t>(T - 1));  // [T - 1]
  for (int64_t t = 0; t + 1 < T; ++t) {
    const float* row = r.logits.data() + t * V;
    const double mx = *std::max_element(row, row + V);
    double sum = 0.0;
    for (int64_t j = 0; j < V; ++j) sum += std::exp(double(row[j]) - mx);
    r.nll[t] = mx + std::log(sum) - row[ids[t + 1]];
    r.mean_nll += r.nll[t];
  }
  r.mean_nll /= static_cast<double>(T - 1);
  return r;
}

GenerateResult generate(Decoder& model, const std::vector<int32_t>& prompt, const GenerateOptions& o,
                        const TokenCallback& on_token) {
  const int64_t T = static_cast<int64_t>(prompt.size()), V = model.spec().vocab;
  if (T == 0) fail("model", "empty prompt: at least one token is needed");
  if (o.max_new_tokens < 0) fail("model", "max-new-tokens must be >= 0, found {}", o.max_new_tokens);
  const int64_t context = o.context > 0 ? o.context : T + o.max_new_tokens;
  if (T + std::max<int64_t>(o.max_new_tokens - 1, 0) > context) {
    fail("model", "prompt of {} tokens plus {} new tokens exceeds the context of {} tokens", T, o.max_new_tokens,
         context);
  }
  GenerateResult r;
  r.prompt_tokens = T;
  Sampler sampler(o.sampler);
  KvCache cache = model.make_cache(context);
  std::vector<float> logits(static_cast<size_t>(T * V));  // [T, V]
  Timer prefill;
  model.forward(prompt.data(), T, cache, logits.data(), o.record_routing ? &r.prefill : nullptr);
  r.prefill_seconds = prefill.seconds();
  const float* last = logits.data() + (T - 1) * V;
  Timer decode;
  for (int64_t i = 0; i < o.max_new_tokens; ++i) {
    const int32_t token = sampler.sample(last, V);
    r.tokens.push_back(token);
    if (on_token) on_token(token);
    if (std::find(o.stop_ids.begin(), o.stop_ids.end(), token) != o.stop_ids.end()) {
      r.stopped = true;
      break;
    }
    if (i + 1 == o.max_new_tokens) break;  // the last token needs no forward pass
    ForwardStats* stats = nullptr;
    if (o.record_routing) stats = &r.decode.emplace_back();
    model.forward(&token, 1, cache, logits.data(), stats);
    last = logits.data();
  }
  r.decode_seconds = decode.seconds();
  r.kv_cache_bytes = cache.bytes_for(cache.length());
  return r;
}

}  // namespace moe
