// Dialect parsers of the families `moe inspect` counts but the decoder does not run: Grok-1,
// MiniMax-M2 / M2.5, Qwen3-Next, Hunyuan-A13B (hunyuan_v1_moe) and Ling / Bailing-MoE.
#include <algorithm>

#include "spec/config_families.h"
#include "util/error.h"

namespace moe::spec_detail {
namespace {

// A key that is one integer for every layer, or a per-layer list (Hunyuan) whose entries must agree.
int64_t uniform_int(ConfigReader& r, const char* key, int64_t fallback, int64_t n_layer) {
  const nlohmann::json* v = r.find({key});
  if (!v) return fallback;
  if (!v->is_array()) return r.int_or({key}, fallback);
  const std::vector<int64_t> list = r.int_list({key});
  if (list.empty() || static_cast<int64_t>(list.size()) != n_layer)
    r.fail_field(key, fmt::format("has {} entries, expected num_hidden_layers = {}", list.size(), n_layer));
  if (std::adjacent_find(list.begin(), list.end(), std::not_equal_to<>()) != list.end())
    r.fail_field(key, "per-layer values differ, which is not modelled");
  return list.front();
}

}  // namespace

// Grok-1 as hpcai-tech/grok-1's remote code lays it out: GQA without biases, four RMSNorms per layer
// (before and after attention and MoE), 8 experts of intermediate_size, top-2, a tied head. Its
// scalings (embedding_multiplier_scale, attn_output_multiplier, max_attn_value softcap,
// output_multiplier_scale) change no count.
void parse_grok1(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  s.n_expert = r.int_or({"num_experts", "num_local_experts"}, 8);
  s.n_expert_used = r.int_or({"num_experts_per_tok"}, 2);
  s.n_ff_expert = r.req_int({"intermediate_size"});
  s.activation = Activation::kGelu;  // the JAX release's experts use GELU
  r.acknowledge({"embedding_multiplier_scale", "output_multiplier_scale", "attn_output_multiplier", "max_attn_value"});
  set_layers_all(s, true);
}

// MiniMax-M2 / M2.5: full attention with QK-norm over the whole projection (qk_norm_type per_layer)
// or per head, RoPE on rotary_dim of head_dim, 256 experts (w1/w3/w2), sigmoid router with an
// e_score_correction_bias (use_routing_bias), MTP modules that are not counted.
void parse_minimax_m2(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  s.n_expert = r.req_int({"num_local_experts"});
  s.n_expert_used = r.req_int({"num_experts_per_tok"});
  s.n_ff_expert = r.req_int({"intermediate_size"});
  s.n_ff_shared = r.int_or({"shared_intermediate_size"}, 0);
  s.n_expert_shared = s.n_ff_shared > 0 ? 1 : 0;
  if (auto rot = r.opt_int({"rotary_dim"})) {
    const double f = static_cast<double>(*rot) / static_cast<double>(s.head_dim);
    if (*rot == 0 || *rot > s.head_dim)
      r.fail_field("rotary_dim", fmt::format("must be in (0, head_dim {}]", s.head_dim));
    if (r.has({"partial_rotary_factor"}) && std::abs(f - s.rope.partial_rotary_factor) > 1e-9)
      r.fail_field("rotary_dim", fmt::format("{} contradicts partial_rotary_factor {} x head_dim {}", *rot,
                                             s.rope.partial_rotary_factor, s.head_dim));
    s.rope.partial_rotary_factor = f;
  }
  const std::string scoring = r.str_or({"scoring_func"}, "sigmoid");
  if (scoring != "sigmoid" && scoring != "softmax")
    r.fail_field("scoring_func", fmt::format("expected sigmoid or softmax, found \"{}\"", scoring));
  s.router.scoring = scoring == "sigmoid" ? ScoringFunc::kSigmoid : ScoringFunc::kSoftmax;
  s.router.has_score_bias = r.bool_or({"use_routing_bias"}, true);
  s.router.routed_scaling_factor = r.num_or({"routed_scaling_factor"}, 1.0);
  if (r.bool_or({"use_qk_norm"}, true)) {
    const std::string t = r.str_or({"qk_norm_type"}, "per_layer");
    if (t != "per_layer" && t != "per_head")
      r.fail_field("qk_norm_type", fmt::format("expected per_layer or per_head, found \"{}\"", t));
    s.qk_norm = t == "per_layer" ? QkNorm::kFullWidth : QkNorm::kPerHead;
  }
  for (int64_t t : r.int_list({"attn_type_list"}))
    if (t != 1) r.fail_field("attn_type_list", "only full attention (1) is modelled; MiniMax-Text-01's 0 is not");
  if (r.bool_or({"use_mtp"}, false))
    s.notes.push_back(fmt::format("{} MTP module(s) of {} layer(s) are not counted (their layout is not modelled)",
                                  r.int_or({"num_mtp_modules"}, 0), r.int_or({"mtp_transformer_layers"}, 1)));
  r.acknowledge({"num_mtp_modules", "mtp_transformer_layers", "mlp_intermediate_size", "attn_window_size",
                 "layernorm_full_attention_beta", "layernorm_linear_attention_beta", "layernorm_mlp_beta",
                 "max_model_len", "use_grouped_topk", "num_expert_group", "topk_group", "use_grouped_mm",
                 "sliding_window", "attention_bias"});
  set_layers_all(s, true);
}

// Qwen3-Next: layers alternate Gated DeltaNet (linear attention with a recurrent state) and gated
// full attention (q_proj also yields a per-channel output gate; per-head QK-norm; partial rotary),
// full attention every full_attention_interval-th layer; 512 experts top-10, a sigmoid-gated shared
// expert.
void parse_qwen3_next(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  read_topk(r, s, {"num_experts"});
  s.n_ff = r.int_or({"intermediate_size"}, 5632);
  s.n_ff_expert = r.int_or({"moe_intermediate_size"}, 512);
  s.n_ff_shared = r.int_or({"shared_expert_intermediate_size"}, 512);
  s.n_expert_shared = s.n_ff_shared > 0 ? 1 : 0;
  s.shared_expert_gate = s.n_ff_shared > 0;
  s.router.norm_topk_prob = r.bool_or({"norm_topk_prob"}, true);
  s.attention_bias = s.o_bias = r.bool_or({"attention_bias"}, false);
  s.qk_norm = QkNorm::kPerHead;
  LinearAttnSpec& a = s.linear_attn;
  a.n_key_heads = r.int_or({"linear_num_key_heads"}, 16);
  a.n_value_heads = r.int_or({"linear_num_value_heads"}, 32);
  a.key_head_dim = r.int_or({"linear_key_head_dim"}, 128);
  a.value_head_dim = r.int_or({"linear_value_head_dim"}, 128);
  a.conv_kernel = r.int_or({"linear_conv_kernel_dim"}, 4);
  if (a.n_key_heads == 0 || a.n_value_heads % a.n_key_heads != 0)
    r.fail_field("linear_num_value_heads",
                 fmt::format("{} is not a multiple of linear_num_key_heads {}", a.n_value_heads, a.n_key_heads));
  read_qwen_moe_layers(r, s);
  const std::vector<std::string> types = r.str_list({"layer_types"});
  const int64_t interval = r.int_or({"full_attention_interval"}, 4);
  if (!types.empty() && static_cast<int64_t>(types.size()) != s.n_layer)
    r.fail_field("layer_types",
                 fmt::format("has {} entries, expected num_hidden_layers = {}", types.size(), s.n_layer));
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const bool full = types.empty() ? interval > 0 && (i + 1) % interval == 0 : types[i] == "full_attention";
    if (!types.empty() && !full && types[i] != "linear_attention")
      r.fail_field(fmt::format("layer_types[{}]", i),
                   fmt::format("expected linear_attention or full_attention, found \"{}\"", types[i]));
    if (!full) s.layers[i].attention = AttentionKind::kLinear;
  }
  r.acknowledge({"use_sliding_window", "sliding_window", "max_window_layers"});
}

