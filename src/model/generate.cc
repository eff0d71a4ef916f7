// evaluate and generate (see generate.h).
#include "model/generate.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string_view>
#include <utility>

#include "model/perplexity.h"
#include "runtime/process_limits.h"
#include "runtime/timer.h"
#include "util/error.h"

namespace moe {

EvalResult evaluate(Decoder& model, const std::vector<int32_t>& ids, ForwardStats* stats) {
  const int64_t T = static_cast<int64_t>(ids.size()), V = model.spec().vocab;
  if (T < 2) fail("model", "evaluate needs at least two token ids (found {}): nothing to score", T);
  check_fits_in_memory(4.0L * T * V, "model",
                       fmt::format("{} token ids (the logits: {} x vocab_size {} floats)", T, T, V));
  EvalResult r;
  r.logits.resize(static_cast<size_t>(T * V));  // [T, V]
  KvCache cache = model.make_cache(T);
  model.forward(ids.data(), T, cache, r.logits.data(), stats);
  r.nll.resize(static_cast<size_t>(T - 1));  // [T - 1]
  for (int64_t t = 0; t + 1 < T; ++t) {
    r.nll[t] = token_nll(r.logits.data() + t * V, V, ids[t + 1]);
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

Generation::Generation(int64_t vocab, const std::vector<int32_t>& prompt, GenerateOptions options,
                       TokenCallback on_token)
    : vocab_(vocab),
      prompt_(prompt),
      o_(std::move(options)),
      on_token_(std::move(on_token)),
      sampler_(o_.sampler),
      stops_(o_.stop_strings) {
  const int64_t T = static_cast<int64_t>(prompt_.size());
  if (T == 0) fail("model", "empty prompt: at least one token is needed");
  if (o_.max_new_tokens < 0) fail("model", "max-new-tokens must be >= 0, found {}", o_.max_new_tokens);
  if (!o_.stop_strings.empty() && o_.text == nullptr) fail("model", "stop strings need a detokenizer (options.text)");
  context_ = o_.context > 0 ? o_.context : T + o_.max_new_tokens;
  if (T + std::max<int64_t>(o_.max_new_tokens - 1, 0) > context_) {
    fail("model", "prompt of {} tokens plus {} new tokens exceeds the context of {} tokens", T, o_.max_new_tokens,
         context_);
  }
  r_.prompt_tokens = T;
  sampler_.add_context(prompt_);
  done_ = o_.max_new_tokens == 0;
}

void Generation::emit(const std::string& piece) {
  const std::string out = stop_string_ ? std::string() : stops_.push(piece, stop_string_);
  r_.text += out;
  if (!out.empty() && o_.on_text) o_.on_text(out);
}

bool Generation::step(const float* logits) {
  if (done_) return false;
  const int32_t token = sampler_.sample(logits, vocab_);
  r_.tokens.push_back(token);
  if (o_.logprobs >= 0) r_.logprobs.push_back(logprobs_of(logits, vocab_, token, o_.logprobs));
  if (on_token_) on_token_(token);
  if (std::find(o_.stop_ids.begin(), o_.stop_ids.end(), token) != o_.stop_ids.end()) {
    r_.finish_reason = FinishReason::kStopId;  // the stop id's own text is not part of the answer
    return !(done_ = true);
  }
  if (o_.text != nullptr) {
    emit(o_.text->put(token));
    if (stop_string_) return !(done_ = true);
  }
  if (static_cast<int64_t>(r_.tokens.size()) == o_.max_new_tokens) return !(done_ = true);  // needs no forward
  if (o_.keep_going && !o_.keep_going()) {
    r_.finish_reason = FinishReason::kCancelled;
    return !(done_ = true);
  }
  return true;
}

void Generation::cancel() {
  if (done_) return;
  r_.finish_reason = FinishReason::kCancelled;
  done_ = true;
}

GenerateResult Generation::finish() {
  if (o_.text != nullptr) {
    emit(o_.text->finish());
    if (!stop_string_) {
      const std::string tail = stops_.flush();
      r_.text += tail;
      if (!tail.empty() && o_.on_text) o_.on_text(tail);
    }
  }
  if (stop_string_) {
    r_.finish_reason = FinishReason::kStopString;
    r_.stop_string = stops_.matched();
  }
  r_.stopped = r_.finish_reason == FinishReason::kStopId || r_.finish_reason == FinishReason::kStopString;
  return std::move(r_);
}

DecoderGeneration::DecoderGeneration(Decoder& model, const std::vector<int32_t>& prompt, const GenerateOptions& o,
                                     const TokenCallback& on_token)
    : model_(model), g_(model.spec().vocab, prompt, o, on_token) {
  KvCache* kept = o.cache;
  if (kept != nullptr) {
    if (kept->max_tokens() < g_.context())
      fail("model", "the kept KV cache holds {} tokens; this generation needs {}", kept->max_tokens(), g_.context());
    const std::vector<int32_t>& held = kept->ids();
    const int64_t T = static_cast<int64_t>(prompt.size());
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(held.size()), T - 1);  // the last is always fed
    while (reused_ < n && held[static_cast<size_t>(reused_)] == prompt[static_cast<size_t>(reused_)]) ++reused_;
    if (kept->has_state() && reused_ < kept->length()) reused_ = 0;  // a recurrent state keeps all or nothing
    kept->truncate(reused_);
    cache_ = kept;
  } else {
    own_ = model.make_cache(g_.context());
    cache_ = &own_;
  }
  logits_.resize(static_cast<size_t>(model.spec().vocab));  // [V]: the last position's
}

namespace {

// A later pass's stats after an earlier one's: telemetry summed per layer, routing appended.
void append_stats(ForwardStats& into, ForwardStats&& more) {
  if (into.moe_layers.empty()) {
    into = std::move(more);
    return;
  }
  for (size_t l = 0; l < more.moe_layers.size() && l < into.moe_layers.size(); ++l) {
    into.moe_layers[l].accumulate(more.moe_layers[l]);
    into.expert_ids[l].insert(into.expert_ids[l].end(), more.expert_ids[l].begin(), more.expert_ids[l].end());
    into.expert_weights[l].insert(into.expert_weights[l].end(), more.expert_weights[l].begin(),
                                  more.expert_weights[l].end());
  }
}

}  // namespace

// The prompt (past what the cache kept) in passes of at most prefill_chunk tokens; the last pass's last
// position gives the logits. Recorded stats are those of all passes, in order.
void DecoderGeneration::prefill_prompt(bool record) {
  const std::vector<int32_t>& prompt = g_.prompt();
  const int64_t n = static_cast<int64_t>(prompt.size()) - reused_;
  int64_t chunk = g_.options().prefill_chunk;
  if (const char* env = std::getenv("MOE_PREFILL_CHUNK")) {
    const std::string_view v(env);
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), chunk);
    if (ec != std::errc() || end != v.data() + v.size() || chunk < 0)
      fail("generate", "MOE_PREFILL_CHUNK='{}': expected a token count (0: the whole prompt in one pass)", v);
  }
  if (chunk <= 0) chunk = std::max<int64_t>(n, 1);
  for (int64_t i0 = 0; i0 < n || i0 == 0; i0 += chunk) {
    const int64_t len = std::min(chunk, n - i0);
    const SequenceChunk part{prompt.data() + reused_ + i0, len, cache_, logits_.data(), true};
    ForwardStats stats;
    model_.forward_batch(&part, 1, record ? &stats : nullptr);
    ++prefill_passes_;
    if (record) append_stats(prefill_stats_, std::move(stats));
    if (n == 0) break;
  }
}

