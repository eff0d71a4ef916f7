// Hugging Face config.json from a ModelSpec (see config_writer.h): the keys of each family's
// configuration class that the architecture needs, as transformers names them.
#include "spec/config_writer.h"

#include <algorithm>

#include "util/error.h"

namespace moe {
namespace {

using Json = nlohmann::json;

[[noreturn]] void cannot(const ModelSpec& s, const std::string& what) {
  fail("spec", "{}: cannot write a {} config.json: {}", s.source, s.model_type, what);
}

Json null_if_zero(double v) { return v == 0 ? Json(nullptr) : Json(v); }

// Keys every writable family shares, up to the family's own ones.
Json common_head(const ModelSpec& s, const char* architecture) {
  Json j;
  j["architectures"] = {architecture};
  j["model_type"] = s.model_type;
  j["vocab_size"] = s.vocab;
  j["hidden_size"] = s.d_model;
  j["num_hidden_layers"] = s.n_layer;
  j["num_attention_heads"] = s.n_head;
  j["num_key_value_heads"] = s.n_head_kv;
  j["num_experts_per_tok"] = s.n_expert_used;
  j["norm_topk_prob"] = s.router.norm_topk_prob;
  return j;
}

// The router-loss keys of the transformers MoE configs (moe's checkpoints train with their own flags).
void router_loss_keys(Json& j) {
  j["output_router_logits"] = false;
  j["router_aux_loss_coef"] = 0.0;
}

void common_tail(const ModelSpec& s, Json& j) {
  if (s.rope.type != RopeType::kDefault || s.rope.partial_rotary_factor != 1.0)
    cannot(s, "rope scaling and partial rotary are not written (default RoPE only)");
  if (s.norm != NormKind::kRms) cannot(s, "only RMSNorm models are written");
  if (s.activation != Activation::kSilu) cannot(s, "only SiLU experts are written");
  j["max_position_embeddings"] = s.max_position;
  j["rope_theta"] = s.rope.theta;
  j["rope_scaling"] = nullptr;
  j["rms_norm_eps"] = s.norm_eps;
  j["hidden_act"] = "silu";
  j["attention_bias"] = s.attention_bias;
  j["attention_dropout"] = 0.0;
  j["tie_word_embeddings"] = s.tie_word_embeddings;
  j["initializer_range"] = 0.02;
  j["torch_dtype"] = s.torch_dtype;
  j["bos_token_id"] = nullptr;
  j["eos_token_id"] = nullptr;
}

bool all_moe(const ModelSpec& s) {
  return std::all_of(s.layers.begin(), s.layers.end(), [](const LayerSpec& l) { return l.is_moe; });
}

bool full_attention(const ModelSpec& s) {
  return std::all_of(s.layers.begin(), s.layers.end(),
                     [](const LayerSpec& l) { return l.attention == AttentionKind::kFull && l.window == 0; });
}

void require_plain_router(const ModelSpec& s) {
  if (s.router.scoring != ScoringFunc::kSoftmax || s.router.topk_method != TopkMethod::kGreedy ||
      s.router.has_score_bias || s.router.has_router_bias || s.router.routed_scaling_factor != 1.0)
    cannot(s, "the family routes with softmax scores and plain top-k only");
  if (s.n_ff_shared > 0) cannot(s, "the family has no shared experts");
  if (s.attention_sinks || s.o_bias != s.attention_bias) cannot(s, "attention sinks / a lone o_proj bias");
}

Json qwen3_moe(const ModelSpec& s) {
  require_plain_router(s);
  if (s.qk_norm != QkNorm::kPerHead) cannot(s, "Qwen3-MoE always has per-head q_norm / k_norm");
  if (!full_attention(s)) cannot(s, "sliding-window layers are not written");
  Json j = common_head(s, "Qwen3MoeForCausalLM");
  j["head_dim"] = s.head_dim;
  j["num_experts"] = s.n_expert;
  j["moe_intermediate_size"] = s.n_ff_expert;
  j["intermediate_size"] = s.n_ff > 0 ? s.n_ff : s.n_ff_expert;
  j["decoder_sparse_step"] = 1;
  Json dense = Json::array();
  for (size_t i = 0; i < s.layers.size(); ++i)
    if (!s.layers[i].is_moe) dense.push_back(i);
  j["mlp_only_layers"] = dense;
  j["use_sliding_window"] = false;
  router_loss_keys(j);
  common_tail(s, j);
  return j;
}

Json olmoe(const ModelSpec& s) {
  require_plain_router(s);
  if (s.qk_norm != QkNorm::kFullWidth) cannot(s, "OLMoE always has full-width q_norm / k_norm");
  if (!all_moe(s) || !full_attention(s)) cannot(s, "every OLMoE layer is a full-attention MoE layer");
  if (s.head_dim * s.n_head != s.d_model)
    cannot(s,
           "OLMoE's head_dim is hidden_size / num_attention_heads; head_dim " + std::to_string(s.head_dim) + " is not");
  Json j = common_head(s, "OlmoeForCausalLM");
  j["num_experts"] = s.n_expert;
  j["intermediate_size"] = s.n_ff_expert;
  j["clip_qkv"] = null_if_zero(s.clip_qkv);
  router_loss_keys(j);
  common_tail(s, j);
  return j;
}

Json mixtral(const ModelSpec& s) {
  require_plain_router(s);
  if (s.qk_norm != QkNorm::kNone) cannot(s, "Mixtral has no q_norm / k_norm");
  if (!all_moe(s)) cannot(s, "every Mixtral layer is an MoE layer");
  if (!full_attention(s)) cannot(s, "sliding-window layers are not written");
  Json j = common_head(s, "MixtralForCausalLM");
  j.erase("norm_topk_prob");  // Mixtral always renormalizes (softmax over the chosen logits)
  j["head_dim"] = s.head_dim;
  j["num_local_experts"] = s.n_expert;
  j["intermediate_size"] = s.n_ff_expert;
  j["sliding_window"] = nullptr;
  router_loss_keys(j);
  common_tail(s, j);
  j.erase("attention_bias");  // MixtralConfig has none (require_plain_router refused biases)
  return j;
}

// DeepseekV3ForCausalLM: noaux_tc routing, no YaRN, no multi-token-prediction layers written.
Json deepseek_v3(const ModelSpec& s) {
  if (!s.is_mla) cannot(s, "DeepSeek-V3 attention is MLA");
  int64_t first_dense = 0;
  while (first_dense < s.n_layer && !s.layers[first_dense].is_moe) ++first_dense;
  for (int64_t i = first_dense; i < s.n_layer; ++i)
    if (!s.layers[i].is_moe) cannot(s, "dense layers only as the first_k_dense_replace first layers");
  if (s.router.scoring != ScoringFunc::kSigmoid || s.router.topk_method != TopkMethod::kNoAuxTc)
    cannot(s, "DeepSeek-V3 routes with sigmoid scores and noaux_tc");
  Json j = common_head(s, "DeepseekV3ForCausalLM");
  j["intermediate_size"] = s.n_ff;
  j["moe_intermediate_size"] = s.n_ff_expert;
  j["n_shared_experts"] = s.n_expert_shared;
  j["n_routed_experts"] = s.n_expert;
  j["routed_scaling_factor"] = s.router.routed_scaling_factor;
  j["kv_lora_rank"] = s.mla.kv_lora_rank;
  j["q_lora_rank"] = s.mla.q_lora_rank > 0 ? Json(s.mla.q_lora_rank) : Json(nullptr);
  j["qk_rope_head_dim"] = s.mla.qk_rope_head_dim;
  j["qk_nope_head_dim"] = s.mla.qk_nope_head_dim;
  j["v_head_dim"] = s.mla.v_head_dim;
  j["topk_method"] = "noaux_tc";
  j["scoring_func"] = "sigmoid";
  j["n_group"] = s.router.n_group;
  j["topk_group"] = s.router.topk_group;
  j["first_k_dense_replace"] = first_dense;
  j["moe_layer_freq"] = 1;
  j["num_nextn_predict_layers"] = s.n_mtp_layers;
  j["rope_interleave"] = s.rope.interleaved;
  common_tail(s, j);
  return j;
}

}  // namespace

std::vector<std::string> writable_model_types() { return {"deepseek_v3", "mixtral", "olmoe", "qwen3_moe"}; }

nlohmann::json write_hf_config(const ModelSpec& s) {
  if (s.multimodal_wrapper || !s.tensor_prefix.empty()) cannot(s, "wrapped (multimodal) configs are not written");
  if (s.quant.method != QuantMethod::kNone) cannot(s, "quantized checkpoints are not written");
  switch (s.family) {
    case Family::kQwen3Moe:
      return qwen3_moe(s);
    case Family::kOlmoe:
      return olmoe(s);
    case Family::kMixtral:
      return mixtral(s);
    case Family::kDeepseekV3:
      if (s.model_type != "deepseek_v3") break;  // kimi_k2 shares the family but not the config class
      return deepseek_v3(s);
    default:
      break;
  }
  fail("spec",
       "{}: writing a config.json of model_type \"{}\" is not supported (writable: deepseek_v3, mixtral, "
       "olmoe, qwen3_moe)",
       s.source, s.model_type);
}

}  // namespace moe