// Hunyuan-A13B (hunyuan_v1_moe): GQA with per-head query_layernorm / key_layernorm, every layer MoE
// with num_experts experts (top moe_topk) of moe_intermediate_size plus num_shared_expert shared MLPs
// of intermediate_size; several keys may be per-layer lists.
void parse_hunyuan_moe(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  if (auto hd = r.opt_int({"attention_head_dim"}); hd && *hd != s.head_dim)
    r.fail_field("attention_head_dim", fmt::format("{} contradicts head_dim {}", *hd, s.head_dim));
  s.n_ff = r.req_int({"intermediate_size"});
  s.n_expert = uniform_int(r, "num_experts", 1, s.n_layer);
  s.n_expert_used = uniform_int(r, "moe_topk", 1, s.n_layer);
  s.n_ff_expert = uniform_int(r, "moe_intermediate_size", s.n_ff, s.n_layer);
  s.n_expert_shared = uniform_int(r, "num_shared_expert", 1, s.n_layer);
  s.n_ff_shared = s.n_expert_shared * s.n_ff;
  s.attention_bias = s.o_bias = r.bool_or({"attention_bias"}, false);
  if (r.bool_or({"use_qk_norm"}, false)) s.qk_norm = QkNorm::kPerHead;
  if (r.bool_or({"use_cla"}, false)) r.fail_field("use_cla", "cross-layer KV sharing is not modelled");
  if (r.bool_or({"use_mla"}, false)) r.fail_field("use_mla", "latent attention is not modelled for hunyuan_v1_moe");
  if (r.bool_or({"mlp_bias"}, false)) r.fail_field("mlp_bias", "MLP biases are not modelled for hunyuan_v1_moe");
  r.acknowledge({"cla_share_factor",
                 "moe_drop_tokens",
                 "moe_random_routing_dropped_token",
                 "moe_layer_num_skipped",
                 "capacity_factor",
                 "norm_type",
                 "use_rotary_pos_emb",
                 "use_mixed_mlp_moe",
                 "eod_token_id",
                 "sep_token_id",
                 "routed_scaling_factor",
                 "group_limited_greedy",
                 "num_experts_per_tok",
                 "enable_attention_fp32_softmax",
                 "enable_lm_head_fp32",
                 "importance_factor",
                 "anyres_pooling_size",
                 "position_embedding_xdrope",
                 "mlp_intermediate_size",
                 "attention_head_dim",
                 "use_mla",
                 "use_cla",
                 "kv_lora_rank",
                 "moe_use_mixed_mlp_moe",
                 "pretraining_tp",
                 "org_vocab_size"});
  set_layers_all(s, s.n_expert > 0);
}

