// Cost figures checked by hand-computed values: KV cache (GQA, MLA, sliding caps), decode and
// prefill FLOPs, the distinct-expert decode floor, EP dispatch/combine bytes, weight formats.
#include <gtest/gtest.h>

#include <cmath>

#include "spec/accounting.h"
#include "spec/catalog.h"
#include "util/error.h"

namespace moe {
namespace {

struct Model {
  ModelSpec spec;
  TensorRegistry reg;
};

Model load(const char* name) {
  const CatalogEntry* e = find_catalog_entry(name);
  Model m{parse_model_spec(e->config, e->name), {}};
  m.reg = build_registry(m.spec);
  return m;
}

Cost cost(const Model& m, int64_t L, int64_t B = 1, int64_t R = 1, int64_t N = 0) {
  Workload w;
  w.context = L;
  w.batch = B;
  w.ep_ranks = R;
  w.prompt = N;
  return compute_cost(m.spec, m.reg, w);
}

TEST(Cost, KvCacheGqaMlaAndSlidingCaps) {
  const Model mixtral = load("mixtral-8x7b");
  const Cost c = cost(mixtral, 4096, 3);
  EXPECT_DOUBLE_EQ(c.kv.bytes_per_token, 32.0 * 2 * 8 * 128 * 2);  // 128 KiB
  EXPECT_DOUBLE_EQ(c.kv.bytes_at_context, 32.0 * 2 * 8 * 128 * 2 * 4096);
  EXPECT_DOUBLE_EQ(c.kv.bytes_at_batch, 3 * c.kv.bytes_at_context);
  const Cost v3 = cost(load("deepseek-v3"), 1000);
  EXPECT_DOUBLE_EQ(v3.kv.bytes_per_token, 61.0 * (512 + 64) * 2);
  EXPECT_DOUBLE_EQ(v3.kv.bytes_at_context, 61.0 * (512 + 64) * 2 * 1000);
  // gpt-oss: 12 full layers grow, 12 sliding layers stop at 128 tokens.
  const Cost g = cost(load("gpt-oss-20b"), 4096);
  const double per_layer_token = 2.0 * 8 * 64 * 2;
  EXPECT_DOUBLE_EQ(g.kv.bytes_per_token, 12 * per_layer_token);
  EXPECT_DOUBLE_EQ(g.kv.bytes_at_context, 12 * per_layer_token * 4096 + 12 * per_layer_token * 128);
  const Cost g_short = cost(load("gpt-oss-20b"), 100);
  EXPECT_DOUBLE_EQ(g_short.kv.bytes_at_context, 24 * per_layer_token * 100);
}

// The closed-form prefill attention sum equals the per-token loop for every attention kind
// (full, sliding, chunked, MLA, DeepSeek-V4 compressed with the capped indexer), at sizes around
// the windows, ratios and caps; and it is constant time (a context of 1e15 returns at once).
TEST(Cost, PrefillAttentionClosedFormEqualsTheLoop) {
  for (const char* name : {"mixtral-8x7b", "gpt-oss-20b", "llama-4-scout", "deepseek-v3", "deepseek-v4-flash"}) {
    const Model m = load(name);
    double loop = 0;
    int64_t t = 0;
    for (int64_t n : {1, 2, 3, 4, 5, 7, 8, 127, 128, 129, 255, 256, 1000, 4096, 8191, 8192, 8193, 20000}) {
      for (; t < n; ++t) loop += attention_flops_per_token(m.spec, t + 1, false);
      const double closed = prefill_attention_flops(m.spec, n);
      EXPECT_NEAR(closed, loop, 1e-12 * loop) << name << " n=" << n;
    }
    const double huge = prefill_attention_flops(m.spec, int64_t{1} << 50);
    EXPECT_TRUE(std::isfinite(huge) && huge > 0) << name;
  }
}

TEST(Cost, DecodeAndPrefillFlops) {
  const Model m = load("mixtral-8x7b");
  const ParamCounts counts = count_params(m.spec, m.reg);
  // Matmul params: activated minus the embedding table and the 65 norm vectors.
  const double matmul = static_cast<double>(counts.activated_params) - 32000.0 * 4096 - 65.0 * 4096;
  const Cost c1 = cost(m, 1);
  EXPECT_DOUBLE_EQ(c1.decode_matmul_flops, 2 * matmul);
  EXPECT_DOUBLE_EQ(c1.decode_attention_flops, 32.0 * 4 * 32 * 128 * 1);
  const Cost c = cost(m, 4096, 1, 1, 512);
  EXPECT_DOUBLE_EQ(c.decode_attention_flops, 32.0 * 4 * 32 * 128 * 4096);
  // Prefill of 512: 512 x matmul + sum_t 4 H Dh t over 32 layers.
  EXPECT_DOUBLE_EQ(c.prefill_flops, 512 * 2 * matmul + 32.0 * 4 * 32 * 128 * (512.0 * 513 / 2));
  // MLA decode uses the latent (absorbed) form, prefill the per-head form.
  const Model v3 = load("deepseek-v3");
  EXPECT_DOUBLE_EQ(attention_flops_per_token(v3.spec, 10, true), 61.0 * (2 * 128 * 576 * 10 + 2 * 128 * 512 * 10));
  EXPECT_DOUBLE_EQ(attention_flops_per_token(v3.spec, 10, false), 61.0 * (2 * 128 * 192 * 10 + 2 * 128 * 128 * 10));
}

TEST(Cost, DecodeFloorCountsDistinctExperts) {
  const Model m = load("mixtral-8x7b");
  EXPECT_DOUBLE_EQ(cost(m, 16, 1).floor.expected_experts_per_layer, 2.0);
  EXPECT_DOUBLE_EQ(cost(m, 16, 4).floor.expected_experts_per_layer, 8 * (1 - std::pow(0.75, 4)));
  EXPECT_NEAR(cost(m, 16, 1000).floor.expected_experts_per_layer, 8.0, 1e-9);
  const Cost c = cost(m, 16, 1);
  // B=1: exactly the activated weights (bf16) + one embedding row + KV at L.
  const ParamCounts counts = count_params(m.spec, m.reg);
  const double want = 2.0 * (counts.activated_params - 32000.0 * 4096) + 2.0 * 4096 + c.kv.bytes_at_context;
  EXPECT_DOUBLE_EQ(c.floor.bytes_per_step, want);
  // DeepSeek-V3 FP8: expert bytes include their block scales.
  const Model v3 = load("deepseek-v3");
  const Cost d = cost(v3, 16, 1);
  const double expert_bytes = 3.0 * 2048 * 7168 + 3.0 * 16 * 56 * 4;  // fp8 weights + f32 scales
  EXPECT_DOUBLE_EQ(d.floor.expert_bytes, 58 * 8 * expert_bytes);
}

TEST(Cost, ExpertParallelTraffic) {
  const Model m = load("mixtral-8x7b");
  const Cost c = cost(m, 16, 2, 8);
  EXPECT_DOUBLE_EQ(c.ep.remote_copies_per_token_layer, 2 * 7.0 / 8);
  EXPECT_DOUBLE_EQ(c.ep.dispatch_bf16_bytes, 1.75 * 4096 * 2);
  EXPECT_DOUBLE_EQ(c.ep.dispatch_fp8_bytes, 1.75 * (4096 + 4 * 32));
  EXPECT_DOUBLE_EQ(c.ep.combine_bf16_bytes, 1.75 * 4096 * 2);
  // One expert per rank: deduplication changes nothing. P(rank has none of 2) = C(7,2)/C(8,2) = 3/4.
  EXPECT_DOUBLE_EQ(c.ep.remote_ranks_per_token_layer, 7 * 0.25);
  EXPECT_DOUBLE_EQ(c.ep.per_token_all_layers_bytes, 32 * 2 * 1.75 * 4096 * 2);
  EXPECT_DOUBLE_EQ(c.ep.per_step_bytes, 2 * c.ep.per_token_all_layers_bytes);
  const Cost v3 = cost(load("deepseek-v3"), 16, 1, 64);  // 4 experts per rank: dedup sends fewer copies
  EXPECT_LT(v3.ep.remote_ranks_per_token_layer, v3.ep.remote_copies_per_token_layer);
  EXPECT_THROW(cost(m, 16, 1, 9), UsageError);                   // more ranks than experts
  const Cost uneven = cost(m, 16, 1, 3);                         // E need not divide by R: ranks own 3, 3, 2 experts
  const double expert_all_layers = 32.0 * 3 * 4096 * 14336 * 2;  // one expert, bf16, 32 MoE layers
  EXPECT_DOUBLE_EQ(uneven.ep.weight_bytes_rank_max - uneven.ep.weight_bytes_rank_min, expert_all_layers);
  EXPECT_DOUBLE_EQ(c.ep.weight_bytes_rank_max - uneven.ep.weight_bytes_rank_max, -2 * expert_all_layers);
  EXPECT_DOUBLE_EQ(c.ep.weight_bytes_rank_max, c.ep.weight_bytes_rank_min);  // 8 experts on 8 ranks
  EXPECT_THROW(cost(m, 0, 1, 1), UsageError);
  EXPECT_THROW(cost(m, 16, 0, 1), UsageError);
}

TEST(Cost, WeightFormatsAndFiguresHaveFormulas) {
  const Model m = load("mixtral-8x7b");
  const Cost c = cost(m, 4096);
  const ParamCounts counts = count_params(m.spec, m.reg);
  EXPECT_DOUBLE_EQ(c.weights.bf16, 2.0 * counts.total_params);
  EXPECT_DOUBLE_EQ(c.weights.checkpoint, 2.0 * counts.total_params);
  EXPECT_LT(c.weights.fp8, 0.6 * c.weights.bf16);
  EXPECT_LT(c.weights.int4, c.weights.fp8);
  EXPECT_GE(c.figures.size(), 10u);
  for (const Figure& f : c.figures) EXPECT_FALSE(f.formula.empty()) << f.key;
}

TEST(Cost, DeepSeekV4CompressedAttention) {
  const Model m = load("deepseek-v4-flash");
  const Cost c = cost(m, 65536);
  // Per layer: window 128 x 512, plus L/ratio x 512 compressed, plus L/4 x 128 indexer keys (CSA).
  const double L = 65536, d = 512;
  const double want = 2 * (2 * 128 * d + 21 * (128 * d + L / 4 * d + L / 4 * 128) + 20 * (128 * d + L / 128 * d));
  EXPECT_DOUBLE_EQ(c.kv.bytes_at_context, want);
  EXPECT_GT(c.decode_attention_flops, 0);
}

}  // namespace
}  // namespace moe
