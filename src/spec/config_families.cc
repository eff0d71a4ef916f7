// One dialect parser per model family: which config.json keys mean experts, top-k, shared
// experts, dense-first / every-N MoE layers, attention variants and MTP in that family.
#include <algorithm>
#include <tuple>

#include "spec/config_families.h"
#include "util/error.h"

namespace moe::spec_detail {

ScoringFunc parse_scoring(ConfigReader& r, const std::string& s) {
  if (s == "softmax") return ScoringFunc::kSoftmax;
  if (s == "sigmoid") return ScoringFunc::kSigmoid;
  if (s == "sqrtsoftplus") return ScoringFunc::kSqrtSoftplus;
  r.fail_field("scoring_func", fmt::format("unsupported \"{}\" (expected softmax, sigmoid, sqrtsoftplus)", s));
}

TopkMethod parse_topk_method(ConfigReader& r, const std::string& s) {
  if (s == "greedy") return TopkMethod::kGreedy;
  if (s == "group_limited_greedy") return TopkMethod::kGroupLimited;
  if (s == "noaux_tc") return TopkMethod::kNoAuxTc;
  r.fail_field("topk_method", fmt::format("unsupported \"{}\" (expected greedy, group_limited_greedy, noaux_tc)", s));
}

namespace {

// Sliding window as Mistral / Mixtral spell it: every layer, when set. Absent: MistralConfig's 4096
// (Mixtral and PhiMoE default to none); null: none.
void mistral_sliding(ConfigReader& r, ModelSpec& s) {
  const int64_t fallback = s.family == Family::kMistral ? 4096 : 0;
  s.sliding_window = r.is_null("sliding_window") ? 0 : r.int_or({"sliding_window"}, fallback);
  if (s.sliding_window > 0)
    for (auto& l : s.layers) l = LayerSpec{l.is_moe, AttentionKind::kSliding, s.sliding_window, 0, false, true};
}

// Layers first.. slide with `window` (the Qwen / dots1 max_window_layers rule).
void slide_from(ModelSpec& s, int64_t first, int64_t window) {
  s.sliding_window = window;
  for (int64_t i = first; i < s.n_layer; ++i) {
    s.layers[i].attention = AttentionKind::kSliding;
    s.layers[i].window = window;
  }
}

// Qwen2/Qwen3 (dense and MoE): sliding only with use_sliding_window, for layers >= max_window_layers;
// newer configs spell it with layer_types.
void qwen_sliding(ConfigReader& r, ModelSpec& s) {
  const bool use = r.bool_or({"use_sliding_window"}, false);
  const int64_t window = r.int_or({"sliding_window"}, 0);
  const int64_t max_window_layers = r.int_or({"max_window_layers"}, s.n_layer);
  if (r.has({"layer_types"})) {
    s.sliding_window = window;
    read_layer_types(r, s);
    return;
  }
  if (!use || window == 0) return;
  slide_from(s, max_window_layers, window);
}

void parse_llama(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  s.n_ff = r.req_int({"intermediate_size"});
  s.attention_bias = s.o_bias = r.bool_or({"attention_bias"}, false);
  s.mlp_bias = r.bool_or({"mlp_bias"}, false);
  set_layers_all(s, false);
  if (s.family == Family::kMistral) mistral_sliding(r, s);
  r.acknowledge({"head_dim"});
}

void parse_qwen_dense(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  s.n_ff = r.req_int({"intermediate_size"});
  if (s.family == Family::kQwen2) {
    s.attention_bias = true;  // Qwen2 always has q/k/v biases
  } else {
    s.attention_bias = s.o_bias = r.bool_or({"attention_bias"}, false);
    s.qk_norm = QkNorm::kPerHead;
  }
  set_layers_all(s, false);
  qwen_sliding(r, s);
}

void parse_mixtral(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  read_topk(r, s, {"num_local_experts"});
  s.n_ff_expert = r.req_int({"intermediate_size"});
  if (s.family == Family::kPhiMoe) {
    s.attention_bias = s.o_bias = r.bool_or({"attention_bias"}, false);  // PhimoeConfig default
    s.norm = NormKind::kLayerNorm;
    s.lm_head_bias = r.bool_or({"lm_head_bias"}, false);
    // sparsemixer routing: router_jitter_noise is not training noise here but the mask width at inference
    s.router.jitter_eps = r.num_or({"router_jitter_noise"}, 0.01);
    if (s.n_expert_used != 2)
      r.fail_field("num_experts_per_tok",
                   fmt::format("PhiMoE's sparsemixer routes to exactly 2 experts, found {}", s.n_expert_used));
    r.acknowledge({"input_jitter_noise"});
    // PhimoeConfig copies rope_scaling's original_max_position_embeddings to the top level (and saves it)
    if (auto orig = r.opt_int({"original_max_position_embeddings"});
        orig && s.rope.original_max_position > 0 && *orig != s.rope.original_max_position)
      r.fail_field("original_max_position_embeddings",
                   fmt::format("{} contradicts rope_scaling.original_max_position_embeddings {}", *orig,
                               s.rope.original_max_position));
  }
  set_layers_all(s, true);
  mistral_sliding(r, s);
}

void parse_qwen_moe(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  read_topk(r, s, {"num_experts"});
  s.n_ff = r.int_or({"intermediate_size"}, 0);
  s.n_ff_expert = r.req_int({"moe_intermediate_size"});
  s.router.norm_topk_prob = r.bool_or({"norm_topk_prob"}, false);
  if (s.family == Family::kQwen2Moe) {
    s.attention_bias = r.bool_or({"qkv_bias"}, true);                     // transformers 5 names the q/k/v biases
    s.n_ff_shared = r.int_or({"shared_expert_intermediate_size"}, 5632);  // Qwen2MoeConfig default
    s.n_expert_shared = s.n_ff_shared > 0 ? 1 : 0;
    s.shared_expert_gate = s.n_ff_shared > 0;
  } else {
    s.attention_bias = s.o_bias = r.bool_or({"attention_bias"}, false);
    s.qk_norm = QkNorm::kPerHead;
  }
  read_qwen_moe_layers(r, s);
  qwen_sliding(r, s);
}

void parse_olmoe(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  read_topk(r, s, {"num_experts"});
  s.n_ff_expert = r.req_int({"intermediate_size"});
  s.router.norm_topk_prob = r.bool_or({"norm_topk_prob"}, false);
  s.attention_bias = s.o_bias = r.bool_or({"attention_bias"}, false);
  s.clip_qkv = r.num_or({"clip_qkv"}, 0);
  s.qk_norm = QkNorm::kFullWidth;
  set_layers_all(s, true);
}

// What a DeepSeek-style config means when a routing key is absent: the defaults of the family's
// configuration class (transformers' DeepseekV2Config / DeepseekV3Config / Glm4MoeConfig, or the
// remote-code DeepseekConfig for v1). transformers' own save_pretrained writes only the keys its
// class knows: a DeepseekV3Config has no topk_method and no scoring_func, and its modeling code
// always routes with sigmoid scores, e_score_correction_bias and top-2-sum group limiting.
struct DeepseekDefaults {
  const char* scoring;
  const char* topk_method;
  int64_t n_group, topk_group;
  bool norm_topk_prob;
  double routed_scaling_factor;
  int64_t n_shared_experts;
  int64_t first_k_dense_replace;
  bool fixed_router;                // the modeling code has one router: scoring_func / topk_method may only restate it
  bool router_keys_unread = false;  // not in the class and not read by the code (dots1): noted, ignored
};

DeepseekDefaults deepseek_defaults(Family f) {
  switch (f) {
    case Family::kDeepseekV2:
      return {"softmax", "greedy", 1, 1, false, 1.0, 2, 0, false};
    case Family::kDeepseekV3:
      return {"sigmoid", "noaux_tc", 8, 4, true, 2.5, 1, 3, true};
    case Family::kGlm4Moe:
      return {"sigmoid", "noaux_tc", 1, 1, true, 1.0, 1, 1, true};
    case Family::kDots1:
      return {"sigmoid", "noaux_tc", 1, 1, false, 1.0, 0, 0, true, true};
    default:  // deepseek (v1, remote code only)
      return {"softmax", "greedy", 1, 1, false, 1.0, 0, 0, false};
  }
}

// An integer whose null means 0 (None: the feature is off) and whose absence means the class default.
int64_t int_null_is_zero(ConfigReader& r, std::string_view key, int64_t fallback) {
  if (r.is_null(key)) return 0;
  const auto v = r.opt_int({key});
  return v ? *v : fallback;
}

// DeepSeek-style MoE fields shared by deepseek, deepseek_v2/v3, kimi_k2 and glm4_moe.
void read_deepseek_moe(ConfigReader& r, ModelSpec& s) {
  const DeepseekDefaults d = deepseek_defaults(s.family);
  read_topk(r, s, {"n_routed_experts"});
  s.n_ff = r.int_or({"intermediate_size"}, 0);
  s.n_ff_expert = r.int_or({"moe_intermediate_size"}, 0);
  s.n_expert_shared = int_null_is_zero(r, "n_shared_experts", d.n_shared_experts);
  s.n_ff_shared = s.n_expert_shared * s.n_ff_expert;
  s.router.norm_topk_prob = r.bool_or({"norm_topk_prob"}, d.norm_topk_prob);
  std::string scoring = r.str_or({"scoring_func"}, d.scoring);
  std::string method = r.str_or({"topk_method"}, d.topk_method);
  if (d.router_keys_unread) {
    // dots.llm1's own config writes "scoring_func": "noaux_tc"; transformers never reads either key.
    for (const auto& [key, v, want] :
         {std::tuple{"scoring_func", scoring, d.scoring}, {"topk_method", method, d.topk_method}})
      if (v != want)
        s.notes.push_back(
            fmt::format("{} \"{}\" is not read by the {} modeling code, which always routes with "
                        "sigmoid + e_score_correction_bias",
                        key, v, s.model_type));
    scoring = d.scoring;
    method = d.topk_method;
  }
  s.router.scoring = parse_scoring(r, scoring);
  s.router.topk_method = parse_topk_method(r, method);
  if (d.fixed_router && scoring != d.scoring)
    r.fail_field("scoring_func",
                 fmt::format("{} always scores with {}, found \"{}\"", s.model_type, d.scoring, scoring));
  if (d.fixed_router && method != d.topk_method)
    r.fail_field("topk_method", fmt::format("{} always selects with {} (sigmoid + e_score_correction_bias, "
                                            "top-2-sum group limit), found \"{}\"",
                                            s.model_type, d.topk_method, method));
  const bool group_given = r.has({"n_group"}) || r.is_null("n_group");
  s.router.n_group = r.is_null("n_group") ? 1 : r.int_or({"n_group"}, d.n_group);
  if (!group_given && s.n_expert > 0 && s.n_expert % d.n_group != 0)
    r.fail_field("n_group", fmt::format("absent, so the {} class default {} applies, and it does not divide "
                                        "n_routed_experts {}; write n_group (1: no group limit)",
                                        s.model_type, d.n_group, s.n_expert));
  s.router.topk_group = r.is_null("topk_group") ? 1 : r.int_or({"topk_group"}, d.topk_group);
  s.router.routed_scaling_factor = r.num_or({"routed_scaling_factor"}, d.routed_scaling_factor);
  s.router.has_score_bias = s.router.topk_method == TopkMethod::kNoAuxTc;
  const int64_t first_dense = r.int_or({"first_k_dense_replace"}, d.first_k_dense_replace);
  int64_t freq = r.int_or({"moe_layer_freq"}, 1);
  if (freq == 0) r.fail_field("moe_layer_freq", "must be at least 1");
  if (freq != 1 && (s.family == Family::kGlm4Moe || s.family == Family::kDots1)) {
    // transformers' GLM-4.5 and dots.llm1 code has no moe_layer_freq: every layer from
    // first_k_dense_replace on is an MoE layer
    s.notes.push_back(fmt::format("moe_layer_freq {} is not read by the {} modeling code", freq, s.model_type));
    freq = 1;
  }
  set_layers_all(s, false);
  for (int64_t i = 0; i < s.n_layer; ++i) s.layers[i].is_moe = s.n_expert > 0 && i >= first_dense && i % freq == 0;
  s.n_mtp_layers = r.int_or({"num_nextn_predict_layers"}, 0);
}

void parse_deepseek(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  read_deepseek_moe(r, s);
  s.attention_bias = s.o_bias = r.bool_or({"attention_bias"}, false);
}

void parse_deepseek_mla(ConfigReader& r, ModelSpec& s) {
  s.n_layer = r.req_int({"num_hidden_layers"});
  s.d_model = r.req_int({"hidden_size"});
  s.n_head = r.req_int({"num_attention_heads"});
  if (s.n_head == 0) r.fail_field("num_attention_heads", "must be at least 1");
  s.n_head_kv = s.n_head;  // MLA: every head has its own K and V (from the shared latent)
  r.acknowledge({"num_key_value_heads"});
  s.vocab = r.req_int({"vocab_size"});
  read_common(r, s);
  read_deepseek_moe(r, s);
  s.is_mla = true;
  // DeepseekV2Config and DeepseekV3Config both default q_lora_rank to 1536; null means a plain q_proj.
  s.mla.q_lora_rank = int_null_is_zero(r, "q_lora_rank", 1536);
  s.mla.kv_lora_rank = r.req_int({"kv_lora_rank"});
  s.mla.qk_nope_head_dim = r.req_int({"qk_nope_head_dim"});
  s.mla.qk_rope_head_dim = r.req_int({"qk_rope_head_dim"});
  s.mla.v_head_dim = r.req_int({"v_head_dim"});
  if (s.mla.kv_lora_rank == 0 || s.mla.qk_rope_head_dim == 0 || s.mla.v_head_dim == 0)
    fail("spec", "{}: impossible MLA dims: kv_lora_rank, qk_rope_head_dim and v_head_dim must be positive", s.source);
  s.head_dim = s.mla.qk_nope_head_dim + s.mla.qk_rope_head_dim;
  // transformers writes qk_head_dim = nope + rope and head_dim = qk_rope_head_dim (the rotary width).
  if (auto qk = r.opt_int({"qk_head_dim"}); qk && *qk != s.head_dim)
    r.fail_field("qk_head_dim",
                 fmt::format("{} contradicts qk_nope_head_dim + qk_rope_head_dim = {}", *qk, s.head_dim));
  if (auto hd = r.opt_int({"head_dim"}); hd && *hd != s.mla.qk_rope_head_dim && *hd != s.head_dim)
    r.fail_field("head_dim", fmt::format("{} is neither qk_rope_head_dim {} (as transformers writes it) nor "
                                         "qk_nope_head_dim + qk_rope_head_dim {}",
                                         *hd, s.mla.qk_rope_head_dim, s.head_dim));
  s.attention_bias = s.o_bias = r.bool_or({"attention_bias"}, false);
  s.rope.interleaved = r.bool_or({"rope_interleave"}, true);
  for (auto& l : s.layers) l.attention = AttentionKind::kMla;
}

void parse_glm4_moe(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  read_deepseek_moe(r, s);  // Glm4MoeTopkRouter: the DeepSeek-V3 router (sigmoid, bias, top-2-sum groups)
  s.attention_bias = r.bool_or({"attention_bias"}, false);
  if (r.bool_or({"use_qk_norm"}, false)) s.qk_norm = QkNorm::kPerHead;
}

// dots.llm1: Qwen3Attention (per-head QK-norm, biases on q/k/v/o when attention_bias) in front of the
// DeepSeek-V3 MoE block; sliding window on layers >= max_window_layers when sliding_window is set.
void parse_dots1(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  read_deepseek_moe(r, s);
  s.attention_bias = s.o_bias = r.bool_or({"attention_bias"}, false);
  s.qk_norm = QkNorm::kPerHead;
  r.acknowledge({"use_sliding_window", "pretraining_tp"});  // written by dots' own config, unread
  if (r.has({"layer_types"})) {
    s.sliding_window = r.int_or({"sliding_window"}, 0);
    read_layer_types(r, s);
    return;
  }
  const int64_t window = r.is_null("sliding_window") ? 0 : r.int_or({"sliding_window"}, 4096);
  const int64_t first = r.int_or({"max_window_layers"}, 62);
  if (window > 0) slide_from(s, first, window);
}

// ERNIE-4.5-MoE: Llama attention with interleaved RoPE, use_bias on every Linear (and the head),
// MoE layers where (i + 1) % moe_layer_interval == 0 within [moe_layer_start_index, moe_layer_end_index],
// softmax router whose top-k is chosen on softmax + moe_statics.e_score_correction_bias and whose
// weights (the unbiased softmax of the chosen) are divided by max(sum, moe_norm_min).
void parse_ernie45_moe(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  s.n_ff = r.req_int({"intermediate_size"});
  s.n_expert = r.int_or({"moe_num_experts"}, 64);
  s.n_expert_used = r.int_or({"moe_k"}, 6);
  s.n_ff_expert = r.int_or({"moe_intermediate_size"}, 1536);
  s.n_expert_shared = r.int_or({"moe_num_shared_experts"}, 2);
  s.n_ff_shared = s.n_expert_shared * s.n_ff_expert;
  const bool bias = r.bool_or({"use_bias"}, false);
  s.attention_bias = s.o_bias = s.mlp_bias = s.lm_head_bias = bias;
  s.rope.interleaved = true;
  s.router.scoring = ScoringFunc::kSoftmax;
  s.router.has_score_bias = true;
  s.router.norm_topk_prob = true;
  const double norm_min = r.num_or({"moe_norm_min"}, 1e-12);
  if (norm_min <= 0 || norm_min > 1e-6)
    r.fail_field("moe_norm_min", fmt::format("only values in (0, 1e-6] are supported, found {}", norm_min));
  const int64_t start = r.int_or({"moe_layer_start_index"}, 1);
  const nlohmann::json* end_json = r.find({"moe_layer_end_index"});
  int64_t end = s.n_layer - 1;  // -1 (the default) means the last layer
  if (end_json && !(end_json->is_number_integer() && end_json->get<int64_t>() == -1))
    end = r.int_or({"moe_layer_end_index"}, end);
  const int64_t interval = r.int_or({"moe_layer_interval"}, 1);
  if (interval == 0) r.fail_field("moe_layer_interval", "must be at least 1");
  set_layers_all(s, false);
  for (int64_t i = 0; i < s.n_layer; ++i)
    s.layers[i].is_moe = s.n_expert > 0 && (i + 1) % interval == 0 && i >= start && i <= end;
  // Keys of Baidu's own config class that transformers does not read.
  r.acknowledge({"use_flash_attention", "use_rmsnorm", "use_moe", "moe_capacity", "moe_gate", "moe_use_aux_free",
                 "moe_gate_act", "moe_dropout_prob", "fuse_linear", "fuse_rope", "freq_allocation", "rope_3d",
                 "compression_ratio", "weight_share_add_bias", "head_dim_for_rope", "use_cache"});
}

// Granite-MoE: Llama attention scaled by attention_multiplier, embedding / residual / logits
// multipliers, Mixtral routing (softmax over the top-k logits) with experts fused per layer
// (input_linear [E, 2F, D] = gate rows then up rows, output_linear [E, D, F]); granitemoeshared adds
// an ungated shared MLP of shared_intermediate_size.
void parse_granitemoe(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  s.n_expert = r.int_or({"num_local_experts"}, 8);
  s.n_expert_used = r.int_or({"num_experts_per_tok"}, 2);
  s.n_ff_expert = r.req_int({"intermediate_size"});
  s.attention_bias = s.o_bias = r.bool_or({"attention_bias"}, false);
  s.router.norm_topk_prob = true;  // softmax over the k selected logits
  auto positive = [&](const char* key) {
    const double v = r.num_or({key}, 1.0);
    if (!(v > 0)) r.fail_field(key, fmt::format("must be positive, found {}", v));
    return v;
  };
  s.multipliers.embedding = positive("embedding_multiplier");
  s.multipliers.residual = positive("residual_multiplier");
  s.multipliers.attention = positive("attention_multiplier");
  s.multipliers.logits_divisor = positive("logits_scaling");
  if (s.model_type == "granitemoeshared") {
    s.n_ff_shared = r.int_or({"shared_intermediate_size"}, 0);
    s.n_expert_shared = s.n_ff_shared > 0 ? 1 : 0;
  }
  const std::string pos = r.str_or({"position_embedding_type"}, "rope");  // written by the class, always rope
  if (pos != "rope") r.fail_field("position_embedding_type", fmt::format("only rope is supported, found \"{}\"", pos));
  set_layers_all(s, true);
}

// JetMoE (JetMoeConfig): every layer is a mixture of attention heads (num_local_experts experts of a
// query projection [Hkv * kv_channels, D] and an output projection back, top num_experts_per_tok per
// token, one kv_proj shared by all) followed by a MoE MLP (fused input_linear / output_linear, a bias
// on the output); both routers take the softmax over the top-k logits. num_attention_heads is derived
// (Hkv x top-k); head_dim means kv_channels. JetMoE's own config class (the same model_type) spells the
// sizes ffn_hidden_size, moe_num_experts and moe_top_k: read too, and they must agree with the others.
void parse_jetmoe(ConfigReader& r, ModelSpec& s) {
  for (const auto& [hf, own] : {std::pair{"intermediate_size", "ffn_hidden_size"},
                                {"num_local_experts", "moe_num_experts"},
                                {"num_experts_per_tok", "moe_top_k"}}) {
    const auto a = r.opt_int({hf}), b = r.opt_int({own});
    if (a && b && *a != *b) r.fail_field(own, fmt::format("{} disagrees with {} {}", *b, hf, *a));
  }
  s.n_layer = r.req_int({"num_hidden_layers"});
  s.d_model = r.req_int({"hidden_size"});
  s.vocab = r.req_int({"vocab_size"});
  s.n_head_kv = r.req_int({"num_key_value_heads"});
  if (s.n_head_kv == 0) r.fail_field("num_key_value_heads", "must be at least 1");
  s.head_dim = r.req_int({"kv_channels"});
  if (s.head_dim == 0) r.fail_field("kv_channels", "must be at least 1");
  if (auto hd = r.opt_int({"head_dim"}); hd && *hd != s.head_dim)
    r.fail_field("head_dim",
                 fmt::format("{} disagrees with kv_channels {} (JetMoE's head_dim is kv_channels)", *hd, s.head_dim));
  s.n_expert = r.int_or({"num_local_experts", "moe_num_experts"}, 8);
  s.n_expert_used = r.int_or({"num_experts_per_tok", "moe_top_k"}, 2);
  if (s.n_expert == 0) r.fail_field("num_local_experts", "must be at least 1");
  if (s.n_expert_used == 0 || s.n_expert_used > s.n_expert)
    r.fail_field("num_experts_per_tok",
                 fmt::format("must be in [1, num_local_experts = {}], found {}", s.n_expert, s.n_expert_used));
  s.n_head = s.n_head_kv * s.n_expert_used;  // each routed attention expert brings Hkv query heads
  if (auto h = r.opt_int({"num_attention_heads"}); h && *h != s.n_head)
    r.fail_field("num_attention_heads",
                 fmt::format("{} is not num_key_value_heads x num_experts_per_tok = {}", *h, s.n_head));
  s.n_ff_expert = r.req_int({"intermediate_size", "ffn_hidden_size"});
  read_common(r, s);
  s.block_norm_eps = 1e-6;  // JetMoeBlock's norms are built without rms_norm_eps
  const std::string act = r.str_or({"activation_function"}, "silu");
  if (act == "silu" || act == "swish") {
    s.activation = Activation::kSilu;
  } else if (act == "gelu") {
    s.activation = Activation::kGelu;
  } else if (act == "gelu_pytorch_tanh" || act == "gelu_new" || act == "gelu_fast") {
    s.activation = Activation::kGeluTanh;
  } else {
    r.fail_field("activation_function",
                 fmt::format("unsupported \"{}\" (expected silu, swish, gelu, gelu_pytorch_tanh)", act));
  }
  // The original JetMoE config's glu switch: transformers' experts are always gated (input_linear 2F rows).
  if (!r.bool_or({"glu"}, true)) r.fail_field("glu", "transformers' JetMoE experts are always gated (true)");
  if (!r.bool_or({"bias"}, true)) r.fail_field("bias", "transformers' JetMoE always has the attention and MLP biases");
  s.router.norm_topk_prob = true;  // softmax over the k selected logits
  r.acknowledge({"aux_loss_coef", "z_loss_coef"});
  set_layers_all(s, true);
}

void parse_gpt_oss(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  s.n_expert = r.req_int({"num_local_experts"});
  const auto k1 = r.opt_int({"num_experts_per_tok"});
  const auto k2 = r.opt_int({"experts_per_token"});
  if (k1 && k2 && *k1 != *k2)
    r.fail_field("experts_per_token", fmt::format("{} disagrees with num_experts_per_tok {}", *k2, *k1));
  s.n_expert_used = k1 ? *k1 : (k2 ? *k2 : 0);
  s.n_ff_expert = r.req_int({"intermediate_size"});
  s.attention_bias = s.o_bias = r.bool_or({"attention_bias"}, true);
  s.attention_sinks = true;
  s.router.has_router_bias = true;
  s.router.norm_topk_prob = true;  // softmax over the K selected logits
  s.expert_bias = true;
  s.activation = Activation::kSwigluClamped;
  s.swiglu_limit = r.num_or({"swiglu_limit"}, 7.0);
  s.swiglu_alpha = 1.702;
  s.sliding_window = r.is_null("sliding_window") ? 0 : r.int_or({"sliding_window"}, 128);
  r.acknowledge({"initial_context_length"});
  set_layers_all(s, true);
  if (r.has({"layer_types"})) {
    read_layer_types(r, s);
  } else if (s.sliding_window > 0) {  // GptOssConfig: even layers sliding, odd layers full
    for (int64_t i = 0; i < s.n_layer; i += 2)
      s.layers[i] = LayerSpec{true, AttentionKind::kSliding, s.sliding_window, 0, false, true};
  }
  if (!r.has({"rope_scaling", "rope_parameters"}) && !r.is_null("rope_scaling")) {
    // GptOssConfig's default: YaRN x32 over 4096 positions, no truncation of the correction range
    s.rope.type = RopeType::kYarn;
    s.rope.factor = 32;
    s.rope.original_max_position = 4096;
    s.rope.truncate = false;
  }
}

// DBRX: DbrxConfig saves attn_config and ffn_config as differences from DbrxAttentionConfig /
// DbrxFFNConfig, so an absent nested key is that class's default (kv_n_heads 1, rope_theta 10000,
// ffn_hidden_size 3584, moe_num_experts 4, moe_top_k 1, moe_normalize_expert_weights 1).
void parse_dbrx(ConfigReader& r, ModelSpec& s) {
  r.acknowledge_common();
  s.n_layer = r.req_int({"n_layers"});
  s.d_model = r.req_int({"d_model"});
  s.n_head = r.req_int({"n_heads"});
  if (s.n_head == 0) r.fail_field("n_heads", "must be at least 1");
  if (s.d_model % s.n_head != 0)
    fail("spec", "{}: inconsistent head dims: d_model {} is not a multiple of n_heads {}", r.source(), s.d_model,
         s.n_head);
  s.head_dim = s.d_model / s.n_head;
  s.vocab = r.req_int({"vocab_size"});
  s.max_position = r.int_or({"max_seq_len"}, 2048);
  if (r.bool_or({"tie_word_embeddings"}, false))
    r.fail_field("tie_word_embeddings", "DBRX has separate embedding and head (DbrxConfig rejects true)");
  s.torch_dtype = r.str_or({"torch_dtype", "dtype"}, "bfloat16");
  s.norm = NormKind::kLayerNormNoBias;
  s.norm_eps = 1e-5;  // nn.LayerNorm's default; DBRX has no eps key
  const nlohmann::json empty = nlohmann::json::object();
  const nlohmann::json* attn = r.object({"attn_config"});
  const nlohmann::json* ffn = r.object({"ffn_config"});
  ConfigReader a(attn ? *attn : empty, r.source(), "attn_config.");
  s.n_head_kv = a.int_or({"kv_n_heads"}, 1);
  if (s.n_head_kv == 0) a.fail_field("kv_n_heads", "must be at least 1");
  s.clip_qkv = a.is_null("clip_qkv") ? 0 : a.num_or({"clip_qkv"}, 0);
  s.rope.theta = a.num_or({"rope_theta"}, 10000.0);
  a.acknowledge({"model_type", "attn_pdrop", "attn_impl", "attn_uses_sequence_id", "alibi", "alibi_bias_max"});
  ConfigReader f(ffn ? *ffn : empty, r.source(), "ffn_config.");
  s.n_ff_expert = f.int_or({"ffn_hidden_size"}, 3584);
  s.n_expert = f.int_or({"moe_num_experts"}, 4);
  s.n_expert_used = f.int_or({"moe_top_k"}, 1);
  // The top-k weights are divided by their p-norm, p = moe_normalize_expert_weights (null: not divided).
  s.router.norm_topk_prob = false;
  if (!f.is_null("moe_normalize_expert_weights")) {
    const double p = f.num_or({"moe_normalize_expert_weights"}, 1.0);
    if (p != 1.0)
      f.fail_field("moe_normalize_expert_weights",
                   fmt::format("only 1 (divide by the sum) or null is supported, found {}", p));
    s.router.norm_topk_prob = true;
  }
  const nlohmann::json* act = f.object({"ffn_act_fn"});
  if (act && act->contains("name") && (*act)["name"] != "silu") f.fail_field("ffn_act_fn", "only silu is supported");
  f.acknowledge(
      {"model_type", "moe_jitter_eps", "moe_loss_weight", "uniform_expert_assignment", "ffn_type", "hidden_size"});
  for (auto& k : a.unused_keys()) s.unknown_keys.push_back(k);
  for (auto& k : f.unused_keys()) s.unknown_keys.push_back(k);
  set_layers_all(s, true);
}

void parse_llama4_text(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  read_topk(r, s, {"num_local_experts"});
  s.n_ff_expert = r.req_int({"intermediate_size"});
  s.n_ff = r.int_or({"intermediate_size_mlp"}, 0);
  s.n_expert_shared = 1;  // Llama 4: one shared expert of the expert width in every MoE layer
  s.n_ff_shared = s.n_ff_expert;
  s.router.scoring = ScoringFunc::kSigmoid;
  s.router.norm_topk_prob = false;
  s.attention_bias = s.o_bias = r.bool_or({"attention_bias"}, false);
  s.attention_chunk_size = r.is_null("attention_chunk_size") ? 0 : r.int_or({"attention_chunk_size"}, 8192);
  const bool qk_norm = r.bool_or({"use_qk_norm"}, true);  // Llama4TextConfig default
  set_layers_all(s, false);
  std::vector<int64_t> moe_layers = r.int_list({"moe_layers"});
  const int64_t step = r.int_or({"interleave_moe_layer_step"}, 1);
  if (moe_layers.empty() && step > 0)
    for (int64_t i = step - 1; i < s.n_layer; i += step) moe_layers.push_back(i);
  for (int64_t i : moe_layers) {
    if (i >= s.n_layer)
      r.fail_field("moe_layers", fmt::format("layer {} is beyond num_hidden_layers {}", i, s.n_layer));
    s.layers[i].is_moe = s.n_expert > 0;
  }
  std::vector<int64_t> no_rope = r.int_list({"no_rope_layers"});
  const int64_t interval = r.int_or({"no_rope_layer_interval"}, 4);
  for (int64_t i = 0; i < s.n_layer; ++i) {
    // no_rope_layers[i] == 1 means the layer uses RoPE (HF naming); default: every 4th layer is NoPE.
    const bool rope = no_rope.empty() ? (interval == 0 || (i + 1) % interval != 0) : no_rope[i % no_rope.size()] != 0;
    s.layers[i].use_rope = rope;
    if (rope && s.attention_chunk_size > 0) {
      s.layers[i].attention = AttentionKind::kChunked;
      s.layers[i].window = s.attention_chunk_size;
    }
  }
  // transformers 4.5x writes layer_types (chunked_attention on the RoPE layers): it decides the mask
  const std::vector<std::string> types = r.str_list({"layer_types"});
  if (!types.empty() && static_cast<int64_t>(types.size()) != s.n_layer)
    r.fail_field("layer_types",
                 fmt::format("has {} entries, expected num_hidden_layers = {}", types.size(), s.n_layer));
  for (size_t i = 0; i < types.size(); ++i) {
    LayerSpec& l = s.layers[i];
    if (types[i] == "chunked_attention" && s.attention_chunk_size > 0) {
      l.attention = AttentionKind::kChunked;
      l.window = s.attention_chunk_size;
    } else if (types[i] == "full_attention" || types[i] == "chunked_attention") {
      l.attention = AttentionKind::kFull;
      l.window = 0;
    } else {
      r.fail_field(fmt::format("layer_types[{}]", i),
                   fmt::format("unsupported \"{}\" (expected chunked_attention or full_attention)", types[i]));
    }
  }
  if (qk_norm) s.qk_norm = QkNorm::kL2;  // without weights, after RoPE, on the RoPE layers only
  s.rope.interleaved = true;             // Llama 4 rotates (2i, 2i+1) pairs (complex multiplication)
  if (r.bool_or({"attn_temperature_tuning"}, true)) {
    s.attn_temperature_floor = r.num_or({"floor_scale"}, 8192);
    s.attn_temperature_scale = r.num_or({"attn_scale"}, 0.1);
    if (!(s.attn_temperature_floor > 0)) r.fail_field("floor_scale", "must be positive");
  }
  r.acknowledge({"floor_scale", "attn_scale", "for_llm_compressor", "rope_type"});
}

void parse_llama4(ConfigReader& r, ModelSpec& s) {
  const nlohmann::json* text = r.object({"text_config"});
  if (!text) {
    parse_llama4_text(r, s);
    return;
  }
  r.acknowledge_common();
  r.acknowledge({"vision_config", "boi_token_index", "eoi_token_index", "image_token_index", "torch_dtype",
                 "tie_word_embeddings"});
  s.multimodal_wrapper = true;
  s.tensor_prefix = "language_model.";
  s.notes.push_back(
      "multimodal config: only text_config is counted; the vision tower and projector (about 1.2B in Llama 4 "
      "Scout) are not modelled, so the total is below the card's multimodal total");
  ConfigReader t(*text, r.source(), "text_config.");
  t.acknowledge({"model_type"});
  parse_llama4_text(t, s);
  for (auto& k : t.unused_keys()) s.unknown_keys.push_back(k);
}

}  // namespace

void read_qwen_moe_layers(ConfigReader& r, ModelSpec& s) {
  const int64_t step = r.int_or({"decoder_sparse_step"}, 1);
  const std::vector<int64_t> mlp_only = r.int_list({"mlp_only_layers"});
  set_layers_all(s, false);
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const bool dense = std::find(mlp_only.begin(), mlp_only.end(), i) != mlp_only.end();
    s.layers[i].is_moe = !dense && s.n_expert > 0 && step > 0 && (i + 1) % step == 0;
  }
}

