// ModelConfig validation, Hugging Face config.json (Qwen3-MoE or DeepSeek-V3), and the parameter layout.
#include "train/model_config.h"

#include <limits>

#include "util/error.h"

namespace moe::train {

void ModelConfig::validate() const {
  auto within = [](const char* field, int v, int hi) {
    if (v <= 0 || v > hi) fail("train", "model config: {} must be from 1 to {}, got {}", field, hi, v);
  };
  within("num_hidden_layers", n_layer, kMaxTrainCount);
  within("hidden_size", d_model, kMaxTrainWidth);
  within("num_attention_heads", n_head, kMaxTrainCount);
  within("num_key_value_heads", n_kv_head, kMaxTrainCount);
  within("head_dim", head_dim, kMaxTrainCount);
  within("num_experts", n_expert, kMaxTrainCount);
  within("num_experts_per_tok", top_k, kMaxTrainCount);
  within("moe_intermediate_size", d_ff_expert, kMaxTrainWidth);
  within("vocab_size", vocab, kMaxTrainTokens);
  within("max_position_embeddings", max_seq, kMaxTrainTokens);
  if (top_k > n_expert) fail("train", "model config: num_experts_per_tok {} > num_experts {}", top_k, n_expert);
  if (is_v3()) return validate_v3();
  if (n_head % n_kv_head != 0)
    fail("train", "model config: num_attention_heads {} is not a multiple of num_key_value_heads {}", n_head,
         n_kv_head);
  if (head_dim % 2 != 0) fail("train", "model config: head_dim must be even for RoPE, got {}", head_dim);
  if (!(rms_eps > 0)) fail("train", "model config: rms_norm_eps must be > 0, got {}", rms_eps);
  if (!(rope_theta > 0)) fail("train", "model config: rope_theta must be > 0, got {}", rope_theta);
}

void ModelConfig::validate_v3() const {
  auto within = [](const char* field, int v, int lo, int hi) {
    if (v < lo || v > hi) fail("train", "model config: {} must be from {} to {}, got {}", field, lo, hi, v);
  };
  within("kv_lora_rank", kv_lora_rank, 1, kMaxTrainWidth);
  within("qk_nope_head_dim", qk_nope_dim, 1, kMaxTrainCount);
  within("qk_rope_head_dim", qk_rope_dim, 1, kMaxTrainCount);
  within("v_head_dim", v_head_dim, 1, kMaxTrainCount);
  within("q_lora_rank (0: q_proj)", q_lora_rank, 0, kMaxTrainWidth);
  within("n_shared_experts", n_shared_expert, 0, kMaxTrainCount);
  within("intermediate_size", d_ff_dense, first_dense > 0 ? 1 : 0, kMaxTrainWidth);
  if (first_dense < 0 || first_dense > n_layer)
    fail("train", "model config: first_k_dense_replace must be in [0, num_hidden_layers {}], got {}", n_layer,
         first_dense);
  if (qk_rope_dim % 2 != 0) fail("train", "model config: qk_rope_head_dim must be even for RoPE, got {}", qk_rope_dim);
  if (!(rms_eps > 0)) fail("train", "model config: rms_norm_eps must be > 0, got {}", rms_eps);
  if (!(rope_theta > 0)) fail("train", "model config: rope_theta must be > 0, got {}", rope_theta);
  if (!(routed_scaling_factor > 0))
    fail("train", "model config: routed_scaling_factor must be > 0, got {}", routed_scaling_factor);
}

namespace {

// DeepseekV3ForCausalLM config.json: noaux_tc routing with one group (n_group = topk_group = 1),
// no YaRN (rope_scaling null), no multi-token-prediction layers.
nlohmann::json deepseek_v3_json(const ModelConfig& c) {
  nlohmann::json j;
  j["architectures"] = {"DeepseekV3ForCausalLM"};
  j["model_type"] = "deepseek_v3";
  j["vocab_size"] = c.vocab;
  j["hidden_size"] = c.d_model;
  j["intermediate_size"] = c.d_ff_dense;
  j["moe_intermediate_size"] = c.d_ff_expert;
  j["num_hidden_layers"] = c.n_layer;
  j["num_attention_heads"] = c.n_head;
  j["num_key_value_heads"] = c.n_head;
  j["n_shared_experts"] = c.n_shared_expert;
  j["n_routed_experts"] = c.n_expert;
  j["num_experts_per_tok"] = c.top_k;
  j["routed_scaling_factor"] = c.routed_scaling_factor;
  j["kv_lora_rank"] = c.kv_lora_rank;
  j["q_lora_rank"] = c.q_lora_rank > 0 ? nlohmann::json(c.q_lora_rank) : nlohmann::json(nullptr);
  j["qk_rope_head_dim"] = c.qk_rope_dim;
  j["qk_nope_head_dim"] = c.qk_nope_dim;
  j["v_head_dim"] = c.v_head_dim;
  j["topk_method"] = "noaux_tc";
  j["scoring_func"] = "sigmoid";
  j["n_group"] = 1;
  j["topk_group"] = 1;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["first_k_dense_replace"] = c.first_dense;
  j["moe_layer_freq"] = 1;
  j["num_nextn_predict_layers"] = 0;
  j["max_position_embeddings"] = c.max_seq;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = nullptr;
  j["rope_interleave"] = true;
  j["rms_norm_eps"] = c.rms_eps;
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["tie_word_embeddings"] = false;
  j["initializer_range"] = 0.02;
  j["torch_dtype"] = "float32";
  j["bos_token_id"] = nullptr;
  j["eos_token_id"] = nullptr;
  return j;
}

// DeepSeek-V3 layers in Hugging Face order and names; `add(name, shape, decay)` returns the offset.
template <typename Add>
void build_v3_layers(const ModelConfig& c, ParamLayout& p, Add& add) {
  const int64_t D = c.d_model, H = c.n_head, F = c.d_ff_expert, r = c.kv_lora_rank;
  const int64_t qk = c.qk_nope_dim + c.qk_rope_dim;
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    const std::string at = pre + "self_attn.";
    LayerOffsets o;
    o.moe = c.is_moe_layer(l);
    o.ln1 = add(pre + "input_layernorm.weight", {D}, false);
    if (c.q_lora_rank > 0) {
      o.q_a = add(at + "q_a_proj.weight", {c.q_lora_rank, D}, true);
      o.q_a_norm = add(at + "q_a_layernorm.weight", {c.q_lora_rank}, false);
      o.q_b = add(at + "q_b_proj.weight", {H * qk, c.q_lora_rank}, true);
    } else {
      o.q = add(at + "q_proj.weight", {H * qk, D}, true);
    }
    o.kv_a = add(at + "kv_a_proj_with_mqa.weight", {r + c.qk_rope_dim, D}, true);
    o.kv_a_norm = add(at + "kv_a_layernorm.weight", {r}, false);
    o.kv_b = add(at + "kv_b_proj.weight", {H * (c.qk_nope_dim + c.v_head_dim), r}, true);
    o.o = add(at + "o_proj.weight", {D, H * c.v_head_dim}, true);
    o.ln2 = add(pre + "post_attention_layernorm.weight", {D}, false);
    const std::string mlp = pre + "mlp.";
    if (!o.moe) {
      o.dense_gate = add(mlp + "gate_proj.weight", {c.d_ff_dense, D}, true);
      o.dense_up = add(mlp + "up_proj.weight", {c.d_ff_dense, D}, true);
      o.dense_down = add(mlp + "down_proj.weight", {D, c.d_ff_dense}, true);
      p.layers.push_back(std::move(o));
      continue;
    }
    o.gate = add(mlp + "gate.weight", {c.n_expert, D}, true);
    for (int e = 0; e < c.n_expert; ++e) {
      const std::string ex = mlp + "experts." + std::to_string(e) + ".";
      o.expert_gate.push_back(add(ex + "gate_proj.weight", {F, D}, true));
      o.expert_up.push_back(add(ex + "up_proj.weight", {F, D}, true));
      o.expert_down.push_back(add(ex + "down_proj.weight", {D, F}, true));
    }
    if (c.n_shared_expert > 0) {
      const int64_t Fs = F * c.n_shared_expert;
      o.shared_gate = add(mlp + "shared_experts.gate_proj.weight", {Fs, D}, true);
      o.shared_up = add(mlp + "shared_experts.up_proj.weight", {Fs, D}, true);
      o.shared_down = add(mlp + "shared_experts.down_proj.weight", {D, Fs}, true);
    }
    p.layers.push_back(std::move(o));
  }
}

int64_t active_params_v3(const ModelConfig& c) {
  const int64_t D = c.d_model, H = c.n_head, r = c.kv_lora_rank, qk = c.qk_nope_dim + c.qk_rope_dim;
  const int64_t q = c.q_lora_rank > 0 ? c.q_lora_rank * (D + H * qk) : H * qk * D;
  const int64_t attn = q + (r + c.qk_rope_dim) * D + r * H * (c.qk_nope_dim + c.v_head_dim) + D * H * c.v_head_dim;
  const int64_t moe =
      static_cast<int64_t>(c.n_expert) * D + static_cast<int64_t>(c.top_k + c.n_shared_expert) * 3 * D * c.d_ff_expert;
  const int64_t dense = 3 * D * static_cast<int64_t>(c.d_ff_dense);
  return c.n_layer * attn + c.n_moe_layers() * moe + (c.n_layer - c.n_moe_layers()) * dense +
         static_cast<int64_t>(c.vocab) * D;
}

}  // namespace

