// Sampler: greedy, top-k, top-p, temperature, seeds, bad options.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "model/sampler.h"
#include "util/error.h"

namespace moe {
namespace {

TEST(Sampler, GreedyIsArgmaxLowestIndexOnTies) {
  std::vector<float> l = {0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(argmax(l.data(), 4), 1);
  Sampler s({});
  EXPECT_EQ(s.sample(l.data(), 4), 1);
  Sampler k1({1.0f, 1, 1.0f, 7});  // top-k 1 at any temperature is greedy
  for (int i = 0; i < 20; ++i) EXPECT_EQ(k1.sample(l.data(), 4), 1);
}

TEST(Sampler, SeedsRepeatAndTopKTopPRestrict) {
  std::vector<float> l = {1.0f, 3.0f, 2.9f, 0.0f, 2.0f, -5.0f};
  auto draw = [&](SamplerOptions o) {
    Sampler s(o);
    std::vector<int32_t> ids;
    for (int i = 0; i < 400; ++i) ids.push_back(s.sample(l.data(), 6));
    return ids;
  };
  EXPECT_EQ(draw({1.0f, 0, 1.0f, 42}), draw({1.0f, 0, 1.0f, 42}));
  EXPECT_NE(draw({1.0f, 0, 1.0f, 42}), draw({1.0f, 0, 1.0f, 43}));
  for (int32_t id : draw({1.0f, 3, 1.0f, 1})) EXPECT_TRUE(id == 1 || id == 2 || id == 4);
  // softmax of (3, 2.9, 2, 1, 0, -5): p(1) ~ 0.42, p(2) ~ 0.38 -> top-p 0.5 keeps ids 1 and 2 only
  std::map<int32_t, int> seen;
  for (int32_t id : draw({1.0f, 0, 0.5f, 2})) ++seen[id];
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_GT(seen[1], 120);
  EXPECT_GT(seen[2], 120);
  // A very low temperature concentrates on the argmax; a high one spreads over all tokens.
  for (int32_t id : draw({0.01f, 0, 1.0f, 3})) EXPECT_EQ(id, 1);
  std::map<int32_t, int> hot;
  for (int32_t id : draw({100.0f, 0, 1.0f, 4})) ++hot[id];
  EXPECT_EQ(hot.size(), 6u);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplerOptions o;
  o.repetition_penalty = 2.0f;
  std::vector<float> pos = {3.0f, 2.5f, -1.0f};  // token 0 seen: 3 / 2 = 1.5 < 2.5
  Sampler a(o);
  a.add_context(std::vector<int32_t>{0});
  EXPECT_EQ(a.sample(pos.data(), 3), 1);
  std::vector<float> neg = {-1.0f, -1.5f};  // token 0 seen: -1 * 2 = -2 < -1.5
  Sampler b(o);
  b.add_context(std::vector<int32_t>{0});
  EXPECT_EQ(b.sample(neg.data(), 2), 1);
  Sampler off({});
  off.add_context(std::vector<int32_t>{0});
  EXPECT_EQ(off.sample(pos.data(), 3), 0);
  // The generated token joins the context: greedy alternates instead of repeating.
  Sampler c(o);
  std::vector<float> l = {2.0f, 1.5f};
  EXPECT_EQ(c.sample(l.data(), 2), 0);
  EXPECT_EQ(c.sample(l.data(), 2), 1);
}

TEST(Sampler, PresenceAndFrequencyPenaltiesAsOpenAI) {
  std::vector<float> l = {1.0f, 0.75f};
  SamplerOptions presence;
  presence.presence_penalty = 0.5f;  // once any count: 1.0 - 0.5 = 0.5 < 0.75
  Sampler p(presence);
  EXPECT_EQ(p.sample(l.data(), 2), 0);
  EXPECT_EQ(p.sample(l.data(), 2), 1);
  EXPECT_EQ(p.sample(l.data(), 2), 0);  // both seen: 0.5 vs 0.25
  SamplerOptions frequency;
  frequency.frequency_penalty = 0.1f;  // 1.0 - 0.1 n against 0.75 - 0.1 m
  Sampler f(frequency);
  std::vector<int32_t> got;
  for (int i = 0; i < 5; ++i) got.push_back(f.sample(l.data(), 2));
  EXPECT_EQ(got, (std::vector<int32_t>{0, 0, 0, 1, 0}));
  // The prompt does not count for OpenAI's penalties.
  Sampler q(presence);
  q.add_context(std::vector<int32_t>{0});
  EXPECT_EQ(q.sample(l.data(), 2), 0);
}

TEST(Sampler, MinPKeepsTokensNearTheMostLikely) {
  // p ~ (0.64, 0.24, 0.09, 0.03): min-p 0.3 keeps p >= 0.19, ids 0 and 1.
  std::vector<float> l = {2.0f, 1.0f, 0.0f, -1.0f};
  SamplerOptions o{1.0f, 0, 1.0f, 9};
  o.min_p = 0.3f;
  Sampler s(o);
  std::map<int32_t, int> seen;
  for (int i = 0; i < 400; ++i) ++seen[s.sample(l.data(), 4)];
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_GT(seen[1], 40);
  o.min_p = 1.0f;  // only the most likely
  Sampler one(o);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(one.sample(l.data(), 4), 0);
}

// rank_tokens against a stable sort by decreasing logit, on rows with many ties, -0 / +0, infinities,
// for k that takes the heap and k that takes the radix sort, and on a subset of the ids.
TEST(Sampler, RankTokensIsAStableSortByDecreasingLogit) {
  std::mt19937 rng(5);
  for (int64_t n : {1, 2, 17, 100, 1000, 4099}) {
    std::vector<float> l(static_cast<size_t>(n));
    for (float& x : l) x = static_cast<float>(static_cast<int>(rng() % 41) - 20) * 0.25f;  // many ties
    l[rng() % n] = -0.0f;
    l[rng() % n] = 0.0f;
    if (n > 4) l[rng() % n] = -INFINITY, l[rng() % n] = INFINITY, l[rng() % n] = -1e30f;
    for (bool subset : {false, true}) {
      std::vector<int32_t> ids;
      for (int32_t i = 0; i < n; ++i) {
        if (!subset || i % 3 != 1 || n == 1) ids.push_back(i);
      }
      std::vector<int32_t> want = ids;
      std::stable_sort(want.begin(), want.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
      for (int64_t k :
           {int64_t{1}, int64_t{3}, static_cast<int64_t>(ids.size()) / 2, static_cast<int64_t>(ids.size())}) {
        if (k < 1 || k > static_cast<int64_t>(ids.size())) continue;
        std::vector<int32_t> got = ids;
        std::vector<uint32_t> scratch;
        rank_tokens(l.data(), got, k, scratch);
        ASSERT_EQ(got, std::vector<int32_t>(want.begin(), want.begin() + k)) << "n " << n << " k " << k;
      }
    }
  }
}

// Top-p and min-p on a vocabulary-sized row (the paths that rank only part of it): a nucleus of three
// tokens holding 99% of the mass, and a flat row whose nucleus is most of the vocabulary.
TEST(Sampler, TopPAndMinPOnAWholeVocabulary) {
  const int64_t n = 50000;
  std::vector<float> l(static_cast<size_t>(n), 0.0f);
  l[123] = l[40000] = l[7] = 15.0f;  // 3 e^15 against 50000: 99.85% of the mass
  SamplerOptions o{1.0f, 0, 0.9f, 11};
  Sampler s(o);
  std::map<int32_t, int> seen;
  for (int i = 0; i < 300; ++i) ++seen[s.sample(l.data(), n)];
  EXPECT_EQ(seen.size(), 3u);
  for (int32_t id : {7, 123, 40000}) EXPECT_GT(seen[id], 60);
  std::vector<float> flat(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) flat[i] = static_cast<float>(n - i) * 1e-6f;  // id 0 the most likely
  o.top_p = 0.5f;                                                               // about the first half of the ids
  Sampler half(o);
  for (int i = 0; i < 300; ++i) EXPECT_LT(half.sample(flat.data(), n), n / 2 + 200);
  o.top_p = 1.0f;
  o.min_p = 0.9999f;  // p_i / p_0 = exp(-i 1e-6) >= 0.9999: i <= 100
  Sampler near(o);
  for (int i = 0; i < 300; ++i) EXPECT_LE(near.sample(flat.data(), n), 100);
}

TEST(Sampler, LogprobsOfTheModelDistribution) {
  std::vector<float> l = {0.0f, 2.0f, 1.0f, 2.0f};
  const TokenLogprobs r = logprobs_of(l.data(), 4, 2, 3);
  const double z = std::log(1 + 2 * std::exp(2.0) + std::exp(1.0));
  EXPECT_EQ(r.chosen.token, 2);
  EXPECT_NEAR(r.chosen.logprob, 1.0 - z, 1e-6);  // float exponentials, double sums
  ASSERT_EQ(r.top.size(), 3u);
  EXPECT_EQ(r.top[0].token, 1);  // ties: lower id first
  EXPECT_EQ(r.top[1].token, 3);
  EXPECT_EQ(r.top[2].token, 2);
  EXPECT_NEAR(r.top[0].logprob, 2.0 - z, 1e-6);
  EXPECT_TRUE(logprobs_of(l.data(), 4, 0, 0).top.empty());
}

TEST(Sampler, BadOptionsAndNaNAreErrors) {
  EXPECT_THROW(Sampler({-1.0f, 0, 1.0f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, -2, 1.0f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, 0, 0.0f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, 0, 1.5f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, 0, 1.0f, 0, 1.5f}), Error);        // min-p
  EXPECT_THROW(Sampler({1.0f, 0, 1.0f, 0, 0.0f, 0.0f}), Error);  // repetition penalty 0
  EXPECT_THROW(Sampler({1.0f, 0, 1.0f, 0, 0.0f, 1.0f, NAN}), Error);
  std::vector<float> l = {1.0f, NAN};
  Sampler s({});
  EXPECT_THROW(s.sample(l.data(), 2), Error);
}

}  // namespace
}  // namespace moe
