// Continuous batching (see scheduler.h).
#include "serve/scheduler.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "runtime/timer.h"
#include "util/error.h"
#include "util/log.h"

namespace moe::serve {

struct Scheduler::Active {
  std::shared_ptr<Ticket> ticket;
  std::unique_ptr<Generation> gen;
  KvCache cache;
  int64_t fed = 0;         // prompt tokens already in the cache
  int64_t feeding = 0;     // prompt tokens of this step's chunk
  int32_t next_token = 0;  // the token the next decode step feeds
};

Ticket::Event Ticket::next() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return done_ || !text_.empty() || logprobs_.size() > logprobs_sent_; });
  Event e;
  e.text = std::exchange(text_, {});
  e.logprobs.assign(logprobs_.begin() + static_cast<std::ptrdiff_t>(logprobs_sent_), logprobs_.end());
  logprobs_sent_ = logprobs_.size();
  e.done = done_ && text_.empty();
  return e;
}

const GenerateResult& Ticket::result() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return done_; });
  if (!error_.empty()) throw Error("serve", error_);
  return result_;
}

void Ticket::cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
}

Scheduler::Scheduler(Decoder& model, const Tokenizer* tok, SchedulerOptions options)
    : model_(model), tok_(tok), opt_(options) {
  if (opt_.parallel < 1) fail("serve", "--parallel must be at least 1, found {}", opt_.parallel);
  if (opt_.queue < 0) fail("serve", "--queue must be >= 0, found {}", opt_.queue);
  if (opt_.batch_tokens <= opt_.parallel) {
    fail("serve",
         "--batch-tokens ({}) must exceed --parallel ({}): a step carries one token per decoding "
         "sequence and prompt chunks in the rest",
         opt_.batch_tokens, opt_.parallel);
  }
  stats_.expert_tokens.assign(static_cast<size_t>(model_.spec().n_layer), {});
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { stop(); }

std::shared_ptr<Ticket> Scheduler::submit(const std::vector<int32_t>& prompt, GenerateOptions options) {
  auto ticket = std::make_shared<Ticket>();
  ticket->stream_ = std::make_unique<TextStream>(tok_, model_.spec().vocab);
  Ticket* t = ticket.get();
  options.text = t->stream_.get();
  options.on_text = [t](std::string_view piece) {
    std::lock_guard<std::mutex> lock(t->mu_);
    t->text_.append(piece);
    t->cv_.notify_all();
  };
  options.keep_going = [t] {
    std::lock_guard<std::mutex> lock(t->mu_);
    return !t->cancelled_;
  };
  auto a = std::make_unique<Active>();
  a->ticket = ticket;
  a->gen = std::make_unique<Generation>(model_.spec().vocab, prompt, std::move(options));  // throws for bad ones
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) throw ShuttingDown{};
  const int64_t free_slots = std::max<int64_t>(0, opt_.parallel - stats_.active);
  if (static_cast<int64_t>(waiting_.size()) >= opt_.queue + free_slots)
    throw QueueFull{static_cast<int64_t>(waiting_.size())};
  waiting_.push_back(std::move(a));
  stats_.queued = static_cast<int64_t>(waiting_.size());
  cv_.notify_all();
  return ticket;
}

void Scheduler::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void Scheduler::pause() {
  std::lock_guard<std::mutex> lock(mu_);
  paused_ = true;
}

void Scheduler::resume() {
  std::lock_guard<std::mutex> lock(mu_);
  paused_ = false;
  cv_.notify_all();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Scheduler::record_steps(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  record_steps_ = on;
}

std::vector<StepRecord> Scheduler::take_steps() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(steps_, {});
}

