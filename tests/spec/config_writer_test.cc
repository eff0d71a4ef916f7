// The config.json writer against the reader: for the families moe writes (what `moe train` saves),
// parse(write(spec)) is the same architecture as spec, starting from the real published configs;
// what a family's config class cannot say is an error naming it.
#include <gtest/gtest.h>

#include <fstream>

#include "spec/config_writer.h"
#include "spec/model_spec.h"
#include "util/error.h"

namespace moe {
namespace {

nlohmann::json real_config(const std::string& file) {
  std::ifstream f(std::string(MOE_TEST_DATA_DIR) + "/../data/models/" + file);
  return nlohmann::json::parse(f);
}

// Every architecture field the registry, the router and the trainer read.
void expect_same_architecture(const ModelSpec& a, const ModelSpec& b) {
  EXPECT_EQ(a.family, b.family);
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(a.n_layer, b.n_layer);
  EXPECT_EQ(a.d_model, b.d_model);
  EXPECT_EQ(a.n_head, b.n_head);
  EXPECT_EQ(a.n_head_kv, b.n_head_kv);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.vocab, b.vocab);
  EXPECT_EQ(a.n_ff, b.n_ff);
  EXPECT_EQ(a.n_expert, b.n_expert);
  EXPECT_EQ(a.n_expert_used, b.n_expert_used);
  EXPECT_EQ(a.n_ff_expert, b.n_ff_expert);
  EXPECT_EQ(a.n_expert_shared, b.n_expert_shared);
  EXPECT_EQ(a.n_ff_shared, b.n_ff_shared);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    EXPECT_EQ(a.layers[i].is_moe, b.layers[i].is_moe) << i;
    EXPECT_EQ(a.layers[i].attention, b.layers[i].attention) << i;
    EXPECT_EQ(a.layers[i].window, b.layers[i].window) << i;
  }
  EXPECT_EQ(a.router.scoring, b.router.scoring);
  EXPECT_EQ(a.router.topk_method, b.router.topk_method);
  EXPECT_EQ(a.router.n_group, b.router.n_group);
  EXPECT_EQ(a.router.topk_group, b.router.topk_group);
  EXPECT_EQ(a.router.norm_topk_prob, b.router.norm_topk_prob);
  EXPECT_EQ(a.router.routed_scaling_factor, b.router.routed_scaling_factor);
  EXPECT_EQ(a.router.has_score_bias, b.router.has_score_bias);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.attention_bias, b.attention_bias);
  EXPECT_EQ(a.is_mla, b.is_mla);
  EXPECT_EQ(a.mla.q_lora_rank, b.mla.q_lora_rank);
  EXPECT_EQ(a.mla.kv_lora_rank, b.mla.kv_lora_rank);
  EXPECT_EQ(a.mla.qk_nope_head_dim, b.mla.qk_nope_head_dim);
  EXPECT_EQ(a.mla.qk_rope_head_dim, b.mla.qk_rope_head_dim);
  EXPECT_EQ(a.mla.v_head_dim, b.mla.v_head_dim);
  EXPECT_EQ(a.rope.theta, b.rope.theta);
  EXPECT_EQ(a.rope.interleaved, b.rope.interleaved);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.max_position, b.max_position);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.n_mtp_layers, b.n_mtp_layers);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
}

TEST(ConfigWriter, RealConfigsRoundTrip) {
  for (const char* file : {"Qwen3-30B-A3B.json", "OLMoE-1B-7B-0924.json", "Mixtral-8x7B-v0.1.json"}) {
    SCOPED_TRACE(file);
    const ModelSpec spec = parse_model_spec(real_config(file), file);
    const nlohmann::json written = write_hf_config(spec);
    const ModelSpec back = parse_model_spec(written, "written");
    expect_same_architecture(spec, back);
    EXPECT_TRUE(back.unknown_keys.empty()) << back.unknown_keys.front();
    EXPECT_EQ(write_hf_config(back), written);  // a fixed point
  }
}

TEST(ConfigWriter, DeepseekV3WithGroupsAndMtpRoundTrips) {
  nlohmann::json j = real_config("DeepSeek-V3.json");
  j["rope_scaling"] = nullptr;  // YaRN is not written (the trainer does not build it)
  j.erase("quantization_config");
  const ModelSpec spec = parse_model_spec(j, "v3");
  EXPECT_EQ(spec.router.n_group, 8);
  EXPECT_EQ(spec.n_mtp_layers, 1);
  const ModelSpec back = parse_model_spec(write_hf_config(spec), "written");
  expect_same_architecture(spec, back);
  EXPECT_TRUE(back.unknown_keys.empty());
}

TEST(ConfigWriter, RefusesWhatTheFamilyCannotSayNamingIt) {
  auto refused = [](const nlohmann::json& j, const std::string& needle) {
    try {
      write_hf_config(parse_model_spec(j, "cfg.json"));
      ADD_FAILURE() << "written: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
    }
  };
  refused(real_config("DeepSeek-V3.json"), "quantized");
  nlohmann::json v3 = real_config("DeepSeek-V3.json");
  v3.erase("quantization_config");
  refused(v3, "rope");
  refused(real_config("gpt-oss-20b.json"), "gpt_oss");
  nlohmann::json olmoe = real_config("OLMoE-1B-7B-0924.json");
  olmoe["head_dim"] = 64;  // OLMoE derives it; 2048 / 16 = 128
  refused(olmoe, "head_dim");
}

}  // namespace
}  // namespace moe
