// ModelSpec parsing: dialect normalization per family, unknown keys listed, and bad inputs
// (non-JSON, wrong types, missing fields, unknown family, negative sizes, top-k > experts,
// inconsistent head dims ...) each a clear moe::Error naming the problem.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/temp_folder.h"
#include "spec/catalog.h"
#include "spec/model_spec.h"
#include "util/error.h"

namespace moe {
namespace {

nlohmann::json tiny_mixtral() {
  return {{"model_type", "mixtral"},  {"num_hidden_layers", 2},   {"hidden_size", 64},
          {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"intermediate_size", 128},
          {"num_local_experts", 4},   {"num_experts_per_tok", 2}, {"vocab_size", 100}};
}

// Parsing must throw moe::Error whose message contains every fragment.
void expect_error(const nlohmann::json& cfg, std::vector<std::string> fragments) {
  try {
    parse_model_spec(cfg, "bad.json");
    ADD_FAILURE() << "no error for " << cfg.dump();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[spec] bad.json"), std::string::npos) << msg;
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

std::string write_temp(const std::string& name, const std::string& text) {
  static const testing::ProcessTempFolder folder("moe_spec_test");
  const auto path = folder / name;
  std::ofstream(path) << text;
  return path.string();
}

TEST(ModelSpec, NormalizesExpertDialects) {
  auto get = [](const char* name) {
    const CatalogEntry* e = find_catalog_entry(name);
    return parse_model_spec(e->config, e->name);
  };
  const ModelSpec dbrx = get("dbrx"), qwen = get("qwen2-57b-a14b"), ds = get("deepseek-v3"), oss = get("gpt-oss-20b");
  EXPECT_EQ(dbrx.n_expert, 16);
  EXPECT_EQ(dbrx.n_expert_used, 4);
  EXPECT_EQ(dbrx.n_head_kv, 8);
  EXPECT_EQ(dbrx.clip_qkv, 8);
  EXPECT_EQ(qwen.n_expert, 64);
  EXPECT_EQ(qwen.n_ff_shared, 20480);
  EXPECT_TRUE(qwen.shared_expert_gate);
  EXPECT_EQ(ds.n_expert, 256);
  EXPECT_EQ(ds.n_moe_layers(), 58);
  EXPECT_EQ(ds.n_mtp_layers, 1);
  EXPECT_TRUE(ds.is_mla);
  EXPECT_EQ(ds.router.scoring, ScoringFunc::kSigmoid);
  EXPECT_EQ(ds.router.topk_method, TopkMethod::kNoAuxTc);
  EXPECT_EQ(ds.router.n_group, 8);
  EXPECT_EQ(ds.quant.method, QuantMethod::kFp8);
  EXPECT_EQ(ds.rope.type, RopeType::kYarn);
  EXPECT_DOUBLE_EQ(ds.rope.factor, 40);
  EXPECT_EQ(oss.n_expert_used, 4);
  EXPECT_EQ(oss.activation, Activation::kSwigluClamped);
  EXPECT_DOUBLE_EQ(oss.swiglu_limit, 7.0);
  EXPECT_EQ(oss.layers[0].attention, AttentionKind::kSliding);
  EXPECT_EQ(oss.layers[0].window, 128);
  EXPECT_EQ(oss.layers[1].attention, AttentionKind::kFull);
  EXPECT_EQ(oss.quant.method, QuantMethod::kMxfp4);
  const ModelSpec v4 = get("deepseek-v4-flash");
  EXPECT_EQ(v4.layers[0].attention, AttentionKind::kSliding);
  EXPECT_EQ(v4.layers[2].compress_ratio, 4);
  EXPECT_EQ(v4.layers[3].compress_ratio, 128);
  EXPECT_TRUE(v4.layers[2].hash_routed);
  EXPECT_FALSE(v4.layers[3].hash_routed);
  EXPECT_EQ(v4.router.scoring, ScoringFunc::kSqrtSoftplus);
  const ModelSpec l4 = get("llama-4-scout");
  EXPECT_EQ(l4.layers[0].attention, AttentionKind::kChunked);
  EXPECT_EQ(l4.layers[3].attention, AttentionKind::kFull);  // every 4th layer is NoPE, full attention
  EXPECT_FALSE(l4.layers[3].use_rope);
  const ModelSpec glm = get("glm-4.5-air");
  EXPECT_FALSE(glm.layers[0].is_moe);
  EXPECT_TRUE(glm.layers[1].is_moe);
  EXPECT_DOUBLE_EQ(glm.rope.partial_rotary_factor, 0.5);
}

TEST(ModelSpec, MoeLayerPlacementDialects) {
  nlohmann::json q = {{"model_type", "qwen3_moe"}, {"num_hidden_layers", 6},
                      {"hidden_size", 32},         {"num_attention_heads", 4},
                      {"num_key_value_heads", 2},  {"head_dim", 8},
                      {"intermediate_size", 64},   {"moe_intermediate_size", 16},
                      {"num_experts", 8},          {"num_experts_per_tok", 2},
                      {"vocab_size", 50},          {"decoder_sparse_step", 2},
                      {"mlp_only_layers", {3}}};
  const ModelSpec s = parse_model_spec(q, "q");
  std::vector<bool> moe;
  for (const auto& l : s.layers) moe.push_back(l.is_moe);
  EXPECT_EQ(moe, (std::vector<bool>{false, true, false, false, false, true}));
  nlohmann::json d = q;
  d = {{"model_type", "deepseek"}, {"num_hidden_layers", 6},     {"hidden_size", 32},
       {"num_attention_heads", 4}, {"intermediate_size", 64},    {"moe_intermediate_size", 16},
       {"n_routed_experts", 8},    {"num_experts_per_tok", 2},   {"n_shared_experts", 2},
       {"vocab_size", 50},         {"first_k_dense_replace", 1}, {"moe_layer_freq", 2}};
  const ModelSpec ds = parse_model_spec(d, "d");
  moe.clear();
  for (const auto& l : ds.layers) moe.push_back(l.is_moe);
  EXPECT_EQ(moe, (std::vector<bool>{false, false, true, false, true, false}));
  EXPECT_EQ(ds.n_ff_shared, 32);
}

TEST(ModelSpec, UnknownKeysAreListedNotIgnored) {
  nlohmann::json c = tiny_mixtral();
  c["my_new_feature"] = 3;
  c["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}, {"shiny", 1}};
  const ModelSpec s = parse_model_spec(c, "c");
  EXPECT_EQ(s.unknown_keys, (std::vector<std::string>{"my_new_feature", "rope_scaling.shiny"}));
  EXPECT_TRUE(parse_model_spec(tiny_mixtral(), "ok").unknown_keys.empty());
}

TEST(ModelSpec, BadInputsAreClearErrors) {
  auto with = [](const char* key, nlohmann::json v) {
    nlohmann::json c = tiny_mixtral();
    if (v.is_discarded())
      c.erase(key);
    else
      c[key] = v;
    return c;
  };
  const nlohmann::json drop(nlohmann::json::value_t::discarded);
  expect_error(nlohmann::json::array({1, 2}), {"expected a JSON object"});
  expect_error(with("model_type", drop), {"missing required field \"model_type\"", "mixtral", "deepseek_v3"});
  expect_error(with("model_type", "gpt2"), {"unsupported model_type \"gpt2\"", "supported:", "qwen3_moe", "dbrx"});
  expect_error(with("model_type", 7), {"\"model_type\"", "expected a string"});
  expect_error(with("num_hidden_layers", drop), {"missing required field \"num_hidden_layers\""});
  expect_error(with("hidden_size", "4096"), {"\"hidden_size\"", "expected a non-negative integer", "string"});
  expect_error(with("intermediate_size", -1), {"\"intermediate_size\"", "non-negative integer, found -1"});
  expect_error(with("num_hidden_layers", 2.5), {"\"num_hidden_layers\"", "non-negative integer"});
  expect_error(with("num_local_experts", true), {"\"num_local_experts\"", "boolean"});
  expect_error(with("num_experts_per_tok", 5), {"top-k 5 is larger than the number of experts 4"});
  expect_error(with("num_attention_heads", 0), {"\"num_attention_heads\"", "at least 1"});
  expect_error(with("num_key_value_heads", 3), {"not a multiple of num_key_value_heads 3"});
  expect_error(with("hidden_size", 66), {"inconsistent head dims", "66", "num_attention_heads 4"});
  expect_error(with("vocab_size", 0), {"vocab_size is 0"});
  expect_error(with("hidden_act", "relu6"), {"\"hidden_act\"", "relu6"});
  expect_error(with("rope_scaling", {{"type", "weird"}}), {"rope_scaling.type", "weird"});
  expect_error(with("rope_scaling", "yarn"), {"\"rope_scaling\"", "expected an object"});
  expect_error(with("num_experts_per_tok", 0), {"top-k) is 0"});
  nlohmann::json oss = find_catalog_entry("gpt-oss-20b")->config;
  oss["experts_per_token"] = 2;
  expect_error(oss, {"experts_per_token", "disagrees with num_experts_per_tok 4"});
  oss = find_catalog_entry("gpt-oss-20b")->config;
  oss["layer_types"].erase(0);
  expect_error(oss, {"layer_types", "23 entries", "24"});
  nlohmann::json v4 = find_catalog_entry("deepseek-v4-flash")->config;
  v4["compress_ratios"][5] = 1;
  expect_error(v4, {"compress_ratios[5]", "expected 0, 4 or an HCA ratio of at least 2, found 1"});
  v4 = find_catalog_entry("deepseek-v4-flash")->config;
  v4["o_groups"] = 7;
  expect_error(v4, {"o_groups", "does not divide num_attention_heads 64"});
  nlohmann::json ds = find_catalog_entry("deepseek-v3")->config;
  ds["n_group"] = 7;
  expect_error(ds, {"not divisible by n_group 7"});
  ds = find_catalog_entry("deepseek-v3")->config;
  ds.erase("kv_lora_rank");
  expect_error(ds, {"missing required field \"kv_lora_rank\""});
  nlohmann::json dbrx = find_catalog_entry("dbrx")->config;
  dbrx["tie_word_embeddings"] = true;  // DbrxConfig rejects it
  expect_error(dbrx, {"\"tie_word_embeddings\"", "DBRX"});
  dbrx = find_catalog_entry("dbrx")->config;
  dbrx["ffn_config"]["moe_normalize_expert_weights"] = 2;
  expect_error(dbrx, {"\"ffn_config.moe_normalize_expert_weights\"", "found 2"});
  dbrx = find_catalog_entry("dbrx")->config;
  dbrx["ffn_config"]["moe_top_k"] = 32;
  expect_error(dbrx, {"top-k 32 is larger than the number of experts 16"});
}

// A config written by transformers' DeepseekV3Config.save_pretrained: no topk_method, no scoring_func,
// head_dim = qk_rope_head_dim and qk_head_dim written. Its modeling code always routes with sigmoid,
// e_score_correction_bias and top-2-sum group limiting.
nlohmann::json transformers_deepseek_v3() {
  return {{"model_type", "deepseek_v3"},
          {"architectures", {"DeepseekV3ForCausalLM"}},
          {"vocab_size", 128},
          {"hidden_size", 32},
          {"intermediate_size", 48},
          {"moe_intermediate_size", 8},
          {"num_hidden_layers", 3},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 4},
          {"n_shared_experts", 1},
          {"n_routed_experts", 8},
          {"routed_scaling_factor", 2.5},
          {"kv_lora_rank", 16},
          {"q_lora_rank", 16},
          {"qk_rope_head_dim", 8},
          {"v_head_dim", 8},
          {"qk_nope_head_dim", 8},
          {"qk_head_dim", 16},
          {"head_dim", 8},
          {"n_group", 4},
          {"topk_group", 2},
          {"num_experts_per_tok", 2},
          {"first_k_dense_replace", 1},
          {"norm_topk_prob", true},
          {"rope_interleave", true},
          {"pretraining_tp", 1},
          {"tie_word_embeddings", false},
          {"rope_theta", 10000.0},
          {"rope_scaling", nullptr},
          {"torch_dtype", "float32"},
          {"transformers_version", "4.56.0"}};
}

TEST(ModelSpec, DeepseekV3AsTransformersWritesIt) {
  const ModelSpec s = parse_model_spec(transformers_deepseek_v3(), "t.json");
  EXPECT_TRUE(s.unknown_keys.empty()) << s.unknown_keys.front();
  EXPECT_EQ(s.router.scoring, ScoringFunc::kSigmoid);
  EXPECT_EQ(s.router.topk_method, TopkMethod::kNoAuxTc);
  EXPECT_TRUE(s.router.has_score_bias);
  EXPECT_EQ(s.router.n_group, 4);
  EXPECT_DOUBLE_EQ(s.router.routed_scaling_factor, 2.5);
  EXPECT_EQ(s.n_mtp_layers, 0);  // transformers has no MTP layer
  EXPECT_EQ(s.head_dim, 16);
  // Only the architecture keys: every other choice is DeepseekV3Config's default (DeepSeek-V3 itself).
  nlohmann::json bare = {{"model_type", "deepseek_v3"}, {"vocab_size", 128},          {"hidden_size", 32},
                         {"intermediate_size", 48},     {"moe_intermediate_size", 8}, {"num_hidden_layers", 5},
                         {"num_attention_heads", 4},    {"n_routed_experts", 16},     {"num_experts_per_tok", 4},
                         {"kv_lora_rank", 16},          {"qk_rope_head_dim", 8},      {"v_head_dim", 8},
                         {"qk_nope_head_dim", 8}};
  const ModelSpec d = parse_model_spec(bare, "bare.json");
  EXPECT_EQ(d.router.scoring, ScoringFunc::kSigmoid);
  EXPECT_EQ(d.router.topk_method, TopkMethod::kNoAuxTc);
  EXPECT_EQ(d.router.n_group, 8);
  EXPECT_EQ(d.router.topk_group, 4);
  EXPECT_TRUE(d.router.norm_topk_prob);
  EXPECT_DOUBLE_EQ(d.router.routed_scaling_factor, 2.5);
  EXPECT_EQ(d.n_expert_shared, 1);
  EXPECT_EQ(d.mla.q_lora_rank, 1536);
  EXPECT_EQ(d.n_moe_layers(), 2);  // first_k_dense_replace 3
  bare["q_lora_rank"] = nullptr;   // null: a plain q_proj (DeepSeek-V2-Lite style)
  bare["n_shared_experts"] = nullptr;
  const ModelSpec n = parse_model_spec(bare, "null.json");
  EXPECT_EQ(n.mla.q_lora_rank, 0);
  EXPECT_EQ(n.n_expert_shared, 0);
  // DeepSeek-V2's class defaults: softmax, greedy, no groups, two shared experts, no dense layers.
  bare["model_type"] = "deepseek_v2";
  bare.erase("n_shared_experts");
  const ModelSpec v2 = parse_model_spec(bare, "v2.json");
  EXPECT_EQ(v2.router.scoring, ScoringFunc::kSoftmax);
  EXPECT_EQ(v2.router.topk_method, TopkMethod::kGreedy);
  EXPECT_FALSE(v2.router.has_score_bias);
  EXPECT_FALSE(v2.router.norm_topk_prob);
  EXPECT_EQ(v2.n_expert_shared, 2);
  EXPECT_EQ(v2.n_moe_layers(), 5);
}

TEST(ModelSpec, DeepseekV3ContradictionsNameTheField) {
  nlohmann::json c = transformers_deepseek_v3();
  c["scoring_func"] = "softmax";
  expect_error(c, {"\"scoring_func\"", "deepseek_v3 always scores with sigmoid", "softmax"});
  c = transformers_deepseek_v3();
  c["topk_method"] = "greedy";
  expect_error(c, {"\"topk_method\"", "noaux_tc", "greedy"});
  c = transformers_deepseek_v3();
  c["qk_head_dim"] = 24;
  expect_error(c, {"\"qk_head_dim\"", "24 contradicts", "16"});
  c = transformers_deepseek_v3();
  c["head_dim"] = 12;
  expect_error(c, {"\"head_dim\"", "12"});
  c = transformers_deepseek_v3();
  c.erase("n_group");
  c.erase("topk_group");
  c["n_routed_experts"] = 12;
  expect_error(c, {"\"n_group\"", "absent", "default 8", "n_routed_experts 12"});
  c = transformers_deepseek_v3();
  c["model_type"] = "kimi_k2";
  c["scoring_func"] = "sqrtsoftplus";
  expect_error(c, {"\"scoring_func\"", "kimi_k2"});
}

TEST(ModelSpec, FileErrorsNameTheFile) {
  const std::string bad = write_temp("notjson.json", "{\"model_type\": \"mixtral\", oops}");
  try {
    load_model_spec(bad);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_model_spec("/nonexistent/dir/config.json"), Error);
  const std::string good = write_temp("good.json", tiny_mixtral().dump());
  EXPECT_EQ(load_model_spec(good).n_expert, 4);
  // Fuzzing finding (fuzz/model_spec_fuzz.cc): a field nested 200,000 levels deep overflowed the stack
  // when the error message printed it; nesting is checked on the text first.
  try {
    parse_model_spec_text(R"({"model_type": "mixtral", "num_hidden_layers": )" + std::string(200000, '[') +
                              std::string(200000, ']') + "}",
                          "deep.json");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("deep.json: JSON nests 200001 levels deep"), std::string::npos) << e.what();
  }
  EXPECT_EQ(parse_model_spec_text(tiny_mixtral().dump(), "tiny").n_expert, 4);
  // Fuzzing finding: a number beyond a double ("1e99999") threw nlohmann's out_of_range, not a parse_error.
  EXPECT_THROW(parse_model_spec_text(R"({"model_type": "mixtral", "num_hidden_layers": 1e99999})", "big.json"), Error);
  // A model folder whose config.json is a folder: named as such, not "not valid JSON".
  const auto folder = std::filesystem::temp_directory_path() / ("moe_spec_folder_" + std::to_string(::getpid()));
  std::filesystem::create_directories(folder / "config.json");
  try {
    load_model_spec(folder.string());
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("config.json: is a folder; expected a file"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(folder);
}

TEST(ModelSpec, SupportedTypesCoverTheIssueFamilies) {
  const auto types = supported_model_types();
  for (const char* t :
       {"mixtral", "qwen2_moe", "qwen3_moe", "deepseek", "deepseek_v2", "deepseek_v3", "kimi_k2", "deepseek_v4",
        "olmoe", "gpt_oss", "dbrx", "glm4_moe", "llama4", "llama", "mistral", "qwen2", "qwen3", "phimoe"})
    EXPECT_NE(std::find(types.begin(), types.end(), t), types.end()) << t;
}

}  // namespace
}  // namespace moe
