// The two ways the CLI drives a Decoder: evaluate (one pass over given ids: logits of every
// position and the cross-entropy of each next token; `moe eval`) and generate (prefill, then
// token-by-token decode with a Sampler, stop ids and stop strings, streamed UTF-8-safe text,
// logprobs, timing and per-step routing; `moe run`, `moe chat`).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "model/decoder.h"
#include "model/sampler.h"
#include "tokenizer/text_stream.h"

namespace moe {

struct EvalResult {
  std::vector<float> logits;  // [T, V]
  std::vector<double> nll;    // [T - 1]: -log p(ids[t + 1] | ids[..t])
  double mean_nll = 0.0;      // mean of nll (nats)
};

// Throws moe::Error "[model] ..." for fewer than two ids (nothing to score) or a bad id. stats, when
// given, receives the routing of the pass.
EvalResult evaluate(Decoder& model, const std::vector<int32_t>& ids, ForwardStats* stats = nullptr);

// Holds back the text that could begin a stop string, and cuts the text before the first stop
// string found (also one that spans several pieces).
class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops);
  // The part of `piece` (appended to what is held) that is safe to show; `stopped` becomes true and
  // `matched` names the stop string when one occurs (the text is then cut before it).
  std::string push(std::string_view piece, bool& stopped);
  std::string flush();  // what is held at the end of generation
  const std::string& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_, matched_;
};

enum class FinishReason { kLength, kStopId, kStopString, kCancelled };
// "length", "stop" (both stop kinds), "cancelled"
const char* finish_reason_name(FinishReason r);

constexpr int64_t kDefaultPrefillChunk = 1024;

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  SamplerOptions sampler;                 // greedy by default
  std::vector<int32_t> stop_ids;          // generation ends after emitting one of these (EOS)
  std::vector<std::string> stop_strings;  // generation ends when the text contains one; needs `text`
  int64_t logprobs = -1;                  // >= 0: each token's logprob with this many alternatives
  int64_t context = 0;                    // KV cache size in tokens; 0: prompt + max_new_tokens
  // The prompt is prefilled in forward passes of at most this many tokens (0: all at once), so the
  // passes' activations stay bounded whatever the prompt's length (MOE_PREFILL_CHUNK overrides).
  int64_t prefill_chunk = kDefaultPrefillChunk;
  bool record_routing = false;                    // keep ForwardStats of the prefill and of every decode step
  TextStream* text = nullptr;                     // detokenizer of the generated ids (text, stop strings)
  std::function<void(std::string_view)> on_text;  // streamed text (complete UTF-8, stop strings cut)
  std::function<bool()> keep_going;               // checked before each decode step; false cancels
  // A cache kept from an earlier generation (a chat's previous turn): the positions it holds that
  // match the start of the prompt are kept and only the rest of the prompt is prefilled; the others
  // are dropped. Null: a fresh cache of `context` tokens. Its size must be at least the context.
  KvCache* cache = nullptr;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (a stop id that ended it included)
  std::string text;             // with options.text: the generated text without the stop id or string
  int64_t prompt_tokens = 0;
  FinishReason finish_reason = FinishReason::kLength;
  bool stopped = false;                 // ended on a stop id or a stop string
  std::string stop_string;              // the stop string that ended it
  std::vector<TokenLogprobs> logprobs;  // options.logprobs >= 0: one per generated token
  double prefill_seconds = 0.0, decode_seconds = 0.0;
  uint64_t kv_cache_bytes = 0;        // bytes of the cache actually filled
  DType kv_cache_type = DType::kF32;  // of its rows
  int64_t reused_tokens = 0;          // prompt tokens options.cache already held (not prefilled again)
  int64_t prefill_passes = 0;         // forward passes of the prefill; each computes its last position's logits only
  ForwardStats prefill;               // record_routing only
  std::vector<ForwardStats> decode;   // record_routing only: one per decode step
};

using TokenCallback = std::function<void(int32_t token)>;

// One generation as a sequence of steps, for callers that run the forward passes themselves:
// generate() below, and the server's scheduler, which runs the steps of many generations in one
// batched forward (Decoder::forward_batch). Sampling, stop ids and strings, streamed text, logprobs
// and cancellation behave the same either way.
class Generation {
 public:
  // Throws moe::Error for an empty prompt, max_new_tokens < 0, stop strings without options.text,
  // or a prompt + generation longer than the context.
  Generation(int64_t vocab, const std::vector<int32_t>& prompt, GenerateOptions options, TokenCallback on_token = {});

  const std::vector<int32_t>& prompt() const { return prompt_; }
  int64_t context() const { return context_; }  // the KV cache size the generation needs
  const GenerateOptions& options() const { return o_; }
  // Takes the logits [V] after the last position fed (the prompt's last, then each token returned by
  // last_token()): samples and records the next token and streams its text. Returns true when that
  // token is to be fed for another step, false when the generation is over (a stop, the length,
  // or options.keep_going() answering false).
  bool step(const float* logits);
  int32_t last_token() const { return r_.tokens.back(); }
  bool done() const { return done_; }
  // What is recorded so far (tokens, text, logprobs); complete only after finish().
  const GenerateResult& partial() const { return r_; }
  // Ends it now (finish reason "cancelled" unless it was already over).
  void cancel();
  // Flushes held text and returns the result; call once, when done().
  GenerateResult finish();

 private:
  void emit(const std::string& piece);

  int64_t vocab_;
  std::vector<int32_t> prompt_;
  GenerateOptions o_;
  TokenCallback on_token_;
  int64_t context_ = 0;
  Sampler sampler_;
  StopStrings stops_;
  bool stop_string_ = false, done_ = false;
  GenerateResult r_;
};

// generate() one token at a time, for callers that stream between tokens (the Python bindings'
// iterator): the first next() prefills the prompt and samples the first token, each later one runs
// one decode step and samples the next. generate() is `while (next()) {}` then finish(). The Decoder
// (and options.cache) must outlive it.
class DecoderGeneration {
 public:
  // The same errors as generate().
  DecoderGeneration(Decoder& model, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                    const TokenCallback& on_token = {});
  DecoderGeneration(const DecoderGeneration&) = delete;
  DecoderGeneration& operator=(const DecoderGeneration&) = delete;

  // Runs the next forward pass and samples; false when the generation is over (as Generation::step).
  bool next();
  bool done() const { return prefilled_ && !more_; }
  const GenerateResult& partial() const { return g_.partial(); }
  // Flushes held text; the result with timing, cache bytes and routing. Call once, when done().
  GenerateResult finish();

 private:
  void prefill_prompt(bool record);

  Decoder& model_;
  Generation g_;
  KvCache own_;
  KvCache* cache_ = nullptr;
  int64_t reused_ = 0;
  std::vector<float> logits_;
  bool prefilled_ = false, more_ = false;
  double prefill_seconds_ = 0.0, decode_seconds_ = 0.0;
  int64_t prefill_passes_ = 0;
  ForwardStats prefill_stats_;
  std::vector<ForwardStats> decode_stats_;
};

// Throws moe::Error for an empty prompt, max_new_tokens < 0, stop strings without options.text,
// or a prompt + generation longer than the context. on_token is called as each token is chosen.
GenerateResult generate(Decoder& model, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                        const TokenCallback& on_token = {});

}  // namespace moe
