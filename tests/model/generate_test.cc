// evaluate and generate on the golden fixtures: the same logits and greedy tokens as PyTorch,
// cross-entropy from those logits, stop ids, sampling determinism, bad inputs.
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

}  // namespace
}  // namespace moe
