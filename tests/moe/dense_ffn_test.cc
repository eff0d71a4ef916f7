// Dense chunked FFN (the bench's dense baselines) against the float64 reference; ModelSpec ->
// MoeLayerConfig for catalog families; MoeLayer::set_weights; bench routing-pattern parsing.
#include <gtest/gtest.h>

#include "moe/dense_ffn.h"
#include "moe/layer_bench.h"
#include "moe/layer_config.h"
#include "naive_moe.h"
#include "runtime/cpu_features.h"
#include "util/error.h"

namespace moe {
namespace {

TEST(DenseFfn, SumOfChunksMatchesNaive) {
  const Isa prev = set_isa_override(Isa::kAvx512);
  const int64_t D = 24, F = 20;
  for (int64_t T : {1, 3, 17, 64}) {
    testing::RandomLayer rl(5, 0, D, F, 0, DType::kF32, 3);
    const MoeLayerWeights w = rl.views(false, false, false);
    const auto x = testing::random_input(T, D, 2);
    std::vector<float> out(T * D), h;
    ExpertRunOptions ro;
    ro.prefill_row_block = 5;
    dense_ffn_forward(w.experts, {}, x.data(), T, out.data(), ro, &h);
    double max_err = 0;
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> xd(x.begin() + t * D, x.begin() + (t + 1) * D), y(D, 0.0);
      for (const ExpertMatrices& m : w.experts.experts) testing::naive_expert(m, {}, D, F, xd.data(), 1.0, y.data());
      for (int64_t i = 0; i < D; ++i) max_err = std::max(max_err, std::abs(y[i] - out[t * D + i]));
    }
    EXPECT_LT(max_err, 1e-4) << "T=" << T;
  }
  set_isa_override(prev);
}

TEST(LayerConfig, FamiliesMapToTheirRouters) {
  const LayerBenchShape ds = layer_bench_shape_from_catalog("deepseek-v3");
  EXPECT_EQ(ds.config.router.scoring, ScoringFunc::kSigmoid);
  EXPECT_EQ(ds.config.router.n_group, 8);
  EXPECT_EQ(ds.config.router.topk_group, 4);
  EXPECT_EQ(ds.config.router.group_score, GroupScore::kTop2Sum);
  EXPECT_TRUE(ds.config.router.use_correction_bias);
  EXPECT_FLOAT_EQ(ds.config.router.routed_scaling_factor, 2.5f);
  EXPECT_EQ(ds.n_expert, 256);
  EXPECT_EQ(ds.top_k, 8);
  EXPECT_EQ(ds.d_ff_shared, 2048);
  const LayerBenchShape oss = layer_bench_shape_from_catalog("gpt-oss-20b");
  EXPECT_EQ(oss.config.router.selection, Selection::kSoftmaxOverTopK);
  EXPECT_EQ(oss.config.activation.kind, GluKind::kSwiGLUOai);
  EXPECT_FLOAT_EQ(oss.config.activation.limit, 7.0f);
  const LayerBenchShape mix = layer_bench_shape_from_catalog("mixtral-8x7b");
  EXPECT_EQ(mix.n_expert, 8);
  EXPECT_EQ(mix.top_k, 2);
  EXPECT_EQ(mix.d_ff, 14336);
  const LayerBenchShape llama = layer_bench_shape_from_catalog("llama-4-scout");
  EXPECT_TRUE(llama.config.weight_before_expert);
  EXPECT_THROW(layer_bench_shape_from_catalog("no-such-model"), Error);
}

TEST(LayerBench, RoutingPatterns) {
  RoutingPattern p;
  double s = 0;
  parse_routing_pattern("zipf:1.5", &p, &s);
  EXPECT_EQ(p, RoutingPattern::kZipf);
  EXPECT_DOUBLE_EQ(s, 1.5);
  parse_routing_pattern("balanced", &p, &s);
  EXPECT_EQ(p, RoutingPattern::kBalanced);
  EXPECT_THROW(parse_routing_pattern("zipf:0", &p, &s), UsageError);
  EXPECT_THROW(parse_routing_pattern("random", &p, &s), UsageError);
}

TEST(MoeLayer, SetWeightsSwapsExpertsAndValidates) {
  const int64_t D = 16, F = 8, T = 3;
  testing::RandomLayer a(4, 0, D, F, 0, DType::kF32, 1), b(4, 0, D, F, 0, DType::kF32, 2);
  MoeLayerConfig cfg;
  cfg.d_model = D;
  cfg.router.n_expert = 4;
  cfg.router.top_k = 2;
  MoeLayer layer(cfg, a.views(false, false, false));
  const auto x = testing::random_input(T, D, 3);
  std::vector<float> oa(T * D), ob(T * D), ob2(T * D);
  layer.forward(x.data(), T, oa.data());
  layer.set_weights(b.views(false, false, false));
  layer.forward(x.data(), T, ob.data());
  MoeLayer fresh(cfg, b.views(false, false, false));
  fresh.forward(x.data(), T, ob2.data());
  EXPECT_EQ(ob, ob2);
  EXPECT_NE(oa, ob);
  MoeLayerWeights bad = b.views(false, false, false);
  bad.experts.experts.pop_back();
  EXPECT_THROW(layer.set_weights(bad), Error);
}

}  // namespace
}  // namespace moe
