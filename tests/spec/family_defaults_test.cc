// Each family's absent keys mean what its transformers configuration class defaults to: a config with
// only the architecture sizes must parse to the semantics of the class defaults (values transcribed in
// tests/reference/hf_config.py), and transformers 5's spelling (rope_parameters, dtype) parses the same
// as 4.x's (rope_theta + rope_scaling, torch_dtype).
#include <gtest/gtest.h>

#include "spec/model_spec.h"

namespace moe {
namespace {

// The sizes every Llama-style family needs, nothing else.
nlohmann::json sizes(const std::string& model_type) {
  return {{"model_type", model_type},   {"num_hidden_layers", 4}, {"hidden_size", 64},
          {"num_attention_heads", 4},   {"vocab_size", 100},      {"intermediate_size", 96},
          {"moe_intermediate_size", 16}};
}

nlohmann::json with_experts(nlohmann::json c, const char* count_key) {
  c[count_key] = 16;
  c["num_experts_per_tok"] = 2;
  return c;
}

TEST(FamilyDefaults, LlamaStyleDenseFamilies) {
  const ModelSpec llama = parse_model_spec(sizes("llama"), "llama");
  EXPECT_DOUBLE_EQ(llama.norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(llama.rope.theta, 10000);
  EXPECT_EQ(llama.head_dim, 16);
  EXPECT_FALSE(llama.tie_word_embeddings);
  const ModelSpec mistral = parse_model_spec(sizes("mistral"), "mistral");
  EXPECT_EQ(mistral.layers[0].attention, AttentionKind::kSliding);  // MistralConfig: sliding_window 4096
  EXPECT_EQ(mistral.layers[0].window, 4096);
  nlohmann::json m = sizes("mistral");
  m["sliding_window"] = nullptr;  // null: no window
  EXPECT_EQ(parse_model_spec(m, "m").layers[0].attention, AttentionKind::kFull);
  const ModelSpec qwen3 = parse_model_spec(sizes("qwen3"), "qwen3");
  EXPECT_EQ(qwen3.head_dim, 128);  // Qwen3Config: head_dim 128, not hidden / heads
  EXPECT_EQ(qwen3.qk_norm, QkNorm::kPerHead);
  EXPECT_EQ(qwen3.layers[0].attention, AttentionKind::kFull);
}

TEST(FamilyDefaults, MoeFamilies) {
  const ModelSpec mixtral = parse_model_spec(with_experts(sizes("mixtral"), "num_local_experts"), "mixtral");
  EXPECT_DOUBLE_EQ(mixtral.norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(mixtral.rope.theta, 1e6);
  EXPECT_EQ(mixtral.layers[0].attention, AttentionKind::kFull);
  const ModelSpec phimoe = parse_model_spec(with_experts(sizes("phimoe"), "num_local_experts"), "phimoe");
  EXPECT_FALSE(phimoe.attention_bias);  // PhimoeConfig: attention_bias False (the released config sets true)
  EXPECT_DOUBLE_EQ(phimoe.norm_eps, 1e-5);
  const ModelSpec q2 = parse_model_spec(with_experts(sizes("qwen2_moe"), "num_experts"), "qwen2_moe");
  EXPECT_TRUE(q2.attention_bias);
  EXPECT_FALSE(q2.router.norm_topk_prob);
  EXPECT_EQ(q2.n_ff_shared, 5632);  // Qwen2MoeConfig: shared_expert_intermediate_size 5632
  EXPECT_TRUE(q2.shared_expert_gate);
  const ModelSpec q3 = parse_model_spec(with_experts(sizes("qwen3_moe"), "num_experts"), "qwen3_moe");
  EXPECT_FALSE(q3.router.norm_topk_prob);  // Qwen3MoeConfig: False (the released configs set true)
  EXPECT_EQ(q3.head_dim, 16);
  EXPECT_EQ(q3.n_moe_layers(), 4);
  const ModelSpec olmoe = parse_model_spec(with_experts(sizes("olmoe"), "num_experts"), "olmoe");
  EXPECT_DOUBLE_EQ(olmoe.norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(olmoe.clip_qkv, 0);
  EXPECT_EQ(olmoe.qk_norm, QkNorm::kFullWidth);
}

TEST(FamilyDefaults, GptOss) {
  const ModelSpec s = parse_model_spec(with_experts(sizes("gpt_oss"), "num_local_experts"), "gpt_oss");
  EXPECT_EQ(s.head_dim, 64);
  EXPECT_DOUBLE_EQ(s.rope.theta, 150000);
  EXPECT_EQ(s.rope.type, RopeType::kYarn);  // GptOssConfig's default rope_scaling
  EXPECT_DOUBLE_EQ(s.rope.factor, 32);
  EXPECT_FALSE(s.rope.truncate);
  EXPECT_EQ(s.layers[0].attention, AttentionKind::kSliding);  // layer_types: sliding, full, ...
  EXPECT_EQ(s.layers[0].window, 128);
  EXPECT_EQ(s.layers[1].attention, AttentionKind::kFull);
  EXPECT_TRUE(s.attention_bias);
  EXPECT_DOUBLE_EQ(s.swiglu_limit, 7.0);
}

TEST(FamilyDefaults, Glm4MoeAndLlama4) {
  nlohmann::json g = with_experts(sizes("glm4_moe"), "n_routed_experts");
  const ModelSpec glm = parse_model_spec(g, "glm4_moe");
  EXPECT_DOUBLE_EQ(glm.rope.partial_rotary_factor, 0.5);
  EXPECT_DOUBLE_EQ(glm.norm_eps, 1e-5);
  EXPECT_EQ(glm.router.scoring, ScoringFunc::kSigmoid);
  EXPECT_TRUE(glm.router.has_score_bias);
  EXPECT_TRUE(glm.router.norm_topk_prob);
  EXPECT_EQ(glm.n_expert_shared, 1);
  EXPECT_FALSE(glm.layers[0].is_moe);  // first_k_dense_replace 1
  EXPECT_TRUE(glm.layers[1].is_moe);
  nlohmann::json l = sizes("llama4_text");
  l["num_local_experts"] = 16;
  l["num_experts_per_tok"] = 1;
  const ModelSpec llama4 = parse_model_spec(l, "llama4_text");
  EXPECT_EQ(llama4.qk_norm, QkNorm::kL2);  // Llama4TextConfig: use_qk_norm True
  EXPECT_EQ(llama4.attention_chunk_size, 8192);
  EXPECT_EQ(llama4.layers[0].attention, AttentionKind::kChunked);
  EXPECT_FALSE(llama4.layers[3].use_rope);
  EXPECT_DOUBLE_EQ(llama4.rope.theta, 500000);
  EXPECT_TRUE(llama4.rope.interleaved);
  EXPECT_DOUBLE_EQ(llama4.attn_temperature_floor, 8192);  // attn_temperature_tuning true, floor_scale 8192
  EXPECT_DOUBLE_EQ(llama4.attn_temperature_scale, 0.1);
  l["layer_types"] = {"chunked_attention", "full_attention", "chunked_attention", "chunked_attention"};
  l["attn_temperature_tuning"] = false;
  const ModelSpec t = parse_model_spec(l, "llama4_text");
  EXPECT_EQ(t.layers[1].attention, AttentionKind::kFull);  // layer_types decides the mask
  EXPECT_EQ(t.layers[3].attention, AttentionKind::kChunked);
  EXPECT_DOUBLE_EQ(t.attn_temperature_floor, 0);
  l["layer_types"][2] = "sliding_attention";
  EXPECT_THROW(parse_model_spec(l, "llama4_text"), std::exception);
}

TEST(FamilyDefaults, Dots1) {
  nlohmann::json c = with_experts(sizes("dots1"), "n_routed_experts");
  const ModelSpec d = parse_model_spec(c, "dots1");
  EXPECT_EQ(d.qk_norm, QkNorm::kPerHead);
  EXPECT_EQ(d.router.scoring, ScoringFunc::kSigmoid);
  EXPECT_TRUE(d.router.has_score_bias);
  EXPECT_FALSE(d.router.norm_topk_prob);  // Dots1Config: False, scale 1, no shared expert, no dense layer
  EXPECT_EQ(d.n_expert_shared, 0);
  EXPECT_EQ(d.n_moe_layers(), 4);
  EXPECT_EQ(d.layers[3].attention, AttentionKind::kFull);  // sliding only from max_window_layers (62) on
  c["max_window_layers"] = 2;
  c["moe_layer_freq"] = 2;         // not read by transformers' code: noted, every layer stays MoE
  c["scoring_func"] = "noaux_tc";  // dots' own config writes this; unread
  const ModelSpec w = parse_model_spec(c, "dots1");
  EXPECT_EQ(w.layers[1].attention, AttentionKind::kFull);
  EXPECT_EQ(w.layers[2].attention, AttentionKind::kSliding);
  EXPECT_EQ(w.layers[2].window, 4096);
  EXPECT_EQ(w.n_moe_layers(), 4);
  EXPECT_EQ(w.notes.size(), 2u);
  EXPECT_EQ(w.router.scoring, ScoringFunc::kSigmoid);
}

TEST(FamilyDefaults, Ernie45Moe) {
  nlohmann::json c = sizes("ernie4_5_moe");  // only sizes: the rest is Ernie4_5_MoeConfig's defaults
  const ModelSpec e = parse_model_spec(c, "ernie");
  EXPECT_TRUE(e.tie_word_embeddings);  // absent means true: save_pretrained leaves it out when it is
  EXPECT_DOUBLE_EQ(e.rope.theta, 500000);
  EXPECT_TRUE(e.rope.interleaved);
  EXPECT_EQ(e.n_expert, 64);
  EXPECT_EQ(e.n_expert_used, 6);
  EXPECT_EQ(e.n_ff_shared, 2 * 16);
  EXPECT_EQ(e.router.scoring, ScoringFunc::kSoftmax);
  EXPECT_TRUE(e.router.has_score_bias);
  EXPECT_TRUE(e.router.norm_topk_prob);
  EXPECT_FALSE(e.attention_bias);
  EXPECT_FALSE(e.lm_head_bias);
  EXPECT_FALSE(e.layers[0].is_moe);  // moe_layer_start_index 1, end -1 (the last layer)
  EXPECT_TRUE(e.layers[3].is_moe);
  c["moe_layer_end_index"] = 2;
  c["moe_layer_interval"] = 2;
  c["use_bias"] = true;
  c["tie_word_embeddings"] = false;
  const ModelSpec f = parse_model_spec(c, "ernie");
  std::vector<bool> moe;
  for (const auto& l : f.layers) moe.push_back(l.is_moe);
  EXPECT_EQ(moe, (std::vector<bool>{false, true, false, false}));
  EXPECT_TRUE(f.mlp_bias && f.lm_head_bias && f.attention_bias && f.o_bias);
  EXPECT_FALSE(f.tie_word_embeddings);
  c["moe_layer_end_index"] = -2;
  EXPECT_THROW(parse_model_spec(c, "ernie"), std::exception);
}

TEST(FamilyDefaults, GraniteMoe) {
  nlohmann::json c = sizes("granitemoe");
  c.erase("moe_intermediate_size");
  const ModelSpec g = parse_model_spec(c, "granite");
  EXPECT_EQ(g.n_expert, 8);  // GraniteMoeConfig: 8 experts, top-2, every multiplier 1
  EXPECT_EQ(g.n_expert_used, 2);
  EXPECT_DOUBLE_EQ(g.multipliers.attention, 1.0);  // scores x 1, not x head_dim^-0.5
  EXPECT_DOUBLE_EQ(g.multipliers.embedding, 1.0);
  EXPECT_EQ(g.n_ff_shared, 0);
  c["model_type"] = "granitemoeshared";
  c["shared_intermediate_size"] = 64;
  c["residual_multiplier"] = 0.22;
  const ModelSpec s = parse_model_spec(c, "granite");
  EXPECT_EQ(s.n_ff_shared, 64);
  EXPECT_DOUBLE_EQ(s.multipliers.residual, 0.22);
  EXPECT_TRUE(s.unknown_keys.empty());
  c["logits_scaling"] = 0;
  EXPECT_THROW(parse_model_spec(c, "granite"), std::exception);
  c["logits_scaling"] = 1;
  c["position_embedding_type"] = "alibi";
  EXPECT_THROW(parse_model_spec(c, "granite"), std::exception);
}

TEST(FamilyDefaults, PhiMoe) {
  nlohmann::json c = with_experts(sizes("phimoe"), "num_local_experts");
  c.erase("moe_intermediate_size");
  const ModelSpec p = parse_model_spec(c, "phimoe");
  EXPECT_EQ(p.norm, NormKind::kLayerNorm);
  EXPECT_FALSE(p.attention_bias);  // the class default; the release sets true
  EXPECT_FALSE(p.lm_head_bias);
  EXPECT_DOUBLE_EQ(p.router.jitter_eps, 0.01);
  auto error_names = [&](const nlohmann::json& bad, const char* field) {
    try {
      parse_model_spec(bad, "phimoe.json");
      ADD_FAILURE() << "accepted " << field;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  nlohmann::json k = c;
  k["num_experts_per_tok"] = 3;  // sparsemixer is top-2 only
  error_names(k, "num_experts_per_tok");
  nlohmann::json r = c;  // head_dim 16: 8 factors each
  r["rope_scaling"] = {{"type", "longrope"},
                       {"original_max_position_embeddings", 8},
                       {"short_factor", std::vector<double>(8, 1.0)},
                       {"long_factor", std::vector<double>(7, 2.0)},
                       {"short_mscale", 1.1},
                       {"long_mscale", 1.2}};
  error_names(r, "rope_scaling.long_factor");
  r["rope_scaling"]["long_factor"] = std::vector<double>(8, 2.0);
  const ModelSpec l = parse_model_spec(r, "phimoe");
  EXPECT_EQ(l.rope.type, RopeType::kLongrope);
  EXPECT_DOUBLE_EQ(l.rope.long_mscale, 1.2);
  r["original_max_position_embeddings"] = 16;  // PhimoeConfig writes a top-level copy; it must agree
  error_names(r, "original_max_position_embeddings");
}

TEST(FamilyDefaults, JetMoe) {
  const nlohmann::json c = {{"model_type", "jetmoe"}, {"num_hidden_layers", 4},  {"hidden_size", 64},
                            {"vocab_size", 100},      {"intermediate_size", 96}, {"num_key_value_heads", 4},
                            {"kv_channels", 8}};
  const ModelSpec j = parse_model_spec(c, "jetmoe");
  EXPECT_TRUE(j.unknown_keys.empty()) << j.unknown_keys.front();
  EXPECT_EQ(j.n_expert, 8);  // JetMoeConfig: 8 experts, top-2 (attention and MLP), tied embeddings
  EXPECT_EQ(j.n_expert_used, 2);
  EXPECT_EQ(j.n_head, 8);  // num_key_value_heads x top-k query heads
  EXPECT_EQ(j.n_head_kv, 4);
  EXPECT_EQ(j.head_dim, 8);  // kv_channels
  EXPECT_EQ(j.n_ff_expert, 96);
  EXPECT_TRUE(j.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(j.norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(j.block_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(j.rope.theta, 10000);
  EXPECT_EQ(j.activation, Activation::kSilu);
  EXPECT_EQ(j.n_moe_layers(), 4);
  nlohmann::json e = c;
  e["rms_norm_eps"] = 0.1;  // read by the final norm only
  const ModelSpec f = parse_model_spec(e, "jetmoe");
  EXPECT_DOUBLE_EQ(f.norm_eps, 0.1);
  EXPECT_DOUBLE_EQ(f.block_norm_eps, 1e-6);
  auto error_names = [&](const char* field, const nlohmann::json& v) {
    nlohmann::json bad = c;
    bad[field] = v;
    try {
      parse_model_spec(bad, "jetmoe.json");
      ADD_FAILURE() << "accepted " << field;
    } catch (const std::exception& ex) {
      EXPECT_NE(std::string(ex.what()).find(field), std::string::npos) << ex.what();
    }
  };
  error_names("num_attention_heads", 6);  // derived: must be 4 x 2
  error_names("num_experts_per_tok", 9);
  error_names("head_dim", 16);
  error_names("activation_function", "relu");
  error_names("glu", false);
  error_names("bias", false);
  // JetMoE's own config class writes the sizes under other names.
  nlohmann::json own = c;
  own.erase("intermediate_size");
  own["ffn_hidden_size"] = 96;
  own["moe_num_experts"] = 8;
  own["moe_top_k"] = 2;
  own["num_attention_heads"] = 8;
  own["glu"] = true;
  own["bias"] = true;
  const ModelSpec o = parse_model_spec(own, "jetmoe");
  EXPECT_EQ(o.n_ff_expert, 96);
  EXPECT_EQ(o.n_expert_used, 2);
  EXPECT_EQ(o.n_head, 8);
  own["num_experts_per_tok"] = 2;
  own["moe_top_k"] = 3;  // both spellings: they must agree
  try {
    parse_model_spec(own, "jetmoe.json");
    ADD_FAILURE() << "accepted moe_top_k 3 beside num_experts_per_tok 2";
  } catch (const std::exception& ex) {
    EXPECT_NE(std::string(ex.what()).find("moe_top_k"), std::string::npos) << ex.what();
  }
  nlohmann::json k = c;
  k.erase("kv_channels");
  EXPECT_THROW(parse_model_spec(k, "jetmoe"), std::exception);
}

TEST(FamilyDefaults, MiniMax) {
  nlohmann::json c = with_experts(sizes("minimax"), "num_local_experts");
  c.erase("moe_intermediate_size");
  const ModelSpec m = parse_model_spec(c, "minimax");
  EXPECT_TRUE(m.unknown_keys.empty()) << m.unknown_keys.front();
  EXPECT_DOUBLE_EQ(m.norm_eps, 1e-5);  // MiniMaxConfig is a MixtralConfig: eps 1e-5, theta 1e6, no window
  EXPECT_DOUBLE_EQ(m.rope.theta, 1e6);
  EXPECT_EQ(m.lightning_block_size, 256);
  EXPECT_TRUE(m.residual.normed);
  EXPECT_DOUBLE_EQ(m.residual.full_alpha, 1.0);
  EXPECT_DOUBLE_EQ(m.residual.mlp_beta, 1.0);
  EXPECT_EQ(m.layers[0].attention, AttentionKind::kFull);  // absent layer_types: full, linear, full, ...
  EXPECT_EQ(m.layers[1].attention, AttentionKind::kLightning);
  EXPECT_EQ(m.layers[3].attention, AttentionKind::kLightning);
  EXPECT_EQ(m.n_moe_layers(), 4);
  auto error_names = [&](const nlohmann::json& bad, const char* field) {
    try {
      parse_model_spec(bad, "minimax.json");
      ADD_FAILURE() << "accepted " << field;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  nlohmann::json a = c;
  a["attn_type_list"] = {0, 1, 0, 1};  // MiniMax's own spelling, which transformers does not read
  error_names(a, "attn_type_list");
  a["layer_types"] = {"linear_attention", "full_attention", "linear_attention", "full_attention"};
  EXPECT_EQ(parse_model_spec(a, "minimax").layers[0].attention, AttentionKind::kLightning);
  a["attn_type_list"] = {1, 1, 0, 1};
  error_names(a, "attn_type_list[0]");
  nlohmann::json t = c;
  t["layer_types"] = {"linear_attention", "sliding_attention", "full_attention", "full_attention"};
  error_names(t, "layer_types[1]");
  nlohmann::json r = c;
  r["rotary_dim"] = 7;
  error_names(r, "rotary_dim");
  r["rotary_dim"] = 8;  // head_dim 16: half of each head
  EXPECT_DOUBLE_EQ(parse_model_spec(r, "minimax").rope.partial_rotary_factor, 0.5);
}

TEST(FamilyDefaults, DbrxNestedConfigsAreDiffs) {
  // DbrxConfig saves attn_config / ffn_config as differences from their classes' defaults.
  const nlohmann::json c = {{"model_type", "dbrx"},
                            {"d_model", 64},
                            {"n_heads", 4},
                            {"n_layers", 2},
                            {"vocab_size", 100},
                            {"attn_config", {{"model_type", ""}}},
                            {"ffn_config", {{"model_type", ""}, {"ffn_hidden_size", 32}}}};
  const ModelSpec d = parse_model_spec(c, "dbrx");
  EXPECT_TRUE(d.unknown_keys.empty()) << d.unknown_keys.front();
  EXPECT_EQ(d.n_head_kv, 1);  // DbrxAttentionConfig: kv_n_heads 1, no clip_qkv, rope_theta 10000
  EXPECT_DOUBLE_EQ(d.clip_qkv, 0);
  EXPECT_DOUBLE_EQ(d.rope.theta, 10000);
  EXPECT_EQ(d.n_expert, 4);  // DbrxFFNConfig: 4 experts, top-1, weights divided by their sum
  EXPECT_EQ(d.n_expert_used, 1);
  EXPECT_TRUE(d.router.norm_topk_prob);
  EXPECT_EQ(d.norm, NormKind::kLayerNormNoBias);
  nlohmann::json n = c;
  n["ffn_config"]["moe_normalize_expert_weights"] = nullptr;
  EXPECT_FALSE(parse_model_spec(n, "dbrx").router.norm_topk_prob);
}

TEST(FamilyDefaults, Transformers5SpellingParsesTheSame) {
  nlohmann::json v4 = with_experts(sizes("glm4_moe"), "n_routed_experts");
  v4["rope_theta"] = 1000000.0;
  v4["partial_rotary_factor"] = 0.5;
  v4["torch_dtype"] = "bfloat16";
  nlohmann::json v5 = with_experts(sizes("glm4_moe"), "n_routed_experts");
  v5["rope_parameters"] = {{"rope_theta", 1000000.0}, {"rope_type", "default"}, {"partial_rotary_factor", 0.5}};
  v5["dtype"] = "bfloat16";
  const ModelSpec a = parse_model_spec(v4, "v4"), b = parse_model_spec(v5, "v5");
  EXPECT_TRUE(b.unknown_keys.empty()) << b.unknown_keys.front();
  EXPECT_DOUBLE_EQ(a.rope.theta, b.rope.theta);
  EXPECT_DOUBLE_EQ(a.rope.partial_rotary_factor, b.rope.partial_rotary_factor);
  EXPECT_EQ(b.rope.type, RopeType::kDefault);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
  v5["rope_parameters"]["partial_rotary_factor"] = 2.0;
  try {
    parse_model_spec(v5, "v5");
    ADD_FAILURE() << "partial_rotary_factor 2 accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("rope_parameters.partial_rotary_factor"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moe