void read_topk(ConfigReader& r, ModelSpec& s, std::initializer_list<std::string_view> expert_keys) {
  s.n_expert = r.int_or(expert_keys, 0);
  s.n_expert_used = r.int_or({"num_experts_per_tok", "experts_per_token", "moe_top_k"}, 0);
}

CommonDefaults common_defaults(Family f) {
  CommonDefaults d;
  switch (f) {
    case Family::kMixtral:
    case Family::kPhiMoe:
      d.norm_eps = 1e-5;
      d.rope_theta = 1e6;
      break;
    case Family::kQwen3:
      d.head_dim = 128;
      break;
    case Family::kOlmoe:
      d.norm_eps = 1e-5;
      break;
    case Family::kGlm4Moe:
      d.norm_eps = 1e-5;
      d.partial_rotary_factor = 0.5;
      break;
    case Family::kErnie45Moe:
      d.norm_eps = 1e-5;
      d.rope_theta = 500000;
      d.tie_word_embeddings = true;  // Ernie4_5_MoeConfig: save_pretrained leaves it out when true
      break;
    case Family::kJetMoe:
      d.tie_word_embeddings = true;  // JetMoeConfig
      break;
    case Family::kMiniMax:  // MiniMaxConfig is a MixtralConfig
      d.norm_eps = 1e-5;
      d.rope_theta = 1e6;
      break;
    case Family::kGrok1:
      d.norm_eps = 1e-5;
      d.tie_word_embeddings = true;  // Grok1Config
      break;
    case Family::kQwen3Next:
      d.head_dim = 256;
      d.partial_rotary_factor = 0.25;
      break;
    case Family::kMiniMaxM2:
      d.rope_theta = 5e6;
      d.head_dim = 128;
      break;
    case Family::kGptOss:
      d.norm_eps = 1e-5;
      d.rope_theta = 150000;
      d.head_dim = 64;
      break;
    case Family::kLlama4:
      d.norm_eps = 1e-5;
      d.rope_theta = 500000;
      d.head_dim = 128;
      break;
    default:  // LlamaConfig, MistralConfig, Qwen2/3(-MoE)Config, DeepseekV2/V3Config: 1e-6, 10000
      break;
  }
  return d;
}