nlohmann::json ModelConfig::to_hf_json() const {
  if (is_v3()) return deepseek_v3_json(*this);
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
  try {
    const std::string type = j.value("model_type", "");
    if (type == "deepseek_v3") return from_deepseek_v3_json(j, path);
    if (type != "qwen3_moe")
      fail("train", "{}: model_type must be \"qwen3_moe\" or \"deepseek_v3\" for training, found \"{}\"", path, type);
    return from_qwen3_json(j, path);
  } catch (const nlohmann::json::exception& e) {
    fail("train", "{}: a field has the wrong type ({})", path, e.what());
  }
}

namespace {

// A required integer field that fits an int (sizes are range-checked by validate()).
void get_int(const nlohmann::json& j, const std::string& path, const char* key, int& out) {
  if (!j.contains(key) || !j[key].is_number_integer())
    fail("train", "{}: field {} missing or not an integer", path, key);
  const int64_t v = j[key].get<int64_t>();
  if (v < 0 || v > std::numeric_limits<int>::max() ||
      (j[key].is_number_unsigned() && j[key].get<uint64_t>() > INT64_MAX))
    fail("train", "{}: {}: expected an integer from 0 to {}, found {}", path, key, std::numeric_limits<int>::max(),
         j[key].dump());
  out = static_cast<int>(v);
}

// An optional integer field (absent or null: `fallback`).
int int_or(const nlohmann::json& j, const std::string& path, const char* key, int fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  int v = 0;
  get_int(j, path, key, v);
  return v;
}

}  // namespace

