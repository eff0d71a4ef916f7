// TensorRegistry: exact Hugging Face names and shapes per family, roles, expert indices, and
// that the dense and checkpoint layouts hold the same parameters.
#include <gtest/gtest.h>

#include "spec/accounting.h"
#include "spec/catalog.h"
#include "spec/tensor_registry.h"

namespace moe {
namespace {

using Shape = std::vector<int64_t>;

ModelSpec catalog_spec(const char* name) {
  const CatalogEntry* e = find_catalog_entry(name);
  return parse_model_spec(e->config, e->name);
}

void expect_tensor(const TensorRegistry& reg, const std::string& name, const Shape& shape, Role role) {
  const TensorEntry* t = reg.find(name);
  ASSERT_NE(t, nullptr) << name;
  EXPECT_EQ(t->shape, shape) << name;
  EXPECT_EQ(t->role, role) << name << " is " << role_name(t->role);
}

TEST(Registry, Qwen2MoeSharedExpertAndGate) {
  const TensorRegistry r = build_registry(catalog_spec("qwen2-57b-a14b"));
  expect_tensor(r, "model.layers.0.mlp.gate.weight", {64, 3584}, Role::kRouter);
  expect_tensor(r, "model.layers.0.mlp.experts.63.down_proj.weight", {3584, 2560}, Role::kRoutedExpert);
  expect_tensor(r, "model.layers.0.mlp.shared_expert.gate_proj.weight", {20480, 3584}, Role::kSharedExpert);
  expect_tensor(r, "model.layers.0.mlp.shared_expert_gate.weight", {1, 3584}, Role::kSharedExpert);
  expect_tensor(r, "model.layers.27.self_attn.k_proj.bias", {512}, Role::kAttention);
  EXPECT_EQ(r.find("model.layers.0.self_attn.o_proj.bias"), nullptr);
  EXPECT_EQ(r.find("model.layers.0.mlp.experts.5.up_proj.weight")->expert, 5);
  EXPECT_EQ(r.find("model.layers.4.mlp.experts.5.up_proj.weight")->layer, 4);
}

TEST(Registry, OlmoeFullWidthQkNorm) {
  const TensorRegistry r = build_registry(catalog_spec("olmoe-1b-7b"));
  expect_tensor(r, "model.layers.0.self_attn.q_norm.weight", {2048}, Role::kNorm);
  expect_tensor(r, "model.layers.0.self_attn.k_norm.weight", {2048}, Role::kNorm);
  expect_tensor(r, "model.layers.15.mlp.experts.63.gate_proj.weight", {1024, 2048}, Role::kRoutedExpert);
}

TEST(Registry, Qwen3MoePerHeadQkNorm) {
  const TensorRegistry r = build_registry(catalog_spec("qwen3-30b-a3b"));
  expect_tensor(r, "model.layers.0.self_attn.q_norm.weight", {128}, Role::kNorm);
  expect_tensor(r, "model.layers.0.self_attn.q_proj.weight", {4096, 2048}, Role::kAttention);
  expect_tensor(r, "model.layers.0.self_attn.o_proj.weight", {2048, 4096}, Role::kAttention);
  EXPECT_EQ(r.find("model.layers.0.mlp.shared_expert.gate_proj.weight"), nullptr);
}

TEST(Registry, DbrxFusedExperts) {
  const ModelSpec s = catalog_spec("dbrx");
  const TensorRegistry r = build_registry(s);
  expect_tensor(r, "transformer.wte.weight", {100352, 6144}, Role::kEmbedding);
  expect_tensor(r, "transformer.blocks.0.norm_attn_norm.attn.Wqkv.weight", {(48 + 16) * 128, 6144}, Role::kAttention);
  expect_tensor(r, "transformer.blocks.39.ffn.experts.mlp.w2", {16 * 10752, 6144}, Role::kRoutedExpert);
  expect_tensor(r, "transformer.blocks.0.ffn.router.layer.weight", {16, 6144}, Role::kRouter);
  expect_tensor(r, "transformer.norm_f.weight", {6144}, Role::kNorm);
  EXPECT_EQ(r.find("transformer.blocks.0.ffn.experts.mlp.v1")->n_experts_packed, 16);
}

TEST(Registry, GlmDenseFirstLayerAndMtp) {
  const TensorRegistry r = build_registry(catalog_spec("glm-4.5-air"));
  expect_tensor(r, "model.layers.0.mlp.gate_proj.weight", {10944, 4096}, Role::kDenseFfn);
  expect_tensor(r, "model.layers.1.mlp.shared_experts.down_proj.weight", {4096, 1408}, Role::kSharedExpert);
  expect_tensor(r, "model.layers.1.mlp.gate.e_score_correction_bias", {128}, Role::kRouter);
  expect_tensor(r, "model.layers.1.self_attn.q_proj.bias", {12288}, Role::kAttention);
  EXPECT_EQ(r.find("model.layers.1.self_attn.o_proj.bias"), nullptr);
  expect_tensor(r, "model.layers.46.eh_proj.weight", {4096, 8192}, Role::kMtp);
  EXPECT_TRUE(r.find("model.layers.46.mlp.experts.0.up_proj.weight")->is_mtp);
}

TEST(Registry, DeepSeekV2LiteWithoutQLora) {
  nlohmann::json c = find_catalog_entry("deepseek-v3")->config;
  c["model_type"] = "deepseek_v2";
  c["q_lora_rank"] = nullptr;
  c["topk_method"] = "group_limited_greedy";
  c["num_nextn_predict_layers"] = 0;
  c.erase("quantization_config");
  const ModelSpec s = parse_model_spec(c, "v2");
  const TensorRegistry r = build_registry(s);
  expect_tensor(r, "model.layers.0.self_attn.q_proj.weight", {128 * 192, 7168}, Role::kAttention);
  EXPECT_EQ(r.find("model.layers.0.self_attn.q_a_proj.weight"), nullptr);
  EXPECT_EQ(r.find("model.layers.3.mlp.gate.e_score_correction_bias"), nullptr);
  EXPECT_EQ(r.find("model.layers.3.mlp.experts.0.gate_proj.weight_scale_inv"), nullptr);
}

TEST(Registry, GptOssAndLlama4FusedExperts) {
  const TensorRegistry g = build_registry(catalog_spec("gpt-oss-20b"));
  expect_tensor(g, "model.layers.0.self_attn.sinks", {64}, Role::kAttention);
  expect_tensor(g, "model.layers.0.mlp.router.bias", {32}, Role::kRouter);
  expect_tensor(g, "model.layers.0.mlp.experts.down_proj_scales", {32, 2880, 90}, Role::kQuantScale);
  EXPECT_EQ(g.find("model.layers.0.mlp.experts.down_proj_blocks")->n_params, 32LL * 2880 * 2880);
  EXPECT_EQ(g.find("model.layers.0.self_attn.q_proj.weight")->dtype, DType::kBF16);
  const TensorRegistry l = build_registry(catalog_spec("llama-4-scout"));
  expect_tensor(l, "language_model.model.layers.5.feed_forward.router.weight", {16, 5120}, Role::kRouter);
  expect_tensor(l, "language_model.model.layers.5.feed_forward.shared_expert.up_proj.weight", {8192, 5120},
                Role::kSharedExpert);
  expect_tensor(l, "language_model.model.layers.5.feed_forward.experts.down_proj", {16, 8192, 5120},
                Role::kRoutedExpert);
}

TEST(Registry, DenseAndCheckpointLayoutsHoldTheSameParameters) {
  for (const CatalogEntry& e : catalog()) {
    const ModelSpec s = parse_model_spec(e.config, e.name);
    const ParamCounts a = count_params(s, build_registry(s));
    const ParamCounts b = count_params(s, build_registry(s, {WeightFormat::kDense, DType::kF32, true}));
    EXPECT_EQ(a.total_params_with_mtp, b.total_params_with_mtp) << e.name;
    EXPECT_EQ(a.activated_params, b.activated_params) << e.name;
    EXPECT_EQ(b.quant_scale_bytes, 0) << e.name;
  }
}

TEST(Registry, WithoutMtp) {
  const ModelSpec s = catalog_spec("deepseek-v3");
  const TensorRegistry r = build_registry(s, {WeightFormat::kCheckpoint, DType::kBF16, false});
  EXPECT_EQ(r.find("model.layers.61.eh_proj.weight"), nullptr);
  const ParamCounts c = count_params(s, r);
  EXPECT_EQ(c.total_params, c.total_params_with_mtp);
}

}  // namespace
}  // namespace moe
