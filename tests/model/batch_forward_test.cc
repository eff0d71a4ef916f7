// Decoder::forward_batch (continuous batching) against one sequence at a time: several sequences
// with their own caches, prefill chunks mixed with decode steps in one pass, last-position-only
// logits, and the errors that name the sequence. Families cover GQA with QK-norm (Qwen3-MoE),
// sinks and sliding windows (gpt-oss), MLA (DeepSeek-V3), NoPE layers and chunked attention
// (Llama 4), LayerNorm with LongRoPE (PhiMoE).
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "model/decoder.h"
#include "model/generate.h"
#include "util/error.h"

namespace moe {
namespace {

std::string fixture_dir(const std::string& family) {
  return std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/models/" + family;
}

// One sequence's script: the tokens each pass feeds it (empty: it sits that pass out).
struct Script {
  std::vector<std::vector<int32_t>> passes;
};

std::vector<int32_t> ids(int64_t n, int32_t seed, int64_t V) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<int32_t>((seed * 131 + i * 17 + 3) % V);
  return v;
}

// The logits of every pass of every sequence, [sequence][pass] -> [n, V], run alone.
std::vector<std::vector<std::vector<float>>> alone(Decoder& model, const std::vector<Script>& scripts) {
  const int64_t V = model.spec().vocab;
  std::vector<std::vector<std::vector<float>>> out;
  for (const Script& s : scripts) {
    KvCache cache = model.make_cache(64);
    auto& seq = out.emplace_back();
    for (const auto& p : s.passes) {
      auto& l = seq.emplace_back(p.size() * static_cast<size_t>(V));
      if (!p.empty()) model.forward(p.data(), static_cast<int64_t>(p.size()), cache, l.data());
    }
  }
  return out;
}

double max_rel_diff(const float* a, const float* b, int64_t n) {
  double scale = 1e-6, diff = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return 1e30;  // NaN never passes
    scale = std::max(scale, std::abs(double(b[i])));
    diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
  }
  return diff / scale;
}

