// Router against the float64 naive reference for every scoring, selection, group, bias,
// normalization and scaling option, at odd sizes; deterministic ties; bad settings as errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "kernels/packed_weights.h"
#include "moe/router.h"
#include "naive_moe.h"
#include "runtime/aligned.h"
#include "runtime/thread_pool.h"
#include "util/error.h"

namespace moe {
namespace {

using testing::naive_route;
using testing::random_input;

struct RouterCase {
  std::string name;
  RouterOptions options;
  bool logit_bias = false;
};

// Family presets (E and K filled in per test).
std::vector<RouterCase> router_cases() {
  std::vector<RouterCase> cs;
  RouterOptions o;
  cs.push_back({"olmoe_softmax_topk", o});
  o.norm_topk_prob = true;
  cs.push_back({"qwen3_softmax_topk_norm", o});
  o = {};
  o.selection = Selection::kSoftmaxOverTopK;
  cs.push_back({"mixtral_softmax_over_topk", o});
  cs.push_back({"gpt_oss_logit_bias", o, true});
  o = {};
  o.n_group = 3;
  o.topk_group = 2;
  o.group_score = GroupScore::kMax;
  o.routed_scaling_factor = 16.0f;
  cs.push_back({"deepseek_v2_group_max", o});
  o = {};
  o.scoring = ScoringFunc::kSigmoid;
  o.n_group = 3;
  o.topk_group = 2;
  o.group_score = GroupScore::kTop2Sum;
  o.use_correction_bias = true;
  o.norm_topk_prob = true;
  o.routed_scaling_factor = 2.5f;
  cs.push_back({"deepseek_v3_groups_bias", o});
  o.n_group = 1;
  o.topk_group = 1;
  cs.push_back({"kimi_glm_sigmoid_bias", o});
  o = {};
  o.scoring = ScoringFunc::kSqrtSoftplus;
  o.use_correction_bias = true;
  o.norm_topk_prob = true;
  o.routed_scaling_factor = 1.5f;
  cs.push_back({"deepseek_v4_sqrtsoftplus", o});
  o = {};
  o.scoring = ScoringFunc::kSigmoid;
  cs.push_back({"llama4_sigmoid", o});
  o = {};
  o.scoring = ScoringFunc::kSigmoid;
  o.norm_topk_prob = true;
  cs.push_back({"sigmoid_norm", o});
  return cs;
}

// Compares ids exactly except at float near-ties (then the naive selection scores must agree to 1e-5),
// and weights to 1e-5 relative. Returns the number of tokens skipped as near-ties.
int expect_route_matches(const RouterOutput& got, const testing::NaiveRoute& want, int E, const std::string& what) {
  const int K = got.top_k;
  int near_ties = 0;
  for (int64_t t = 0; t < got.n_tokens; ++t) {
    bool same = true;
    for (int k = 0; k < K; ++k) same &= got.expert_ids[t * K + k] == want.ids[t * K + k];
    if (!same) {
      for (int k = 0; k < K; ++k) {
        const double a = want.sel[t * E + got.expert_ids[t * K + k]], b = want.sel[t * E + want.ids[t * K + k]];
        EXPECT_NEAR(a, b, 1e-5 * (1 + std::abs(b))) << what << " token " << t << " slot " << k;
      }
      ++near_ties;
      continue;
    }
    for (int k = 0; k < K; ++k) {
      const double w = want.weights[t * K + k];
      EXPECT_NEAR(got.weights[t * K + k], w, 1e-5 * (1 + std::abs(w))) << what << " token " << t << " slot " << k;
    }
  }
  return near_ties;
}

TEST(Router, MatchesNaiveReferenceForEveryOption) {
  const int64_t D = 19;
  int checked = 0;
  for (const RouterCase& c : router_cases()) {
    for (int E : {6, 12, 15}) {
      if (E % c.options.n_group) continue;
      for (int K = 1; K <= 8 && K <= E; ++K) {
        RouterOptions o = c.options;
        o.n_expert = E;
        o.top_k = K;
        if (o.n_group > 1 && K > o.topk_group * (E / o.n_group)) continue;
        for (int64_t T : {1, 3, 17, 64}) {
          testing::RandomLayer layer(E, 0, D, 4, 0, DType::kF32, 100 + E * 10 + K);
          const MoeLayerWeights w = layer.views(c.logit_bias, o.use_correction_bias, false);
          const std::vector<float> x = random_input(T, D, 7 + T);
          RouterOutput got;
          route_tokens(o, w.router, x.data(), T, D, 0, &got);
          const auto want = naive_route(o, w.router, x.data(), T, D, K);
          const std::string what =
              c.name + " E=" + std::to_string(E) + " K=" + std::to_string(K) + " T=" + std::to_string(T);
          EXPECT_LE(expect_route_matches(got, want, E, what), 1) << what;
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 300);
}

// A decode step's router weight large enough to be read from memory (>= 256 KB: Qwen3-30B-A3B's 128 x 2048
// f32, gpt-oss-20b's 32 x 2880) has its experts split across threads: the same routing as one thread, in
// rows and in panels (split at panel edges), at expert counts that are not multiples of the split.
TEST(Router, LargeRouterSplitAcrossThreadsGivesTheSameRouting) {
  const int64_t D = 1000;
  for (int E : {100, 130}) {
    RouterOptions o;
    o.n_expert = E;
    o.top_k = 8;
    o.norm_topk_prob = true;
    testing::RandomLayer layer(E, 0, D, 4, 0, DType::kF32, 900 + E);
    const MoeLayerWeights w = layer.views(false, false, false);
    AlignedBuffer<uint8_t> panels(panel_bytes(DType::kF32, E, D));
    const RouterWeights packed = {pack_panels(w.router.weight, E, D, panels.data()), w.router.bias,
                                  w.router.correction_bias};
    for (const RouterWeights* rw : {&w.router, &packed}) {
      for (int64_t T : {1, 2}) {
        const std::vector<float> x = random_input(T, D, 31 + T);
        RouterOutput one, two;
        set_num_threads(1);
        route_tokens(o, *rw, x.data(), T, D, 0, &one);
        set_num_threads(2);
        route_tokens(o, *rw, x.data(), T, D, 0, &two);
        set_num_threads(0);
        const std::string what =
            "E=" + std::to_string(E) + " T=" + std::to_string(T) + (rw == &packed ? " panels" : " rows");
        EXPECT_EQ(one.expert_ids, two.expert_ids) << what;
        EXPECT_EQ(one.weights, two.weights) << what;
        EXPECT_EQ(expect_route_matches(two, naive_route(o, w.router, x.data(), T, D, 8), E, what), 0) << what;
      }
    }
  }
}

TEST(Router, SoftmaxOverTopKEqualsSoftmaxThenRenormalize) {
  const int64_t D = 16, T = 17;
  for (int K : {1, 2, 4}) {
    RouterOptions a;
    a.n_expert = 8;
    a.top_k = K;
    a.selection = Selection::kSoftmaxOverTopK;
    RouterOptions b = a;
    b.selection = Selection::kTopK;
    b.norm_topk_prob = true;
    testing::RandomLayer layer(8, 0, D, 4, 0, DType::kF32, 5);
    const MoeLayerWeights w = layer.views(false, false, false);
    const auto x = random_input(T, D, 9);
    RouterOutput ra, rb;
    route_tokens(a, w.router, x.data(), T, D, 0, &ra);
    route_tokens(b, w.router, x.data(), T, D, 0, &rb);
    EXPECT_EQ(ra.expert_ids, rb.expert_ids);
    for (size_t i = 0; i < ra.weights.size(); ++i) EXPECT_NEAR(ra.weights[i], rb.weights[i], 1e-6);
  }
}

TEST(Router, TiesGoToTheLowerIndex) {
  // All router rows equal: every logit ties, so the chosen experts are 0..K-1 in order.
  const int64_t D = 8, T = 3;
  std::vector<float> wt(10 * D, 0.25f);
  RouterWeights rw;
  rw.weight = {wt.data(), DType::kF32, D};
  const auto x = random_input(T, D, 3);
  for (ScoringFunc f : {ScoringFunc::kSoftmax, ScoringFunc::kSigmoid, ScoringFunc::kSqrtSoftplus}) {
    RouterOptions o;
    o.n_expert = 10;
    o.top_k = 4;
    o.scoring = f;
    RouterOutput r;
    route_tokens(o, rw, x.data(), T, D, 0, &r);
    for (int64_t t = 0; t < T; ++t) {
      for (int k = 0; k < 4; ++k) EXPECT_EQ(r.expert_ids[t * 4 + k], k);
    }
    // Group ties: the lower-index groups win too.
    o.n_group = 5;
    o.topk_group = 2;
    o.group_score = GroupScore::kTop2Sum;
    route_tokens(o, rw, x.data(), T, D, 0, &r);
    for (int k = 0; k < 4; ++k) EXPECT_EQ(r.expert_ids[k], k);
  }
}

TEST(Router, CorrectionBiasSelectsButDoesNotWeight) {
  const int64_t D = 4;
  std::vector<float> wt(4 * D, 0.0f);  // all logits 0 -> sigmoid 0.5 everywhere
  std::vector<float> bias = {0.0f, 0.0f, 1.0f, 0.5f};
  RouterWeights rw;
  rw.weight = {wt.data(), DType::kF32, D};
  rw.correction_bias = bias.data();
  RouterOptions o;
  o.n_expert = 4;
  o.top_k = 2;
  o.scoring = ScoringFunc::kSigmoid;
  o.use_correction_bias = true;
  const std::vector<float> x(D, 1.0f);
  RouterOutput r;
  route_tokens(o, rw, x.data(), 1, D, 0, &r);
  EXPECT_EQ(r.expert_ids, (std::vector<int32_t>{2, 3}));
  EXPECT_FLOAT_EQ(r.weights[0], 0.5f);
  EXPECT_FLOAT_EQ(r.weights[1], 0.5f);
}

TEST(Router, TopKOverrideKeepsTheBestAndRenormalizes) {
  const int64_t D = 12, T = 17;
  RouterOptions o;
  o.n_expert = 9;
  o.top_k = 6;
  o.norm_topk_prob = true;
  testing::RandomLayer layer(9, 0, D, 4, 0, DType::kF32, 11);
  const MoeLayerWeights w = layer.views(false, false, false);
  const auto x = random_input(T, D, 2);
  RouterOutput full, two;
  route_tokens(o, w.router, x.data(), T, D, 0, &full);
  route_tokens(o, w.router, x.data(), T, D, 2, &two);
  ASSERT_EQ(two.top_k, 2);
  const auto want = naive_route(o, w.router, x.data(), T, D, 2);
  for (int64_t t = 0; t < T; ++t) {
    for (int k = 0; k < 2; ++k) {
      EXPECT_EQ(two.expert_ids[t * 2 + k], full.expert_ids[t * 6 + k]);
      EXPECT_NEAR(two.weights[t * 2 + k], want.weights[t * 2 + k], 1e-6);
    }
    EXPECT_NEAR(two.weights[t * 2] + two.weights[t * 2 + 1], 1.0, 1e-6);
  }
  EXPECT_THROW(route_tokens(o, w.router, x.data(), T, D, 7, &two), Error);
}

TEST(Router, WeightsForGivenIdsUseTheUnbiasedScores) {
  RouterOptions o;
  o.n_expert = 5;
  o.top_k = 2;
  o.scoring = ScoringFunc::kSqrtSoftplus;
  o.norm_topk_prob = true;
  o.routed_scaling_factor = 1.5f;
  const float logits[5] = {0.1f, -2.0f, 3.0f, 0.0f, 1.0f};
  const int32_t ids[2] = {1, 3};
  float w[2], scratch[5];
  weights_for_ids(o, logits, 2, ids, w, scratch);
  const double a = std::sqrt(std::log1p(std::exp(-2.0))), b = std::sqrt(std::log1p(1.0));
  EXPECT_NEAR(w[0], 1.5 * a / (a + b), 1e-6);
  EXPECT_NEAR(w[1], 1.5 * b / (a + b), 1e-6);
  const int32_t bad[2] = {1, 5};
  EXPECT_THROW(weights_for_ids(o, logits, 2, bad, w, scratch), Error);
}

TEST(Router, BadSettingsAreClearErrors) {
  auto msg = [](const RouterOptions& o) {
    try {
      o.validate();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  RouterOptions o;
  o.n_expert = 8;
  o.top_k = 9;
  EXPECT_NE(msg(o).find("top_k 9 exceeds the number of experts 8"), std::string::npos) << msg(o);
  o.top_k = 2;
  o.n_group = 3;
  EXPECT_NE(msg(o).find("n_group 3 does not divide n_expert 8"), std::string::npos) << msg(o);
  o.n_group = 4;
  o.topk_group = 5;
  EXPECT_NE(msg(o).find("topk_group"), std::string::npos) << msg(o);
  o.topk_group = 1;
  o.top_k = 3;  // one group of 2 experts cannot give 3
  EXPECT_NE(msg(o).find("reachable"), std::string::npos) << msg(o);
  o = {};
  o.n_expert = 8;
  o.top_k = 0;
  EXPECT_NE(msg(o).find("top_k"), std::string::npos);
  o.top_k = 2;
  o.routed_scaling_factor = 0.0f;
  EXPECT_NE(msg(o).find("routed_scaling_factor"), std::string::npos);
  o.routed_scaling_factor = 1.0f;
  o.n_group = 8;
  o.topk_group = 2;
  o.group_score = GroupScore::kTop2Sum;
  EXPECT_NE(msg(o).find("top-2"), std::string::npos) << msg(o);
  EXPECT_THROW(o.effective_top_k(3), Error);
}

// PhiMoE's sparsemixer, worked by hand: logits {2.0, 1.9, 0.5, -1.0}, eps 0.05 (mask width 0.1).
// Expert 0: relative distances 0, 0.05, 0.75, 1.5 keep experts 0 and 1: weight 1 / (1 + e^-0.1).
// Expert 1 (best of the rest): 0.5 and -1 are 0.74 and 1.5 away, expert 0 is out: weight 1.
TEST(Router, SparseMixerByHand) {
  RouterOptions o;
  o.n_expert = 4;
  o.top_k = 2;
  o.selection = Selection::kSparseMixer;
  o.sparsemixer_eps = 0.05f;
  const float logits[4] = {2.0f, 1.9f, 0.5f, -1.0f};
  int32_t ids[2];
  float w[2], scratch[12];
  route_one_token(o, RouterWeights{}, logits, 2, ids, w, scratch);
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids[1], 1);
  EXPECT_NEAR(w[0], 1.0 / (1.0 + std::exp(-0.1)), 1e-6);
  EXPECT_NEAR(w[1], 1.0, 1e-6);
  o.sparsemixer_eps = 0.5f;  // a width of 1: 0.5 (0.75 away) joins expert 0's softmax and expert 1's
  route_one_token(o, RouterWeights{}, logits, 2, ids, w, scratch);
  EXPECT_NEAR(w[0], 1.0 / (1.0 + std::exp(-0.1) + std::exp(-1.5)), 1e-6);
  EXPECT_NEAR(w[1], 1.0 / (1.0 + std::exp(-1.4)), 1e-6);
  o.top_k = 3;
  EXPECT_THROW(o.validate(), Error);
  o.top_k = 2;
  EXPECT_THROW(o.effective_top_k(1), Error);
}

}  // namespace
}  // namespace moe