const std::vector<FamilyEntry>& family_table() {
  static const std::vector<FamilyEntry> table = {
      {"llama", Family::kLlama, parse_llama},
      {"mistral", Family::kMistral, parse_llama},
      {"qwen2", Family::kQwen2, parse_qwen_dense},
      {"qwen3", Family::kQwen3, parse_qwen_dense},
      {"mixtral", Family::kMixtral, parse_mixtral},
      {"phimoe", Family::kPhiMoe, parse_mixtral},
      {"qwen2_moe", Family::kQwen2Moe, parse_qwen_moe},
      {"qwen3_moe", Family::kQwen3Moe, parse_qwen_moe},
      {"olmoe", Family::kOlmoe, parse_olmoe},
      {"deepseek", Family::kDeepseek, parse_deepseek},
      {"deepseek_v2", Family::kDeepseekV2, parse_deepseek_mla},
      {"deepseek_v3", Family::kDeepseekV3, parse_deepseek_mla},
      {"kimi_k2", Family::kDeepseekV3, parse_deepseek_mla},
      {"deepseek_v4", Family::kDeepseekV4, parse_deepseek_v4},
      {"glm4_moe", Family::kGlm4Moe, parse_glm4_moe},
      {"dots1", Family::kDots1, parse_dots1},
      {"ernie4_5_moe", Family::kErnie45Moe, parse_ernie45_moe},
      {"granitemoe", Family::kGraniteMoe, parse_granitemoe},
      {"granitemoeshared", Family::kGraniteMoe, parse_granitemoe},
      {"jetmoe", Family::kJetMoe, parse_jetmoe},
      {"minimax", Family::kMiniMax, parse_minimax},
      {"grok-1", Family::kGrok1, parse_grok1},
      {"minimax_m2", Family::kMiniMaxM2, parse_minimax_m2},
      {"qwen3_next", Family::kQwen3Next, parse_qwen3_next},
      {"hunyuan_v1_moe", Family::kHunyuanMoe, parse_hunyuan_moe},
      {"bailing_moe", Family::kBailingMoe, parse_bailing_moe},
      {"gpt_oss", Family::kGptOss, parse_gpt_oss},
      {"dbrx", Family::kDbrx, parse_dbrx},
      {"llama4", Family::kLlama4, parse_llama4},
      {"llama4_text", Family::kLlama4, parse_llama4},
  };
  return table;
}

}  // namespace moe::spec_detail