void Scheduler::finish(Active& a, const std::string& error, bool admitted) {
  if (!a.gen->done()) a.gen->cancel();
  GenerateResult r = a.gen->finish();  // flushes held text through on_text
  const bool cancelled = r.finish_reason == FinishReason::kCancelled;
  const int64_t generated = static_cast<int64_t>(r.tokens.size()), prompt = r.prompt_tokens;
  {  // counted before the ticket is done, so a caller who saw the result sees the counts
    std::lock_guard<std::mutex> lock(mu_);
    if (admitted) --stats_.active;  // its slot is free for submit()'s queue check at once
    if (!error.empty()) {
      ++stats_.requests_failed;
    } else if (cancelled) {
      ++stats_.requests_cancelled;
    } else {
      ++stats_.requests_done;
    }
    stats_.prompt_tokens += prompt;
    stats_.generated_tokens += generated;
  }
  {
    Ticket& t = *a.ticket;
    std::lock_guard<std::mutex> lock(t.mu_);
    t.logprobs_ = r.logprobs;
    t.result_ = std::move(r);
    t.error_ = error;
    t.done_ = true;
    t.cv_.notify_all();
  }
}

void Scheduler::loop() {
  std::vector<std::unique_ptr<Active>> active;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || (!paused_ && (!waiting_.empty() || !active.empty())); });
      if (stopping_) break;
      while (static_cast<int64_t>(active.size()) < opt_.parallel && !waiting_.empty()) {
        active.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
      }
      stats_.queued = static_cast<int64_t>(waiting_.size());
      stats_.active = static_cast<int64_t>(active.size());
    }
    for (auto& a : active) {  // new arrivals get their cache; cancelled or empty ones end here
      std::string error;
      if (a->cache.max_tokens() == 0 && !a->gen->done()) {
        try {
          a->cache = model_.make_cache(a->gen->context());
        } catch (const std::exception& e) {
          error = std::string("cannot allocate the KV cache: ") + e.what();
        }
      }
      bool cancelled = false;
      {
        std::lock_guard<std::mutex> lock(a->ticket->mu_);
        cancelled = a->ticket->cancelled_;
      }
      if (cancelled) a->gen->cancel();
      if (a->gen->done() || !error.empty()) {
        finish(*a, error);
        a.reset();
      }
    }
    std::erase(active, nullptr);
    if (!active.empty()) step(active);
  }
  for (auto& a : active) finish(*a, "");
  std::deque<std::unique_ptr<Active>> never_admitted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    never_admitted.swap(waiting_);
    stats_.queued = 0;
  }
  for (auto& a : never_admitted) finish(*a, "", /*admitted=*/false);
}

// One step's batch: every decoding sequence's next token first, then pieces of prompts in what is left
// of the token budget.
struct Scheduler::StepPlan {
  std::vector<SequenceChunk> chunks;
  std::vector<Active*> who;  // the sequence of each chunk
  int64_t decode_rows = 0, prefill_rows = 0;
};

Scheduler::StepPlan Scheduler::plan_step(std::vector<std::unique_ptr<Active>>& active) const {
  StepPlan plan;
  int64_t budget = opt_.batch_tokens;
  for (auto& a : active) {  // every decoding sequence advances one token
    const int64_t P = static_cast<int64_t>(a->gen->prompt().size());
    if (a->fed < P) continue;
    plan.chunks.push_back({&a->next_token, 1, &a->cache, nullptr, true});  // logits: step() places them
    plan.who.push_back(a.get());
    --budget;
    ++plan.decode_rows;
  }
  for (auto& a : active) {  // prompts take what is left, in arrival order
    const int64_t P = static_cast<int64_t>(a->gen->prompt().size());
    if (a->fed >= P || budget <= 0) continue;
    a->feeding = std::min(P - a->fed, budget);
    plan.chunks.push_back({a->gen->prompt().data() + a->fed, a->feeding, &a->cache, nullptr, true});
    plan.who.push_back(a.get());
    budget -= a->feeding;
    plan.prefill_rows += a->feeding;
  }
  return plan;
}

