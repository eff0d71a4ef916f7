// The batching scheduler against generate(): each request's tokens, text and logprobs equal the
// same request run alone, whatever else shares its steps (several at once, more than the slots,
// prompts longer than a step's token budget so they prefill in chunks); cancellation, the queue
// limit, zero-token requests, stop() with work in flight, and the step records.
#include "serve/scheduler.h"
#include "serve/request.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "common/chat_model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

class SchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = (fs::temp_directory_path() / ("moe_sched_" + std::to_string(::getpid()))).string();
    testing::write_chat_model(dir_);
    model_ = std::make_unique<Decoder>(dir_);
    tok_ = load_tokenizer(dir_);
  }
  static void TearDownTestSuite() {
    model_.reset();
    tok_.reset();
    fs::remove_all(dir_);
  }
  static std::vector<int32_t> prompt(int n, int seed) {
    std::vector<int32_t> p;
    for (int i = 0; i < n; ++i) p.push_back((seed * 37 + i * 11 + 5) % 256);
    return p;
  }
  static GenerateOptions endless(uint64_t seed) {  // runs until cancelled (no stop id)
    GenerateOptions o = options(10000 - 5, seed);
    o.stop_ids.clear();
    return o;
  }
  static GenerateOptions options(int64_t max_new, uint64_t seed) {
    GenerateOptions o;
    o.max_new_tokens = max_new;
    o.sampler.temperature = 0.8f;
    o.sampler.top_k = 40;
    o.sampler.seed = seed;
    o.logprobs = 2;
    o.stop_ids = {257};
    return o;
  }
  static GenerateResult alone(const std::vector<int32_t>& p, GenerateOptions o) {
    TextStream text(tok_.get(), model_->spec().vocab);
    o.text = &text;
    return generate(*model_, p, o);
  }
  static std::string dir_;
  static std::unique_ptr<Decoder> model_;
  static std::unique_ptr<Tokenizer> tok_;
};
std::string SchedulerTest::dir_;
std::unique_ptr<Decoder> SchedulerTest::model_;
std::unique_ptr<Tokenizer> SchedulerTest::tok_;

void expect_same(const GenerateResult& got, const GenerateResult& want, const std::string& what) {
  EXPECT_EQ(got.tokens, want.tokens) << what;
  EXPECT_EQ(got.text, want.text) << what;
  EXPECT_EQ(got.finish_reason, want.finish_reason) << what;
  ASSERT_EQ(got.logprobs.size(), want.logprobs.size()) << what;
  for (size_t i = 0; i < got.logprobs.size(); ++i)
    EXPECT_NEAR(got.logprobs[i].chosen.logprob, want.logprobs[i].chosen.logprob, 1e-4) << what << " token " << i;
}

