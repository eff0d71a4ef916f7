// GGUF <-> Hugging Face tensor names (see gguf_names.h).
#include "model/gguf_names.h"

namespace moe::gguf_names {
namespace {

constexpr Rule kLayerRules[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_output.bias", "self_attn.o_proj.bias"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"attn_sinks.weight", "self_attn.sinks"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"post_attention_norm.weight", "post_attention_layernorm.weight"},
    {"attn_q_a.weight", "self_attn.q_a_proj.weight"},
    {"attn_q_a_norm.weight", "self_attn.q_a_layernorm.weight"},
    {"attn_q_b.weight", "self_attn.q_b_proj.weight"},
    {"attn_kv_a_mqa.weight", "self_attn.kv_a_proj_with_mqa.weight"},
    {"attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight"},
    {"attn_kv_b.weight", "self_attn.kv_b_proj.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};

}  // namespace

const Rule* layer_rules(int* n) {
  *n = static_cast<int>(sizeof(kLayerRules) / sizeof(kLayerRules[0]));
  return kLayerRules;
}

const char* hf_for(const std::string& gguf_suffix) {
  for (const Rule& r : kLayerRules)
    if (gguf_suffix == r.gguf) return r.hf;
  return nullptr;
}

const char* gguf_for(const std::string& hf_suffix, Family family) {
  if (hf_suffix == "post_attention_layernorm.weight")
    return family == Family::kGptOss ? "post_attention_norm.weight" : "ffn_norm.weight";
  for (const Rule& r : kLayerRules)
    if (hf_suffix == r.hf) return r.gguf;
  return nullptr;
}

const char* expert_hf_name(const ModelSpec& spec, const std::string& which) {
  if (spec.family == Family::kMixtral) return which == "gate" ? "w1" : which == "up" ? "w3" : "w2";
  return which == "gate" ? "gate_proj" : which == "up" ? "up_proj" : "down_proj";
}

std::string shared_prefix(const ModelSpec& spec) {
  return spec.family == Family::kQwen2Moe ? "shared_expert." : "shared_experts.";
}

const char* gguf_architecture(const ModelSpec& spec) {
  switch (spec.family) {
    case Family::kLlama:
    case Family::kMixtral:
      return "llama";
    case Family::kQwen2Moe:
      return "qwen2moe";
    case Family::kQwen3Moe:
      return "qwen3moe";
    case Family::kOlmoe:
      return "olmoe";
    case Family::kDeepseekV2:
    case Family::kDeepseekV3:
      return "deepseek2";
    case Family::kGptOss:
      return "gpt-oss";
    default:
      return nullptr;
  }
}

std::string gguf_name(const ModelSpec& spec, const std::string& hf) {
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "lm_head.weight") return "output.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  const std::string pre = "model.layers.";
  if (hf.rfind(pre, 0) != 0) return {};
  const size_t dot = hf.find('.', pre.size());
  if (dot == std::string::npos) return {};
  const std::string blk = "blk." + hf.substr(pre.size(), dot - pre.size()) + ".", rest = hf.substr(dot + 1);
  auto ends = [&](const std::string& tail) {
    return rest.size() >= tail.size() && rest.compare(rest.size() - tail.size(), tail.size(), tail) == 0;
  };
  if (ends("mlp.gate.weight") || ends("block_sparse_moe.gate.weight")) return blk + "ffn_gate_inp.weight";
  for (const char* w : {"gate", "up", "down"}) {
    if (rest.find("shared_expert") != std::string::npos && ends(std::string(w) + "_proj.weight"))
      return blk + "ffn_" + w + "_shexp.weight";
    if (rest.find("experts.") != std::string::npos && ends(std::string(expert_hf_name(spec, w)) + ".weight"))
      return blk + "ffn_" + w + "_exps.weight";
  }
  if (const char* g = gguf_for(rest, spec.family)) return blk + g;
  return {};
}

}  // namespace moe::gguf_names