void Scheduler::step(std::vector<std::unique_ptr<Active>>& active) {
  StepPlan plan = plan_step(active);
  const size_t V = static_cast<size_t>(model_.spec().vocab);
  if (step_logits_.size() < plan.chunks.size() * V) step_logits_.resize(plan.chunks.size() * V);
  for (size_t i = 0; i < plan.chunks.size(); ++i) plan.chunks[i].logits = step_logits_.data() + i * V;
  uint64_t kv_bytes = 0;
  for (const SequenceChunk& c : plan.chunks) kv_bytes += c.cache->bytes_for(c.cache->length() + c.n_tokens);
  ForwardStats fs;
  Timer timer;
  try {
    model_.forward_batch(plan.chunks.data(), static_cast<int64_t>(plan.chunks.size()), &fs);
  } catch (const std::exception& e) {
    log_warn("serve: a batch step failed ({}); its {} sequences end with an error", e.what(), plan.who.size());
    for (auto& a : active) {
      finish(*a, e.what());
      a.reset();
    }
    active.clear();
    return;
  }
  const double seconds = timer.seconds();
  for (size_t i = 0; i < plan.who.size(); ++i) take_logits(*plan.who[i], plan.chunks[i].logits);
  for (auto& a : active) {
    if (a->gen->done()) {
      finish(*a, "");
      a.reset();
    }
  }
  std::erase(active, nullptr);
  record_step(plan, fs, StepRecord{plan.decode_rows, plan.prefill_rows, seconds, {}, 0, kv_bytes});
}

void Scheduler::take_logits(Active& a, const float* logits) {
  const int64_t P = static_cast<int64_t>(a.gen->prompt().size());
  if (a.fed < P) {
    a.fed += std::exchange(a.feeding, 0);
    if (a.fed < P) return;  // more of the prompt next step
  }
  const bool more = a.gen->step(logits);
  if (a.gen->options().logprobs >= 0) {
    const auto& lp = a.gen->partial().logprobs;
    std::lock_guard<std::mutex> lock(a.ticket->mu_);
    auto& sent = a.ticket->logprobs_;
    sent.insert(sent.end(), lp.begin() + static_cast<std::ptrdiff_t>(sent.size()), lp.end());
    a.ticket->cv_.notify_all();
  }
  if (more) a.next_token = a.gen->last_token();
}

void Scheduler::record_step(const StepPlan& plan, const ForwardStats& fs, StepRecord rec) {
  const int64_t decode_rows = plan.decode_rows;
  for (const MoeTelemetry& t : fs.moe_layers) rec.expert_bytes += t.expert_bytes_streamed;
  rec.attention_seconds = fs.attention_seconds;
  rec.ffn_seconds = fs.ffn_seconds;
  rec.head_seconds = fs.head_seconds;
  const int64_t E = model_.spec().n_expert;
  std::lock_guard<std::mutex> lock(mu_);
  double distinct_sum = 0;
  int64_t moe_layers = 0;
  std::vector<char> seen(static_cast<size_t>(std::max<int64_t>(E, 1)));
  for (size_t li = 0; li < fs.expert_ids.size(); ++li) {
    const auto& ids = fs.expert_ids[li];
    if (ids.empty() || E <= 0) continue;
    auto& load = stats_.expert_tokens[li];
    if (load.empty()) load.assign(static_cast<size_t>(E), 0);
    std::fill(seen.begin(), seen.end(), 0);
    int32_t distinct = 0;
    // The decode rows come first in the batch (k ids each): distinct experts are those of the decode
    // rows, the step's prefill rows only add to the load.
    const size_t decode_ids = static_cast<size_t>(decode_rows * model_.spec().n_expert_used);
    for (size_t i = 0; i < ids.size(); ++i) {
      const int32_t e = ids[i];
      if (e < 0 || e >= E) continue;
      ++load[static_cast<size_t>(e)];
      if (i < decode_ids && !seen[static_cast<size_t>(e)]) seen[static_cast<size_t>(e)] = 1, ++distinct;
    }
    rec.distinct_experts.push_back(distinct);
    distinct_sum += distinct;
    ++moe_layers;
  }
  ++stats_.steps;
  stats_.busy_seconds += rec.seconds;
  stats_.last_batch = decode_rows;
  if (decode_rows > 0) {
    ++stats_.decode_steps;
    stats_.decode_rows += decode_rows;
    if (moe_layers > 0) {
      stats_.last_distinct_experts = distinct_sum / static_cast<double>(moe_layers);
      stats_.distinct_experts_sum += stats_.last_distinct_experts;
    }
  }
  if (record_steps_) steps_.push_back(std::move(rec));
}

}  // namespace moe::serve
