// evaluate and generate (see generate.h).
#include "model/generate.h"

#include <algorithm>
#include <cmath>
#include <utility>

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

StopStrings::StopStrings(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const std::string& s : stops_) {
    if (s.empty()) fail("model", "a stop string is empty");
  }
}

std::string StopStrings::push(std::string_view piece, bool& stopped) {
  held_.append(piece);
  size_t first = std::string::npos;
  for (const std::string& s : stops_) {
    const size_t at = held_.find(s);
    if (at < first) first = at, matched_ = s;
  }
  if (first != std::string::npos) {
    stopped = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Hold back the longest end of the text that begins some stop string.
  size_t hold = 0;
  for (const std::string& s : stops_) {
    for (size_t k = std::min(s.size() - 1, held_.size()); k > hold; --k) {
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return out;
}

std::string StopStrings::flush() { return std::exchange(held_, {}); }

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    default:
      return "stop";
  }
}

GenerateResult generate(Decoder& model, const std::vector<int32_t>& prompt, const GenerateOptions& o,
                        const TokenCallback& on_token) {
  const int64_t T = static_cast<int64_t>(prompt.size()), V = model.spec().vocab;
  if (T == 0) fail("model", "empty prompt: at least one token is needed");
  if (o.max_new_tokens < 0) fail("model", "max-new-tokens must be >= 0, found {}", o.max_new_tokens);
  if (!o.stop_strings.empty() && o.text == nullptr) fail("model", "stop strings need a detokenizer (options.text)");
  const int64_t context = o.context > 0 ? o.context : T + o.max_new_tokens;
  if (T + std::max<int64_t>(o.max_new_tokens - 1, 0) > context) {
    fail("model", "prompt of {} tokens plus {} new tokens exceeds the context of {} tokens", T, o.max_new_tokens,
         context);
  }
  GenerateResult r;
  r.prompt_tokens = T;
  Sampler sampler(o.sampler);
  sampler.add_context(prompt);
  StopStrings stops(o.stop_strings);
  bool stop_string = false;
  auto emit = [&](const std::string& piece) {
    const std::string out = stop_string ? std::string() : stops.push(piece, stop_string);
    r.text += out;
    if (!out.empty() && o.on_text) o.on_text(out);
  };
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
    if (o.logprobs >= 0) r.logprobs.push_back(logprobs_of(last, V, token, o.logprobs));
    if (on_token) on_token(token);
    if (std::find(o.stop_ids.begin(), o.stop_ids.end(), token) != o.stop_ids.end()) {
      r.finish_reason = FinishReason::kStopId;  // the stop id's own text is not part of the answer
      break;
    }
    if (o.text != nullptr) {
      emit(o.text->put(token));
      if (stop_string) break;
    }
    if (i + 1 == o.max_new_tokens) break;  // the last token needs no forward pass
    if (o.keep_going && !o.keep_going()) {
      r.finish_reason = FinishReason::kCancelled;
      break;
    }
    ForwardStats* stats = nullptr;
    if (o.record_routing) stats = &r.decode.emplace_back();
    model.forward(&token, 1, cache, logits.data(), stats);
    last = logits.data();
  }
  if (o.text != nullptr) {
    emit(o.text->finish());
    if (!stop_string) {
      const std::string tail = stops.flush();
      r.text += tail;
      if (!tail.empty() && o.on_text) o.on_text(tail);
    }
  }
  if (stop_string) {
    r.finish_reason = FinishReason::kStopString;
    r.stop_string = stops.matched();
  }
  r.stopped = r.finish_reason == FinishReason::kStopId || r.finish_reason == FinishReason::kStopString;
  r.decode_seconds = decode.seconds();
  r.kv_cache_bytes = cache.bytes_for(cache.length());
  return r;
}

}  // namespace moe
