// Sampler: greedy, top-k, top-p, temperature, seeds, bad options.
#include <map>
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

TEST(Sampler, BadOptionsAndNaNAreErrors) {
  EXPECT_THROW(Sampler({-1.0f, 0, 1.0f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, -2, 1.0f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, 0, 0.0f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, 0, 1.5f, 0}), Error);
  std::vector<float> l = {1.0f, NAN};
  Sampler s({});
  EXPECT_THROW(s.sample(l.data(), 2), Error);
}

}  // namespace
}  // namespace moe
