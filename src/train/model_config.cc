// ModelConfig validation and Hugging Face Qwen3-MoE config.json, and the parameter layout.
#include "train/model_config.h"

#include "util/error.h"

namespace moe::train {

void ModelConfig::validate() const {
  auto positive = [](const char* field, int v) {
    if (v <= 0) fail("train", "model config: {} must be > 0, got {}", field, v);
  };
  positive("num_hidden_layers", n_layer);
  positive("hidden_size", d_model);
  positive("num_attention_heads", n_head);
  positive("num_key_value_heads", n_kv_head);
  positive("head_dim", head_dim);
  positive("num_experts", n_expert);
  positive("num_experts_per_tok", top_k);
  positive("moe_intermediate_size", d_ff_expert);
  positive("vocab_size", vocab);
  positive("max_position_embeddings", max_seq);
  if (top_k > n_expert) fail("train", "model config: num_experts_per_tok {} > num_experts {}", top_k, n_expert);
  if (n_head % n_kv_head != 0)
    fail("train", "model config: num_attention_heads {} is not a multiple of num_key_value_heads {}", n_head,
         n_kv_head);
  if (head_dim % 2 != 0) fail("train", "model config: head_dim must be even for RoPE, got {}", head_dim);
  if (!(rms_eps > 0)) fail("train", "model config: rms_norm_eps must be > 0, got {}", rms_eps);
  if (!(rope_theta > 0)) fail("train", "model config: rope_theta must be > 0, got {}", rope_theta);
}

nlohmann::json ModelConfig::to_hf_json() const {
  nlohmann::json j;
  j["architectures"] = {"Qwen3MoeForCausalLM"};
  j["model_type"] = "qwen3_moe";
  j["vocab_size"] = vocab;
  j["hidden_size"] = d_model;
  j["num_hidden_layers"] = n_layer;
  j["num_attention_heads"] = n_head;
  j["num_key_value_heads"] = n_kv_head;
  j["head_dim"] = head_dim;
  j["num_experts"] = n_expert;
  j["num_experts_per_tok"] = top_k;
  j["moe_intermediate_size"] = d_ff_expert;
  j["intermediate_size"] = d_ff_expert;  // unused: every layer is sparse
  j["decoder_sparse_step"] = 1;
  j["mlp_only_layers"] = nlohmann::json::array();
  j["norm_topk_prob"] = norm_topk_prob;
  j["max_position_embeddings"] = max_seq;
  j["rope_theta"] = rope_theta;
  j["rope_scaling"] = nullptr;
  j["rms_norm_eps"] = rms_eps;
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["tie_word_embeddings"] = false;
  j["use_sliding_window"] = false;
  j["output_router_logits"] = false;
  j["router_aux_loss_coef"] = 0.0;
  j["initializer_range"] = 0.02;
  j["torch_dtype"] = "float32";
  j["bos_token_id"] = nullptr;
  j["eos_token_id"] = nullptr;
  return j;
}

ModelConfig ModelConfig::from_hf_json(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object()) fail("train", "{}: expected a JSON object", path);
  const std::string type = j.value("model_type", "");
  if (type != "qwen3_moe") fail("train", "{}: model_type must be \"qwen3_moe\" for training, found \"{}\"", path, type);
  ModelConfig c;
  auto get_int = [&](const char* key, int& out) {
    if (!j.contains(key) || !j[key].is_number_integer())
      fail("train", "{}: field {} missing or not an integer", path, key);
    out = j[key].get<int>();
  };
  get_int("num_hidden_layers", c.n_layer);
  get_int("hidden_size", c.d_model);
  get_int("num_attention_heads", c.n_head);
  get_int("num_key_value_heads", c.n_kv_head);
  get_int("num_experts", c.n_expert);
  get_int("num_experts_per_tok", c.top_k);
  get_int("moe_intermediate_size", c.d_ff_expert);
  get_int("vocab_size", c.vocab);
  get_int("max_position_embeddings", c.max_seq);
  c.head_dim = j.value("head_dim", c.d_model / c.n_head);
  c.rope_theta = j.value("rope_theta", 10000.0);
  c.rms_eps = j.value("rms_norm_eps", 1e-6);
  c.norm_topk_prob = j.value("norm_topk_prob", false);
  if (j.value("decoder_sparse_step", 1) != 1 || !j.value("mlp_only_layers", nlohmann::json::array()).empty())
    fail("train", "{}: dense layers (decoder_sparse_step != 1, mlp_only_layers) are not supported by the trainer",
         path);
  if (j.value("tie_word_embeddings", false)) fail("train", "{}: tie_word_embeddings=true is not supported", path);
  c.validate();
  return c;
}

ParamLayout ParamLayout::build(const ModelConfig& c) {
  c.validate();
  ParamLayout p;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool decay) {
    ParamTensor t{name, std::move(shape), p.total, 1, decay};
    for (int64_t s : t.shape) t.numel *= s;
    p.total += t.numel;
    p.tensors.push_back(t);
    return t.offset;
  };
  const int64_t D = c.d_model, Dh = c.head_dim, F = c.d_ff_expert;
  p.wte = add("model.embed_tokens.weight", {c.vocab, D}, true);
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    LayerOffsets o;
    o.ln1 = add(pre + "input_layernorm.weight", {D}, false);
    o.q = add(pre + "self_attn.q_proj.weight", {c.n_head * Dh, D}, true);
    o.k = add(pre + "self_attn.k_proj.weight", {c.n_kv_head * Dh, D}, true);
    o.v = add(pre + "self_attn.v_proj.weight", {c.n_kv_head * Dh, D}, true);
    o.o = add(pre + "self_attn.o_proj.weight", {D, c.n_head * Dh}, true);
    o.q_norm = add(pre + "self_attn.q_norm.weight", {Dh}, false);
    o.k_norm = add(pre + "self_attn.k_norm.weight", {Dh}, false);
    o.ln2 = add(pre + "post_attention_layernorm.weight", {D}, false);
    o.gate = add(pre + "mlp.gate.weight", {c.n_expert, D}, true);
    for (int e = 0; e < c.n_expert; ++e) {
      const std::string ex = pre + "mlp.experts." + std::to_string(e) + ".";
      o.expert_gate.push_back(add(ex + "gate_proj.weight", {F, D}, true));
      o.expert_up.push_back(add(ex + "up_proj.weight", {F, D}, true));
      o.expert_down.push_back(add(ex + "down_proj.weight", {D, F}, true));
    }
    p.layers.push_back(std::move(o));
  }
  p.final_norm = add("model.norm.weight", {D}, false);
  p.lm_head = add("lm_head.weight", {c.vocab, D}, true);
  return p;
}

const ParamTensor* ParamLayout::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

int64_t active_params_per_token(const ModelConfig& c) {
  const int64_t D = c.d_model, Dh = c.head_dim;
  const int64_t attn = D * (c.n_head * Dh) * 2 + D * (c.n_kv_head * Dh) * 2;
  const int64_t moe = static_cast<int64_t>(c.n_expert) * D + static_cast<int64_t>(c.top_k) * 3 * D * c.d_ff_expert;
  return c.n_layer * (attn + moe) + static_cast<int64_t>(c.vocab) * D;
}

}  // namespace moe::train