class BatchForward : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchForward, EachRowMatchesItsSequenceAlone) {
  Decoder model(fixture_dir(GetParam()));
  const int64_t V = model.spec().vocab;
  // Pass 0: three prefills of different lengths; pass 1: decode, decode, a second prompt chunk;
  // pass 2: one sequence sits out, the others decode; pass 3: a two-token chunk next to a decode.
  const std::vector<Script> scripts = {
      {{ids(5, 1, V), ids(1, 2, V), ids(1, 3, V), ids(2, 4, V)}},
      {{ids(3, 5, V), ids(1, 6, V), {}, ids(1, 7, V)}},
      {{ids(7, 8, V), ids(4, 9, V), ids(1, 10, V), ids(1, 11, V)}},
  };
  const auto want = alone(model, scripts);
  // Each chunk's logits in a buffer of its own (gathered, then copied), or all in one buffer, chunk after
  // chunk, as the serving scheduler lays them out (written in place).
  for (const auto& [last_only, one_buffer] : {std::pair{false, false}, {true, false}, {false, true}, {true, true}}) {
    std::vector<KvCache> caches;
    for (size_t s = 0; s < scripts.size(); ++s) caches.push_back(model.make_cache(64));
    for (size_t p = 0; p < scripts[0].passes.size(); ++p) {
      std::vector<SequenceChunk> chunks;
      std::vector<std::vector<float>> own(scripts.size());
      std::vector<float> shared(scripts.size() * 8 * static_cast<size_t>(V));  // 8 rows a chunk at most
      std::vector<float*> got(scripts.size());
      std::vector<size_t> who;
      size_t at = 0;
      for (size_t s = 0; s < scripts.size(); ++s) {
        const auto& in = scripts[s].passes[p];
        if (in.empty()) continue;
        const size_t n_out = (last_only ? 1 : in.size()) * static_cast<size_t>(V);
        own[s].resize(n_out);
        got[s] = one_buffer ? shared.data() + std::exchange(at, at + n_out) : own[s].data();
        chunks.push_back({in.data(), static_cast<int64_t>(in.size()), &caches[s], got[s], last_only});
        who.push_back(s);
      }
      ForwardStats stats;
      model.forward_batch(chunks.data(), static_cast<int64_t>(chunks.size()), &stats);
      int64_t rows = 0;
      for (size_t c = 0; c < who.size(); ++c) {
        const size_t s = who[c];
        const int64_t n = static_cast<int64_t>(scripts[s].passes[p].size()), first = last_only ? n - 1 : 0;
        rows += n;
        EXPECT_LT(max_rel_diff(got[s], want[s][p].data() + first * V, (n - first) * V), 1e-5)
            << GetParam() << " sequence " << s << " pass " << p << (last_only ? " (last only)" : "")
            << (one_buffer ? " (one buffer)" : "");
      }
      // (PhiMoE's fixture outgrows its LongRoPE original length: those sequences are recomputed alone.)
      for (size_t li = 0; li < stats.expert_ids.size() && model.spec().rope.type != RopeType::kLongrope; ++li) {
        if (stats.expert_ids[li].empty()) continue;  // dense layer
        EXPECT_EQ(static_cast<int64_t>(stats.expert_ids[li].size()), rows * model.spec().n_expert_used);
      }
    }
    for (size_t s = 0; s < scripts.size(); ++s) {
      int64_t fed = 0;
      for (const auto& in : scripts[s].passes) fed += static_cast<int64_t>(in.size());
      EXPECT_EQ(caches[s].length(), fed);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, BatchForward,
                         ::testing::Values("qwen3_moe", "gpt_oss", "deepseek_v3", "llama4_text", "phimoe", "jetmoe",
                                           "minimax"));

TEST(BatchForwardErrors, NameTheSequence) {
  Decoder model(fixture_dir("qwen3_moe"));
  const int64_t V = model.spec().vocab;
  KvCache a = model.make_cache(8), b = model.make_cache(4);
  std::vector<float> la(static_cast<size_t>(V * 8)), lb(static_cast<size_t>(V * 8));
  const std::vector<int32_t> good = ids(3, 1, V), bad = {1, static_cast<int32_t>(V)}, long_ = ids(5, 2, V);
  auto run = [&](std::vector<SequenceChunk> c) { model.forward_batch(c.data(), static_cast<int64_t>(c.size())); };
  auto message = [&](std::vector<SequenceChunk> c) {
    try {
      run(std::move(c));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message({{good.data(), 3, &a, la.data()}, {bad.data(), 2, &b, lb.data()}}).find("sequence 1 of the batch"),
            std::string::npos);
  EXPECT_NE(message({{good.data(), 3, &a, la.data()}, {good.data(), 3, &a, lb.data()}}).find("shares its KV cache"),
            std::string::npos);
  EXPECT_NE(message({{good.data(), 3, &a, la.data()}, {long_.data(), 5, &b, lb.data()}}).find("exceed the context"),
            std::string::npos);
  EXPECT_NE(message({}).find("empty batch"), std::string::npos);
  EXPECT_EQ(a.length(), 0);  // a failed batch checks everything before it writes any cache
  EXPECT_EQ(b.length(), 0);
}

// generate() computes only the last prompt position's logits now; its greedy tokens still match
// the ones a full-logits prefill chooses.
TEST(BatchForward, GenerateStepsMatchAManualLoop) {
  Decoder model(fixture_dir("qwen3_moe"));
  const int64_t V = model.spec().vocab;
  const std::vector<int32_t> prompt = ids(6, 3, V);
  GenerateOptions o;
  o.max_new_tokens = 5;
  const GenerateResult r = generate(model, prompt, o);
  KvCache cache = model.make_cache(16);
  std::vector<float> logits(prompt.size() * static_cast<size_t>(V));
  model.forward(prompt.data(), static_cast<int64_t>(prompt.size()), cache, logits.data());
  const float* last = logits.data() + (prompt.size() - 1) * V;
  std::vector<int32_t> want;
  for (int i = 0; i < 5; ++i) {
    const int32_t t = static_cast<int32_t>(std::max_element(last, last + V) - last);
    want.push_back(t);
    model.forward(&t, 1, cache, logits.data());
    last = logits.data();
  }
  EXPECT_EQ(r.tokens, want);
}

// A cache kept across generations (a chat's turns): the second prompt extends the first and its
// answer; only the new tokens are prefilled, and the tokens are those of a fresh cache. A prompt that
// diverges keeps only the common prefix.
TEST(BatchForward, KeptCacheReusesTheCommonPrefix) {
  Decoder model(fixture_dir("qwen3_moe"));
  const int64_t V = model.spec().vocab;
  GenerateOptions o;
  o.max_new_tokens = 4;
  o.context = 40;
  KvCache kept = model.make_cache(40);
  o.cache = &kept;
  const std::vector<int32_t> first = ids(7, 1, V);
  const GenerateResult a = generate(model, first, o);
  EXPECT_EQ(a.reused_tokens, 0);
  EXPECT_EQ(kept.length(), 7 + 4 - 1);  // the last token was never fed
  std::vector<int32_t> second = first;
  second.insert(second.end(), a.tokens.begin(), a.tokens.end());
  for (int32_t t : ids(5, 2, V)) second.push_back(t);
  const GenerateResult b = generate(model, second, o);
  EXPECT_EQ(b.reused_tokens, 7 + 4 - 1);
  GenerateOptions fresh = o;
  fresh.cache = nullptr;
  EXPECT_EQ(b.tokens, generate(model, second, fresh).tokens);
  std::vector<int32_t> third = first;
  third[3] = (third[3] + 1) % static_cast<int32_t>(V);
  const GenerateResult c = generate(model, third, o);
  EXPECT_EQ(c.reused_tokens, 3);
  EXPECT_EQ(c.tokens, generate(model, third, fresh).tokens);
  const GenerateResult d = generate(model, third, o);  // the same prompt again: all but its last token
  EXPECT_EQ(d.reused_tokens, 6);
  EXPECT_EQ(d.tokens, c.tokens);
  KvCache small = model.make_cache(8);
  o.cache = &small;
  EXPECT_THROW(generate(model, first, o), Error);
}

// MiniMax's lightning layers keep a recurrent state, not rows: a kept cache is reused only by a prompt that
// extends all of it; another prompt starts over (the state has no prefix to return to), with the tokens of
// a fresh cache either way.
TEST(BatchForward, KeptRecurrentStateIsReusedWholeOrNotAtAll) {
  Decoder model(fixture_dir("minimax"));
  const int64_t V = model.spec().vocab;
  GenerateOptions o;
  o.max_new_tokens = 4;
  o.context = 40;
  KvCache kept = model.make_cache(40);
  ASSERT_TRUE(kept.has_state());
  // Rows only for the softmax layer (2 kv heads x 8, keys and values); the three lightning layers hold a
  // [4, 8, 8] state each.
  EXPECT_EQ(kept.bytes_for(10), (10u * 2 * 16 + 3u * 4 * 8 * 8) * sizeof(float));
  o.cache = &kept;
  GenerateOptions fresh = o;
  fresh.cache = nullptr;
  const std::vector<int32_t> first = ids(7, 1, V);
  const GenerateResult a = generate(model, first, o);
  std::vector<int32_t> second = first;
  second.insert(second.end(), a.tokens.begin(), a.tokens.end());
  for (int32_t t : ids(5, 2, V)) second.push_back(t);
  const GenerateResult b = generate(model, second, o);
  EXPECT_EQ(b.reused_tokens, 7 + 4 - 1);
  EXPECT_EQ(b.tokens, generate(model, second, fresh).tokens);
  const GenerateResult c = generate(model, first, o);  // a prefix of what the cache holds: recomputed
  EXPECT_EQ(c.reused_tokens, 0);
  EXPECT_EQ(c.tokens, a.tokens);
  EXPECT_THROW(kept.truncate(3), Error);
  kept.truncate(0);
  EXPECT_EQ(kept.length(), 0);
}

}  // namespace
}  // namespace moe