ModelConfig ModelConfig::from_qwen3_json(const nlohmann::json& j, const std::string& path) {
  ModelConfig c;
  auto get_int = [&](const char* key, int& out) { train::get_int(j, path, key, out); };
  get_int("num_hidden_layers", c.n_layer);
  get_int("hidden_size", c.d_model);
  get_int("num_attention_heads", c.n_head);
  get_int("num_key_value_heads", c.n_kv_head);
  get_int("num_experts", c.n_expert);
  get_int("num_experts_per_tok", c.top_k);
  get_int("moe_intermediate_size", c.d_ff_expert);
  get_int("vocab_size", c.vocab);
  get_int("max_position_embeddings", c.max_seq);
  c.head_dim = int_or(j, path, "head_dim", c.n_head > 0 ? c.d_model / c.n_head : 0);
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

ModelConfig ModelConfig::from_deepseek_v3_json(const nlohmann::json& j, const std::string& path) {
  ModelConfig c;
  c.arch = Arch::kDeepseekV3;
  auto get_int = [&](const char* key, int& out) { train::get_int(j, path, key, out); };
  get_int("num_hidden_layers", c.n_layer);
  get_int("hidden_size", c.d_model);
  get_int("num_attention_heads", c.n_head);
  get_int("n_routed_experts", c.n_expert);
  get_int("num_experts_per_tok", c.top_k);
  get_int("moe_intermediate_size", c.d_ff_expert);
  get_int("vocab_size", c.vocab);
  get_int("max_position_embeddings", c.max_seq);
  get_int("kv_lora_rank", c.kv_lora_rank);
  get_int("qk_nope_head_dim", c.qk_nope_dim);
  get_int("qk_rope_head_dim", c.qk_rope_dim);
  get_int("v_head_dim", c.v_head_dim);
  c.n_kv_head = c.n_head;
  c.head_dim = c.qk_nope_dim + c.qk_rope_dim;
  c.q_lora_rank = int_or(j, path, "q_lora_rank", 0);
  c.n_shared_expert = int_or(j, path, "n_shared_experts", 0);
  c.first_dense = int_or(j, path, "first_k_dense_replace", 0);
  c.d_ff_dense = int_or(j, path, "intermediate_size", c.d_ff_dense);
  c.routed_scaling_factor = j.value("routed_scaling_factor", 1.0);
  c.norm_topk_prob = j.value("norm_topk_prob", false);
  c.rope_theta = j.value("rope_theta", 10000.0);
  c.rms_eps = j.value("rms_norm_eps", 1e-6);
  auto require = [&](const char* key, const nlohmann::json& want) {
    if (j.contains(key) && !j[key].is_null() && j[key] != want)
      fail("train", "{}: {} must be {} for training, found {}", path, key, want.dump(), j[key].dump());
  };
  require("topk_method", "noaux_tc");
  require("scoring_func", "sigmoid");
  require("n_group", 1);
  require("topk_group", 1);
  require("moe_layer_freq", 1);
  require("num_nextn_predict_layers", 0);
  require("rope_interleave", true);
  require("tie_word_embeddings", false);
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
    fail("train", "{}: rope_scaling (YaRN) is not supported by the trainer, found {}", path, j["rope_scaling"].dump());
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
  if (c.is_v3()) {
    build_v3_layers(c, p, add);
    p.final_norm = add("model.norm.weight", {D}, false);
    p.lm_head = add("lm_head.weight", {c.vocab, D}, true);
    return p;
  }
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
  if (c.is_v3()) return active_params_v3(c);
  const int64_t D = c.d_model, Dh = c.head_dim;
  const int64_t attn = D * (c.n_head * Dh) * 2 + D * (c.n_kv_head * Dh) * 2;
  const int64_t moe = static_cast<int64_t>(c.n_expert) * D + static_cast<int64_t>(c.top_k) * 3 * D * c.d_ff_expert;
  return c.n_layer * (attn + moe) + static_cast<int64_t>(c.vocab) * D;
}

}  // namespace moe::train