bool DecoderGeneration::next() {
  const bool record = g_.options().record_routing;
  if (!prefilled_) {
    prefilled_ = true;
    Timer prefill;
    prefill_prompt(record);
    prefill_seconds_ = prefill.seconds();
    Timer decode;
    more_ = g_.step(logits_.data());
    decode_seconds_ += decode.seconds();
    return more_;
  }
  if (!more_) return false;
  Timer decode;
  ForwardStats* stats = record ? &decode_stats_.emplace_back() : nullptr;
  const int32_t token = g_.last_token();
  model_.forward(&token, 1, *cache_, logits_.data(), stats);
  more_ = g_.step(logits_.data());
  decode_seconds_ += decode.seconds();
  return more_;
}

GenerateResult DecoderGeneration::finish() {
  GenerateResult r = g_.finish();
  r.prefill_seconds = prefill_seconds_;
  r.prefill_passes = prefill_passes_;
  r.decode_seconds = decode_seconds_;
  r.kv_cache_bytes = cache_->bytes_for(cache_->length());
  r.kv_cache_type = cache_->dtype();
  r.reused_tokens = reused_;
  r.prefill = std::move(prefill_stats_);
  r.decode = std::move(decode_stats_);
  return r;
}

GenerateResult generate(Decoder& model, const std::vector<int32_t>& prompt, const GenerateOptions& o,
                        const TokenCallback& on_token) {
  DecoderGeneration g(model, prompt, o, on_token);
  while (g.next()) {
  }
  return g.finish();
}

}  // namespace moe
