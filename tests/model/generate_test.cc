// evaluate and generate on the golden fixtures: the same logits and greedy tokens as PyTorch,
// cross-entropy from those logits, stop ids, sampling determinism, bad inputs; DecoderGeneration
// step by step gives generate()'s tokens and routing (expert ids and weights).
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "model/generate.h"
#include "util/error.h"

namespace moe {
namespace {

std::string fixture_dir(const std::string& family) {
  return std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/models/" + family;
}

struct Golden {
  std::vector<int32_t> prompt, greedy;
  std::vector<float> logits;
};

Golden golden(const std::string& family) {
  const SafetensorsFile f = SafetensorsFile::open(fixture_dir(family) + "/expected.safetensors");
  const auto p = f.view<int64_t>("prompt_ids", DType::kI64), g = f.view<int64_t>("greedy_ids", DType::kI64);
  return {std::vector<int32_t>(p.begin(), p.end()), std::vector<int32_t>(g.begin(), g.end()), f.to_f32("logits")};
}

TEST(Generate, GreedyContinuationAndEvaluateMatchPyTorch) {
  Decoder model(fixture_dir("gpt_oss"));
  const Golden want = golden("gpt_oss");
  GenerateOptions o;
  o.max_new_tokens = static_cast<int64_t>(want.greedy.size());
  o.record_routing = true;
  std::vector<int32_t> streamed;
  const GenerateResult r = generate(model, want.prompt, o, [&](int32_t t) { streamed.push_back(t); });
  EXPECT_EQ(r.tokens, want.greedy);
  EXPECT_EQ(streamed, want.greedy);
  EXPECT_EQ(r.decode.size(), want.greedy.size() - 1);
  EXPECT_EQ(r.prefill.expert_ids.size(), 2u);
  EXPECT_GT(r.kv_cache_bytes, 0u);

  const EvalResult e = evaluate(model, want.prompt);
  const int64_t V = model.spec().vocab;
  double mean = 0;
  for (size_t t = 0; t + 1 < want.prompt.size(); ++t) {
    double mx = -1e30, sum = 0;
    for (int64_t j = 0; j < V; ++j) mx = std::max(mx, double(want.logits[t * V + j]));
    for (int64_t j = 0; j < V; ++j) sum += std::exp(want.logits[t * V + j] - mx);
    const double nll = mx + std::log(sum) - want.logits[t * V + want.prompt[t + 1]];
    EXPECT_NEAR(e.nll[t], nll, 1e-4);
    mean += nll / double(want.prompt.size() - 1);
  }
  EXPECT_NEAR(e.mean_nll, mean, 1e-4);
}

TEST(Generate, StopIdsSamplingSeedsAndErrors) {
  Decoder model(fixture_dir("mixtral"));
  const Golden want = golden("mixtral");
  GenerateOptions o;
  o.max_new_tokens = 10;
  o.stop_ids = {want.greedy[2]};
  GenerateResult r = generate(model, want.prompt, o);
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.tokens, std::vector<int32_t>(want.greedy.begin(), want.greedy.begin() + 3));

  o.stop_ids.clear();
  o.sampler = SamplerOptions{1.0f, 20, 0.9f, 123};
  EXPECT_EQ(generate(model, want.prompt, o).tokens, generate(model, want.prompt, o).tokens);

