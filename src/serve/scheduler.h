// Continuous batching for `moe serve` and `moe bench serve`: one scheduler thread owns the model
// and runs one Decoder::forward_batch per step over every active sequence (up to `parallel`, each
// with its own KV cache): one token for each sequence that is decoding, and chunks of the prompts
// of newly admitted sequences in what is left of the step's token budget (chunked prefill). A
// sequence leaves the batch as soon as it stops; a waiting request takes its slot at the next step.
// Requests hand their generation to submit() and read its text and logprobs from the Ticket as
// they come (any thread); a Ticket's cancel() (a client gone) ends the sequence at the next step.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/decoder.h"
#include "model/generate.h"
#include "tokenizer/text_stream.h"

namespace moe::serve {

struct SchedulerOptions {
  int64_t parallel = 4;        // sequences that run together (KV slots)
  int64_t queue = 64;          // requests that may wait for a slot; one more is refused (QueueFull)
  int64_t batch_tokens = 512;  // most tokens one step carries: decode rows first, prefill chunks fill the rest
};

// What one step of the batch looked like (for metrics and `moe bench serve`).
struct StepRecord {
  int64_t decode_rows = 0, prefill_rows = 0;
  double seconds = 0;
  std::vector<int32_t> distinct_experts;  // [MoE layers]: distinct routed experts of the step's decode rows
  int64_t expert_bytes = 0;               // routed + shared expert weight bytes the step read (all layers)
  uint64_t kv_bytes = 0;                  // KV cache bytes its attention read (every sequence, all layers)
  double attention_seconds = 0, ffn_seconds = 0, head_seconds = 0;  // the forward's parts (ForwardStats)
};

struct SchedulerStats {
  int64_t queued = 0, active = 0;  // now
  int64_t requests_done = 0, requests_cancelled = 0, requests_failed = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;
  int64_t steps = 0, decode_steps = 0, decode_rows = 0;  // decode_steps: steps with at least one decode row
  double busy_seconds = 0;
  int64_t last_batch = 0;                           // decode rows of the last step
  double last_distinct_experts = 0;                 // mean over MoE layers, last step with decode rows
  double distinct_experts_sum = 0;                  // over decode steps of the per-step mean over MoE layers
  std::vector<std::vector<int64_t>> expert_tokens;  // [MoE layer][expert] tokens routed, all steps
};

// One submitted generation. Its text arrives through next(); the result once it is over.
class Ticket {
 public:
  struct Event {
    std::string text;                     // new text (complete UTF-8, stop strings cut)
    std::vector<TokenLogprobs> logprobs;  // of the tokens generated since the last event (when asked)
    bool done = false;                    // the generation is over: result() is ready
  };
  // Blocks until there is new text or logprobs, or the end.
  Event next();
  // Blocks until the end and returns the result (throws the error that ended it, if any).
  const GenerateResult& result();
  // Ends the generation at the next step (finish reason "cancelled"). Any thread.
  void cancel();

 private:
  friend class Scheduler;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;
  std::vector<TokenLogprobs> logprobs_;
  size_t logprobs_sent_ = 0;
  bool done_ = false, cancelled_ = false;
  std::string error_;
  GenerateResult result_;
  // Owned here so that pointers in the generation's options stay valid.
  std::unique_ptr<TextStream> stream_;
};

// Thrown by submit() when `queue` requests already wait (the server answers 429).
struct QueueFull {
  int64_t waiting = 0;
};
// Thrown by submit() once stop() began (the server answers 503).
struct ShuttingDown {};

class Scheduler {
 public:
  // The scheduler owns model calls from its own thread; nobody else may use `model` meanwhile.
  Scheduler(Decoder& model, const Tokenizer* tok, SchedulerOptions options);
  ~Scheduler();  // stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a generation (options.text, on_text and keep_going are set by the scheduler; stop
  // strings are honoured). Throws moe::Error for a bad request (Generation's checks), QueueFull,
  // ShuttingDown.
  std::shared_ptr<Ticket> submit(const std::vector<int32_t>& prompt, GenerateOptions options);
  // Ends every waiting and running generation as cancelled and joins the thread.
  void stop();
  // No step starts while paused (the one running finishes); resume() goes on. For benchmarks and
  // tests that submit several requests and want them to start in the same step.
  void pause();
  void resume();

  SchedulerStats stats() const;
  // Per-step records, kept when record_steps is on (`moe bench serve`); cleared by take_steps().
  void record_steps(bool on);
  std::vector<StepRecord> take_steps();
  const SchedulerOptions& options() const { return opt_; }

 private:
  struct Active;
  void loop();
  struct StepPlan;
  // One forward_batch over the active sequences; those that end leave `active`.
  void step(std::vector<std::unique_ptr<Active>>& active);
  StepPlan plan_step(std::vector<std::unique_ptr<Active>>& active) const;
  // After the step: a prompt piece counted as fed, or the next token sampled from logits (its [V], in
  // step_logits_) and its logprobs sent.
  void take_logits(Active& a, const float* logits);
  // The step's expert load, distinct experts and timing into stats_ (and steps_ when recorded).
  void record_step(const StepPlan& plan, const ForwardStats& fs, StepRecord rec);
  // Ends a generation (cancelled unless it is over) and hands its result to the ticket; admitted:
  // it held a slot (false: still waiting when stop() came).
  void finish(Active& a, const std::string& error, bool admitted = true);

  Decoder& model_;
  const Tokenizer* tok_;
  SchedulerOptions opt_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Active>> waiting_;
  bool stopping_ = false, record_steps_ = false, paused_ = false;
  SchedulerStats stats_;
  std::vector<StepRecord> steps_;
  // [chunks, V]: a step's logits, chunk after chunk, so the LM head writes them in place (no copy per
  // sequence); kept between steps. The loop thread's alone.
  std::vector<float> step_logits_;
  std::thread thread_;
};

}  // namespace moe::serve
