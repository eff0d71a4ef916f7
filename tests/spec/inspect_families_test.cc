// The families `moe inspect` counts without running them (Grok-1, MiniMax-M2, Qwen3-Next,
// Hunyuan-A13B, Ling / Bailing-MoE): their dialects, their tensor layouts, and their bad inputs.
#include <gtest/gtest.h>

#include <algorithm>

#include "spec/catalog.h"
#include "spec/model_spec.h"
#include "spec/tensor_registry.h"

namespace moe {
namespace {

nlohmann::json config_of(const char* name) {
  const CatalogEntry* e = find_catalog_entry(name);
  EXPECT_NE(e, nullptr) << name;
  return e ? e->config : nlohmann::json::object();
}

std::string error_of(const nlohmann::json& c) {
  try {
    parse_model_spec(c, "bad.json");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(InspectFamilies, Qwen3NextLayersAndTensors) {
  const ModelSpec s = parse_model_spec(config_of("qwen3-next"), "qwen3-next");
  const auto linear = std::count_if(s.layers.begin(), s.layers.end(),
                                    [](const LayerSpec& l) { return l.attention == AttentionKind::kLinear; });
  EXPECT_EQ(linear, 36);  // full attention every 4th layer
  EXPECT_EQ(s.layers[3].attention, AttentionKind::kFull);
  EXPECT_DOUBLE_EQ(s.rope.partial_rotary_factor, 0.25);
  const TensorRegistry r = build_registry(s);
  EXPECT_EQ(r.find("model.layers.0.linear_attn.in_proj_qkvz.weight")->shape, (std::vector<int64_t>{12288, 2048}));
  EXPECT_EQ(r.find("model.layers.0.linear_attn.conv1d.weight")->shape, (std::vector<int64_t>{8192, 1, 4}));
  EXPECT_EQ(r.find("model.layers.3.self_attn.q_proj.weight")->shape, (std::vector<int64_t>{8192, 2048}));
  EXPECT_NE(r.find("model.layers.3.mlp.shared_expert_gate.weight"), nullptr);
  nlohmann::json c = config_of("qwen3-next");
  c["linear_num_value_heads"] = 20;
  EXPECT_NE(error_of(c).find("linear_num_value_heads"), std::string::npos) << error_of(c);
}

TEST(InspectFamilies, HunyuanPerLayerLists) {
  const ModelSpec s = parse_model_spec(config_of("hunyuan-a13b"), "hunyuan");
  EXPECT_EQ(s.n_expert_used, 8);
  EXPECT_EQ(s.n_ff_shared, 3072);
  const TensorRegistry r = build_registry(s);
  EXPECT_NE(r.find("model.layers.0.mlp.gate.wg.weight"), nullptr);
  EXPECT_NE(r.find("model.layers.0.self_attn.query_layernorm.weight"), nullptr);
  nlohmann::json c = config_of("hunyuan-a13b");
  c["moe_topk"][5] = 2;
  EXPECT_NE(error_of(c).find("\"moe_topk\""), std::string::npos) << error_of(c);
  c = config_of("hunyuan-a13b");
  c["moe_topk"].erase(0);
  EXPECT_NE(error_of(c).find("31 entries"), std::string::npos) << error_of(c);
  c = config_of("hunyuan-a13b");
  c["use_cla"] = true;
  EXPECT_NE(error_of(c).find("\"use_cla\""), std::string::npos) << error_of(c);
}

TEST(InspectFamilies, MiniMaxM2AndGrokAndLing) {
  const ModelSpec m = parse_model_spec(config_of("minimax-m2"), "minimax");
  EXPECT_EQ(m.qk_norm, QkNorm::kFullWidth);
  EXPECT_DOUBLE_EQ(m.rope.partial_rotary_factor, 0.5);
  EXPECT_TRUE(m.router.has_score_bias);
  EXPECT_NE(build_registry(m).find("model.layers.0.block_sparse_moe.e_score_correction_bias"), nullptr);
  nlohmann::json c = config_of("minimax-m2");
  c["partial_rotary_factor"] = 0.25;
  EXPECT_NE(error_of(c).find("\"rotary_dim\""), std::string::npos) << error_of(c);
  c = config_of("minimax-m2");
  c["attn_type_list"][3] = 0;  // MiniMax-Text-01's lightning attention
  EXPECT_NE(error_of(c).find("\"attn_type_list\""), std::string::npos) << error_of(c);
  const ModelSpec g = parse_model_spec(config_of("grok-1"), "grok");
  EXPECT_TRUE(g.tie_word_embeddings);
  EXPECT_NE(build_registry(g).find("model.layers.63.moe_block.experts.7.linear_1.weight"), nullptr);
  const ModelSpec l = parse_model_spec(config_of("ling-plus"), "ling");
  const TensorRegistry lr = build_registry(l);
  EXPECT_EQ(lr.find("model.layers.0.attention.query_key_value.weight")->shape, (std::vector<int64_t>{6912, 5376}));
  EXPECT_NE(lr.find("model.word_embeddings.weight"), nullptr);
}

}  // namespace
}  // namespace moe
