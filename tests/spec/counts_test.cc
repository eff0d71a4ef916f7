// Every catalog config reproduces its published total and activated counts (to the printed
// precision, in the convention its card uses); DeepSeek-V4-Flash to the exact integers of the
// notes; the toy 17B/5B model; dense vs checkpoint registries count the same parameters.
#include <gtest/gtest.h>

#include <map>

#include "spec/accounting.h"
#include "spec/catalog.h"
#include "spec/model_spec.h"
#include "spec/tensor_registry.h"

namespace moe {
namespace {

struct Counted {
  ModelSpec spec;
  TensorRegistry reg;
  ParamCounts counts;
};

Counted count(const std::string& name) {
  const CatalogEntry* e = find_catalog_entry(name);
  EXPECT_NE(e, nullptr) << name;
  Counted c{parse_model_spec(e->config, e->name), {}, {}};
  c.reg = build_registry(c.spec);
  c.counts = count_params(c.spec, c.reg);
  return c;
}

int64_t field(const ParamCounts& c, const std::string& convention) {
  static const std::map<std::string, int64_t ParamCounts::*> fields = {
      {"total_params", &ParamCounts::total_params},
      {"total_params_with_mtp", &ParamCounts::total_params_with_mtp},
      {"total_params_non_embedding", &ParamCounts::total_params_non_embedding},
      {"checkpoint_elements", &ParamCounts::checkpoint_elements},
      {"activated_params", &ParamCounts::activated_params},
      {"activated_params_no_embedding", &ParamCounts::activated_params_no_embedding},
      {"activated_params_non_embedding", &ParamCounts::activated_params_non_embedding},
  };
  auto it = fields.find(convention);
  EXPECT_NE(it, fields.end()) << convention;
  return it == fields.end() ? -1 : c.*(it->second);
}

void expect_rounds_to(int64_t computed, const std::string& published, const std::string& what, bool truncates = false,
                      double tolerance = 0) {
  EXPECT_TRUE(matches_published(static_cast<double>(computed), published, truncates, tolerance))
      << what << ": computed " << format_count(static_cast<double>(computed)) << " (" << computed
      << ") does not round to published " << published;
}

TEST(Counts, EveryCatalogModelMatchesItsPublishedNumbers) {
  ASSERT_EQ(catalog().size(), 23u);
  for (const CatalogEntry& e : catalog()) {
    SCOPED_TRACE(e.name);
    const ModelSpec spec = parse_model_spec(e.config, e.name);
    EXPECT_TRUE(spec.unknown_keys.empty()) << e.name << " unknown key " << spec.unknown_keys.front();
    const ParamCounts c = count_params(spec, build_registry(spec));
    const bool t = e.truncates;
    const double tol = e.tolerance;
    if (!e.total_includes_vision)
      expect_rounds_to(field(c, e.total_convention), e.published_total, e.name + " total", t, tol);
    if (!e.published_activated.empty())  // Grok-1 publishes only a fraction (25%)
      expect_rounds_to(field(c, e.activated_convention), e.published_activated, e.name + " activated", t, tol);
    if (!e.published_total_with_mtp.empty())
      expect_rounds_to(field(c, e.total_with_mtp_convention), e.published_total_with_mtp, e.name + " with MTP", t, tol);
    if (!e.published_total_checkpoint.empty())
      expect_rounds_to(c.total_params_with_mtp, e.published_total_checkpoint, e.name + " checkpoint total", t, tol);
    if (!e.published_total_non_embedding.empty())
      expect_rounds_to(c.total_params_non_embedding, e.published_total_non_embedding, e.name + " non-embedding", t,
                       tol);
  }
}

TEST(Counts, PublishedFigureForms) {
  EXPECT_TRUE(matches_published(46.7e9, "46.7B", false));
  EXPECT_FALSE(matches_published(228.69e9, "230B", false));
  EXPECT_TRUE(matches_published(228.69e9, "~230B", false));  // approximate: within 1%
  EXPECT_FALSE(matches_published(226.0e9, "~230B", false));
  EXPECT_TRUE(matches_published(142.77e9, "142B", true));
  EXPECT_THROW(parse_published("~"), std::exception);
}

TEST(Counts, MixtralBreakdown) {
  const Counted m = count("mixtral-8x7b");
  EXPECT_EQ(m.counts.total_params, 46702792704);
  EXPECT_EQ(m.counts.activated_params, 12879925248);
  EXPECT_EQ(m.counts.total_params_with_mtp, m.counts.total_params);
  // 8 experts of 3 x 4096 x 14336 in 32 layers, 2 active.
  EXPECT_EQ(m.counts.routed_params, 32LL * 8 * 3 * 4096 * 14336);
  EXPECT_EQ(m.counts.routed_activated, 32LL * 2 * 3 * 4096 * 14336);
  EXPECT_EQ(m.reg.find("model.layers.31.block_sparse_moe.experts.7.w3.weight")->shape,
            (std::vector<int64_t>{14336, 4096}));
}

TEST(Counts, GptOssMatchesTheCardTable) {
  const Counted g = count("gpt-oss-20b");
  int64_t mlp = 0, attn = 0, emb = 0;
  for (const RoleCount& r : g.counts.breakdown) {
    if (r.role == Role::kRoutedExpert || r.role == Role::kRouter) mlp += r.params;
    if (r.role == Role::kAttention) attn += r.params;
    if (r.role == Role::kEmbedding || r.role == Role::kLmHead) emb += r.params;
  }
  expect_rounds_to(mlp, "19.12B", "gpt-oss MLP");
  expect_rounds_to(attn, "0.64B", "gpt-oss attention");
  expect_rounds_to(emb, "1.16B", "gpt-oss embed+unembed");
  // The MXFP4 checkpoint stores blocks + scales; the dense registry stores bf16 [E, D, 2F].
  const TensorRegistry dense = build_registry(g.spec, {WeightFormat::kDense});
  EXPECT_EQ(dense.find("model.layers.0.mlp.experts.gate_up_proj")->shape, (std::vector<int64_t>{32, 2880, 5760}));
  EXPECT_EQ(g.reg.find("model.layers.0.mlp.experts.gate_up_proj_blocks")->shape,
            (std::vector<int64_t>{32, 5760, 90, 16}));
  EXPECT_EQ(count_params(g.spec, dense).total_params, g.counts.total_params);
}

TEST(Counts, DeepSeekV4FlashExactIntegers) {
  const Counted v = count("deepseek-v4-flash");
  EXPECT_EQ(v.counts.total_params, 284332240471);
  EXPECT_EQ(v.counts.activated_params_no_embedding, 13270101591);
  EXPECT_EQ(v.counts.activated_params, 13799632471);
  EXPECT_EQ(v.counts.activated_params_non_embedding, 12740570711);
  EXPECT_EQ(v.counts.mtp_params, 6610048891);
  EXPECT_EQ(v.counts.total_params_with_mtp, 290942289362);
  EXPECT_EQ(v.counts.mtp_activated_params, 318592891);
  // The published checkpoint: 69,187 tensors, 159,609,485,896 bytes, and its dtype histogram.
  EXPECT_EQ(v.reg.size(), 69187u);
  EXPECT_EQ(v.counts.bytes_with_mtp, 159609485896);
  EXPECT_EQ(v.counts.checkpoint_elements, 158069433298);  // the Hub's "model size" of V4-Flash
  std::map<DType, int> hist;
  for (const auto& t : v.reg.tensors) hist[t.dtype] += 1;
  EXPECT_EQ(hist[DType::kBF16], 433);
  EXPECT_EQ(hist[DType::kF32], 417);
  EXPECT_EQ(hist[DType::kF8E4M3], 375);
  EXPECT_EQ(hist[DType::kF8E8M0], 34167);
  EXPECT_EQ(hist[DType::kI64], 3);
  EXPECT_EQ(hist[DType::kI8], 33792);
  EXPECT_EQ(v.reg.find("layers.3.attn.compressor.ape")->shape, (std::vector<int64_t>{128, 512}));
  EXPECT_EQ(v.reg.find("layers.0.ffn.experts.0.w1.scale")->shape, (std::vector<int64_t>{2048, 128}));
  EXPECT_EQ(v.reg.find("layers.0.attn.wq_a.scale")->shape, (std::vector<int64_t>{8, 32}));
}

TEST(Counts, DeepSeekV3MtpAndFp8Scales) {
  const Counted v = count("deepseek-v3");
  const TensorEntry* s = v.reg.find("model.layers.3.mlp.experts.0.gate_proj.weight_scale_inv");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->role, Role::kQuantScale);
  EXPECT_EQ(s->n_params, 0);
  EXPECT_EQ(s->shape, (std::vector<int64_t>{16, 56}));
  EXPECT_EQ(v.reg.find("model.layers.0.mlp.gate_proj.weight")->dtype, DType::kF8E4M3);
  EXPECT_EQ(v.reg.find("model.layers.3.mlp.gate.weight")->dtype, DType::kBF16);
  ASSERT_NE(v.reg.find("model.layers.61.eh_proj.weight"), nullptr);
  EXPECT_TRUE(v.reg.find("model.layers.61.shared_head.head.weight")->is_mtp);
  EXPECT_EQ(v.reg.find("model.layers.3.mlp.gate.e_score_correction_bias")->dtype, DType::kF32);
  EXPECT_EQ(v.reg.find("model.layers.0.self_attn.kv_a_proj_with_mqa.weight")->shape, (std::vector<int64_t>{576, 7168}));
  EXPECT_EQ(v.reg.find("model.layers.0.self_attn.kv_b_proj.weight")->shape, (std::vector<int64_t>{32768, 512}));
  EXPECT_EQ(v.reg.find("model.layers.0.mlp.experts.0.gate_proj.weight"), nullptr);  // dense-first layer
  // The card's 37B is the no-embedding count (36.6B incl. the head per the weights README).
  EXPECT_EQ(v.counts.activated_params_no_embedding, 36625618432);
  EXPECT_EQ(v.counts.total_params, 671026419200);
  // The Hub's safetensors metadata for deepseek-ai/DeepSeek-V3: 684,531,386,000 stored elements
  // (BF16 3,918,786,560; F8_E4M3 680,571,043,840; F32 41,555,600).
  EXPECT_EQ(v.counts.checkpoint_elements, 684531386000);
  std::map<DType, int64_t> elems;
  for (const auto& t : v.reg.tensors) elems[t.dtype] += t.numel();
  EXPECT_EQ(elems[DType::kBF16], 3918786560);
  EXPECT_EQ(elems[DType::kF8E4M3], 680571043840);
  EXPECT_EQ(elems[DType::kF32], 41555600);
  const TensorRegistry dense = build_registry(v.spec, {WeightFormat::kDense});
  EXPECT_EQ(count_params(v.spec, dense).total_params_with_mtp, v.counts.total_params_with_mtp);
}

TEST(Counts, Llama4ScoutStatesTheVisionGap) {
  const Counted l = count("llama-4-scout");
  EXPECT_TRUE(l.spec.multimodal_wrapper);
  ASSERT_FALSE(l.spec.notes.empty());
  // Text model only: 107.77B; the card's 109B adds the vision tower we cannot count from text_config.
  expect_rounds_to(l.counts.total_params, "107.77B", "llama4 text total");
  const double gap = 109e9 - static_cast<double>(l.counts.total_params);
  EXPECT_GT(gap, 0.5e9);
  EXPECT_LT(gap, 2.0e9);
  expect_rounds_to(l.counts.activated_params, "17B", "llama4 activated");
  EXPECT_NE(l.reg.find("language_model.model.layers.0.feed_forward.experts.gate_up_proj"), nullptr);
  EXPECT_NE(l.reg.find("language_model.lm_head.weight"), nullptr);
}

// The seed's toy: 1B of attention + 8 experts of 2B, top-2 => 17B total, 5B activated.
TEST(Counts, ToyModel17BTotal5BActivated) {
  const nlohmann::json cfg = {{"model_type", "mixtral"},    {"num_hidden_layers", 1},      {"hidden_size", 8192},
                              {"num_attention_heads", 318}, {"num_key_value_heads", 159},  {"head_dim", 128},
                              {"intermediate_size", 81380}, {"num_local_experts", 8},      {"num_experts_per_tok", 2},
                              {"vocab_size", 256},          {"tie_word_embeddings", false}};
  const ModelSpec s = parse_model_spec(cfg, "toy");
  const ParamCounts c = count_params(s, build_registry(s));
  int64_t attn = 0, one_expert = 0;
  for (const RoleCount& r : c.breakdown)
    if (r.role == Role::kAttention) attn = r.params;
  one_expert = c.routed_params / 8;
  expect_rounds_to(attn, "1.000B", "toy attention");
  expect_rounds_to(one_expert, "2.000B", "toy expert");
  expect_rounds_to(c.total_params, "17.00B", "toy total");
  expect_rounds_to(c.activated_params, "5.00B", "toy activated");
}

TEST(Counts, TiedEmbeddingsCountOnce) {
  nlohmann::json cfg = {{"model_type", "qwen3"},    {"num_hidden_layers", 2},   {"hidden_size", 64},
                        {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 16},
                        {"intermediate_size", 128}, {"vocab_size", 1000},       {"tie_word_embeddings", true}};
  const ModelSpec s = parse_model_spec(cfg, "tied");
  const TensorRegistry reg = build_registry(s);
  EXPECT_EQ(reg.find("lm_head.weight"), nullptr);
  const ParamCounts c = count_params(s, reg);
  cfg["tie_word_embeddings"] = false;
  const ModelSpec u = parse_model_spec(cfg, "untied");
  const ParamCounts cu = count_params(u, build_registry(u));
  EXPECT_EQ(cu.total_params - c.total_params, 1000 * 64);
  EXPECT_EQ(c.activated_params, c.total_params);                   // dense
  EXPECT_EQ(c.activated_params_no_embedding, c.activated_params);  // the tied matrix is still the head
  EXPECT_EQ(c.activated_params_non_embedding, c.activated_params - 1000 * 64);
}

}  // namespace
}  // namespace moe