TEST_F(SchedulerTest, EachRequestEqualsItsRunAloneWhateverSharesTheSteps) {
  struct Case {
    std::vector<int32_t> prompt;
    GenerateOptions o;
  };
  std::vector<Case> cases;
  for (int i = 0; i < 7; ++i) cases.push_back({prompt(3 + 9 * i, i), options(4 + 3 * (i % 4), 100 + i)});
  std::vector<GenerateResult> want;
  for (const Case& c : cases) want.push_back(alone(c.prompt, c.o));
  // 3 slots for 7 requests; a budget of 16 tokens per step splits the longer prompts into chunks.
  serve::Scheduler s(*model_, tok_.get(), {3, 4, 16});
  s.record_steps(true);
  std::vector<std::shared_ptr<serve::Ticket>> tickets;
  s.pause();  // all queued before the first step: the steps are the same on every run
  for (const Case& c : cases) tickets.push_back(s.submit(c.prompt, c.o));
  s.resume();
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string streamed;
    size_t streamed_logprobs = 0;
    for (;;) {
      serve::Ticket::Event e = tickets[i]->next();
      streamed += e.text;
      streamed_logprobs += e.logprobs.size();
      if (e.done) break;
    }
    const GenerateResult& got = tickets[i]->result();
    expect_same(got, want[i], "request " + std::to_string(i));
    EXPECT_EQ(streamed, got.text) << "request " << i;
    EXPECT_EQ(streamed_logprobs, got.logprobs.size()) << "request " << i;
  }
  const std::vector<serve::StepRecord> steps = s.take_steps();
  int64_t max_batch = 0, chunked = 0;
  for (const auto& st : steps) {
    EXPECT_LE(st.decode_rows + st.prefill_rows, 16);
    EXPECT_LE(st.decode_rows, 3);
    max_batch = std::max(max_batch, st.decode_rows);
    if (st.prefill_rows > 0 && st.decode_rows > 0) ++chunked;
    for (int32_t d : st.distinct_experts) EXPECT_LE(d, model_->spec().n_expert);
  }
  EXPECT_EQ(max_batch, 3);  // sequences really decoded together
  EXPECT_GT(chunked, 0);    // and prompts were prefilled between decode steps
  const serve::SchedulerStats st = s.stats();
  EXPECT_EQ(st.requests_done, 7);
  int64_t generated = 0;
  for (const auto& w : want) generated += static_cast<int64_t>(w.tokens.size());
  EXPECT_EQ(st.generated_tokens, generated);
}

TEST_F(SchedulerTest, CancelQueueLimitZeroTokensAndStop) {
  const GenerateResult want = alone(prompt(4, 2), options(8, 2));  // before the scheduler owns the model
  serve::Scheduler s(*model_, tok_.get(), {1, 1, 8});
  auto long_one = s.submit(prompt(5, 1), endless(1));  // runs in the only slot
  GenerateOptions o = options(8, 2);
  auto waiting = s.submit(prompt(4, 2), o);  // waits (queue 1)
  EXPECT_THROW(s.submit(prompt(4, 3), o), serve::QueueFull);
  long_one->cancel();
  EXPECT_EQ(long_one->result().finish_reason, FinishReason::kCancelled);
  expect_same(waiting->result(), want, "the waiting request");
  auto none = s.submit(prompt(4, 4), options(0, 4));
  EXPECT_TRUE(none->result().tokens.empty());
  EXPECT_THROW(s.submit({}, o), Error);  // an empty prompt is the caller's error
  auto running = s.submit(prompt(5, 5), endless(5));
  auto queued = s.submit(prompt(5, 6), endless(6));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  s.stop();  // both end, cancelled, and nobody waits forever
  EXPECT_EQ(running->result().finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(queued->result().finish_reason, FinishReason::kCancelled);
  EXPECT_THROW(s.submit(prompt(4, 7), o), serve::ShuttingDown);
  EXPECT_GE(s.stats().requests_cancelled, 3);
}

TEST_F(SchedulerTest, BadOptionsNameTheFlag) {
  EXPECT_THROW(serve::Scheduler(*model_, tok_.get(), {0, 4, 16}), Error);
  try {
    serve::Scheduler(*model_, tok_.get(), {8, 4, 8});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--batch-tokens"), std::string::npos);
  }
}

// The HTTP fuzz target's finding: on a byte model (no tokenizer) a prompt's UTF-8 bytes >= 128 were
// signed chars, so negative ids. A prompt of the wrong type is a 400 naming the field.
TEST(Request, ByteModelPromptsAreUnsignedBytes) {
  serve::ServerOptions options;
  const serve::RequestContext bytes{nullptr, nullptr, 256};
  const serve::Request r = serve::parse_request(R"({"prompt": ["é你"], "max_tokens": 2})", false, options, bytes);
  EXPECT_EQ(r.prompt, (std::vector<int32_t>{0xC3, 0xA9, 0xE4, 0xBD, 0xA0}));
  try {
    serve::parse_request(R"({"prompt": 5})", false, options, bytes);
    FAIL();
  } catch (const serve::RequestError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, "prompt");
  }
}

}  // namespace
}  // namespace moe