// Ling / Bailing-MoE (bailing_moe, inclusionAI's remote code): fused query_key_value (biases when
// use_qkv_bias), a dense output projection (bias when use_bias), layers before first_k_dense_replace
// dense, num_shared_experts x moe_intermediate_size of shared expert.
void parse_bailing_moe(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);
  read_topk(r, s, {"num_experts"});
  s.n_ff = r.int_or({"intermediate_size"}, 0);
  s.n_ff_expert = r.req_int({"moe_intermediate_size"});
  s.n_expert_shared = r.is_null("num_shared_experts") ? 0 : r.int_or({"num_shared_experts"}, 0);
  s.n_ff_shared = s.n_expert_shared * s.n_ff_expert;
  s.router.norm_topk_prob = r.bool_or({"norm_topk_prob"}, true);
  s.attention_bias = r.bool_or({"use_qkv_bias"}, false);
  s.o_bias = r.bool_or({"use_bias"}, false);
  const int64_t first_dense = r.int_or({"first_k_dense_replace"}, 0);
  set_layers_all(s, false);
  for (int64_t i = 0; i < s.n_layer; ++i) s.layers[i].is_moe = s.n_expert > 0 && i >= first_dense;
  r.acknowledge({"norm_head", "norm_softmax", "output_dropout", "moe_router_enable_expert_bias"});
}

}  // namespace moe::spec_detail