  EXPECT_THROW(generate(model, {}, o), Error);
  o.context = 12;
  EXPECT_THROW(generate(model, want.prompt, o), Error);  // 12 + 10 tokens in a 12-token context
  EXPECT_THROW(evaluate(model, {5}), Error);
  EXPECT_THROW(evaluate(model, {5, 300}), Error);
}

TEST(Generate, StepwiseGenerationEqualsGenerateAndRecordsRoutingWeights) {
  Decoder model(fixture_dir("qwen3_moe"));
  const Golden want = golden("qwen3_moe");
  GenerateOptions o;
  o.max_new_tokens = 6;
  o.record_routing = true;
  const GenerateResult whole = generate(model, want.prompt, o);
  DecoderGeneration g(model, want.prompt, o);
  EXPECT_FALSE(g.done());
  int64_t steps = 0;
  while (g.next()) {
    ++steps;
    EXPECT_EQ(static_cast<int64_t>(g.partial().tokens.size()), steps);  // one token per step
  }
  EXPECT_TRUE(g.done());
  EXPECT_FALSE(g.next());
  const GenerateResult r = g.finish();
  EXPECT_EQ(r.tokens, whole.tokens);
  ASSERT_EQ(r.decode.size(), whole.decode.size());
  const int64_t T = static_cast<int64_t>(want.prompt.size()), K = model.spec().n_expert_used;
  for (size_t li = 0; li < r.prefill.expert_ids.size(); ++li) {
    EXPECT_EQ(r.prefill.expert_ids[li], whole.prefill.expert_ids[li]);
    ASSERT_EQ(static_cast<int64_t>(r.prefill.expert_weights[li].size()), T * K);
    for (int64_t t = 0; t < T; ++t) {  // norm_topk_prob: a token's weights sum to 1
      double sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += r.prefill.expert_weights[li][static_cast<size_t>(t * K + k)];
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
    for (size_t s = 0; s < r.decode.size(); ++s) {
      EXPECT_EQ(r.decode[s].expert_ids[li], whole.decode[s].expert_ids[li]);
      EXPECT_EQ(r.decode[s].expert_weights[li], whole.decode[s].expert_weights[li]);
    }
  }
  ForwardStats stats;
  const EvalResult e = evaluate(model, want.prompt, &stats);
  EXPECT_EQ(stats.expert_ids, r.prefill.expert_ids);
  EXPECT_EQ(stats.expert_weights, r.prefill.expert_weights);
  EXPECT_EQ(e.logits.size(), want.logits.size());
}

// A prompt prefilled in passes of 3 tokens: the same greedy tokens as PyTorch's, the same routing as one
// pass (expert ids of every prompt token, in order; telemetry rows summed), each pass's rows its own.
// MiniMax: its lightning layers carry their recurrent state from pass to pass.
TEST(Generate, ChunkedPrefillGivesTheSameTokensAndRouting) {
  for (const char* family : {"qwen3_moe", "gpt_oss", "minimax_rotary"}) {
    SCOPED_TRACE(family);
    Decoder model(fixture_dir(family));
    const Golden want = golden(family);
    ASSERT_GT(want.prompt.size(), 3u);
    GenerateOptions o;
    o.max_new_tokens = static_cast<int64_t>(want.greedy.size());
    o.record_routing = true;
    o.prefill_chunk = 0;
    const GenerateResult whole = generate(model, want.prompt, o);
    o.prefill_chunk = 3;
    const GenerateResult parts = generate(model, want.prompt, o);
    EXPECT_EQ(parts.tokens, want.greedy);
    EXPECT_EQ(parts.tokens, whole.tokens);
    ASSERT_EQ(parts.prefill.expert_ids.size(), whole.prefill.expert_ids.size());
    for (size_t li = 0; li < whole.prefill.expert_ids.size(); ++li) {
      EXPECT_EQ(parts.prefill.expert_ids[li], whole.prefill.expert_ids[li]) << "layer " << li;
      EXPECT_EQ(parts.prefill.moe_layers[li].n_tokens, whole.prefill.moe_layers[li].n_tokens);
      EXPECT_EQ(parts.prefill.moe_layers[li].tokens_per_expert, whole.prefill.moe_layers[li].tokens_per_expert);
    }
  }
}

TEST(StopStrings, CutBeforeTheStopAlsoAcrossPieces) {
  StopStrings s({"<END>", "xyz"});
  bool stopped = false;
  std::string out = s.push("Hello <E", stopped);
  EXPECT_EQ(out, "Hello ");  // "<E" may begin "<END>": held back
  EXPECT_FALSE(stopped);
  out = s.push("N", stopped);
  EXPECT_EQ(out, "");
  out = s.push("D> more", stopped);
  EXPECT_TRUE(stopped);
  EXPECT_EQ(out, "");
  EXPECT_EQ(s.matched(), "<END>");

  StopStrings t({"<END>"});
  stopped = false;
  EXPECT_EQ(t.push("a <E", stopped), "a ");
  EXPECT_EQ(t.push("nd", stopped), "<End");  // not a stop after all: released
  EXPECT_EQ(t.push("x<", stopped), "x");
  EXPECT_EQ(t.flush(), "<");
  EXPECT_FALSE(stopped);
  EXPECT_THROW(StopStrings({""}), Error);
}

// The vocab-256 fixtures are byte models: the text of the ids is their bytes.
TEST(Generate, TextStreamsStopStringsLogprobsAndSeeds) {
  Decoder model(fixture_dir("qwen3"));
  const Golden want = golden("qwen3");
  GenerateOptions o;
  o.max_new_tokens = 20;
  o.logprobs = 2;
  TextStream whole(nullptr, 256);
  o.text = &whole;
  std::string streamed;
  o.on_text = [&](std::string_view piece) { streamed += piece; };
  const GenerateResult r = generate(model, want.prompt, o);
  EXPECT_EQ(r.tokens, want.greedy);
  EXPECT_EQ(r.finish_reason, FinishReason::kLength);
  const std::string all(want.greedy.begin(), want.greedy.end());
  EXPECT_EQ(r.text, all);
  EXPECT_EQ(streamed, all);
  ASSERT_EQ(r.logprobs.size(), r.tokens.size());
  for (size_t i = 0; i < r.tokens.size(); ++i) {
    EXPECT_EQ(r.logprobs[i].chosen.token, r.tokens[i]);
    ASSERT_EQ(r.logprobs[i].top.size(), 2u);
    EXPECT_EQ(r.logprobs[i].top[0].token, r.tokens[i]);  // greedy picks the most likely
    EXPECT_LE(r.logprobs[i].chosen.logprob, 0.0);
  }

  // A stop string spanning tokens 5..7 of the greedy text: the text ends before it.
  const std::string stop = all.substr(5, 3);
  TextStream cut(nullptr, 256);
  o.text = &cut;
  o.stop_strings = {stop};
  streamed.clear();
  const GenerateResult s = generate(model, want.prompt, o);
  EXPECT_EQ(s.finish_reason, FinishReason::kStopString);
  EXPECT_EQ(s.stop_string, stop);
  EXPECT_EQ(s.text, all.substr(0, all.find(stop)));
  EXPECT_EQ(streamed, s.text);
  EXPECT_EQ(s.tokens.size(), all.find(stop) + 3);  // generation ends on the token that completes it

  // An EOS id ends generation; its own text is not part of the answer.
  TextStream eos(nullptr, 256);
  o.text = &eos;
  o.stop_strings.clear();
  o.stop_ids = {want.greedy[4]};
  const GenerateResult e = generate(model, want.prompt, o);
  EXPECT_EQ(e.finish_reason, FinishReason::kStopId);
  EXPECT_EQ(e.tokens.size(), 5u);
  EXPECT_EQ(e.text, all.substr(0, 4));

  // Seeds: the same seed repeats, another seed differs; penalties change greedy output.
  o.stop_ids.clear();
  o.text = nullptr;
  o.sampler = SamplerOptions{1.5f, 0, 1.0f, 7};
  const auto a = generate(model, want.prompt, o).tokens;
  EXPECT_EQ(a, generate(model, want.prompt, o).tokens);
  o.sampler.seed = 8;
  EXPECT_NE(a, generate(model, want.prompt, o).tokens);
  o.sampler = SamplerOptions{};
  o.sampler.frequency_penalty = 2.0f;
  EXPECT_NE(generate(model, want.prompt, o).tokens, want.greedy);
  o.stop_strings = {"x"};
  EXPECT_THROW(generate(model, want.prompt, o), Error);  // stop strings need a detokenizer
}

}  // namespace
}  // namespace moe
