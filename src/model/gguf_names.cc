// GGUF <-> Hugging Face tensor names (see gguf_names.h).
#include "model/gguf_names.h"

#include <cctype>

#include <fmt/format.h>

#include "model/families.h"

namespace moe::gguf_names {

std::vector<Rule> layer_rules(const ModelSpec& spec) {
  const DecoderNames n = decoder_names(spec);
  std::vector<Rule> r;
  for (const char* part : {"weight", "bias"}) {
    r.push_back({fmt::format("attn_norm.{}", part), fmt::format("{}.{}", n.in_norm, part)});
    // The post-attention norm: gpt-oss and GLM-4.5 name it post_attention_norm, DBRX attn_output_norm.
    const char* post = spec.family == Family::kGptOss || spec.family == Family::kGlm4Moe ? "post_attention_norm"
                       : spec.family == Family::kDbrx                                    ? "attn_output_norm"
                                                                                         : "ffn_norm";
    r.push_back({fmt::format("{}.{}", post, part), fmt::format("{}.{}", n.post_norm, part)});
    if (n.fused_qkv.empty()) {
      for (const char* x : {"q", "k", "v"})
        r.push_back({fmt::format("attn_{}.{}", x, part), fmt::format("{}{}_proj.{}", n.attn, x, part)});
    } else {
      r.push_back({fmt::format("attn_qkv.{}", part), fmt::format("{}{}.{}", n.attn, n.fused_qkv, part)});
    }
    r.push_back({fmt::format("attn_output.{}", part), fmt::format("{}{}.{}", n.attn, n.o_proj, part)});
  }
  r.push_back({"attn_q_norm.weight", n.attn + "q_norm.weight"});
  r.push_back({"attn_k_norm.weight", n.attn + "k_norm.weight"});
  r.push_back({"attn_sinks.weight", n.attn + "sinks"});
  for (const char* x : {"gate", "up", "down"})
    r.push_back({fmt::format("ffn_{}.weight", x), fmt::format("{}{}_proj.weight", n.dense_ffn, x)});
  if (spec.is_mla) {
    r.push_back({"attn_q_a.weight", n.attn + "q_a_proj.weight"});
    r.push_back({"attn_q_a_norm.weight", n.attn + "q_a_layernorm.weight"});
    r.push_back({"attn_q_b.weight", n.attn + "q_b_proj.weight"});
    r.push_back({"attn_kv_a_mqa.weight", n.attn + "kv_a_proj_with_mqa.weight"});
    r.push_back({"attn_kv_a_norm.weight", n.attn + "kv_a_layernorm.weight"});
    r.push_back({"attn_kv_b.weight", n.attn + "kv_b_proj.weight"});
  }
  return r;
}

std::string gguf_for(const ModelSpec& spec, const std::string& hf_suffix) {
  for (const Rule& r : layer_rules(spec))
    if (hf_suffix == r.hf) return r.gguf;
  return {};
}

const char* expert_hf_name(const ModelSpec& spec, const std::string& which) {
  if (spec.family == Family::kMixtral || spec.family == Family::kPhiMoe || spec.family == Family::kMiniMax)
    return which == "gate" ? "w1" : which == "up" ? "w3" : "w2";
  return which == "gate" ? "gate_proj" : which == "up" ? "up_proj" : "down_proj";
}

std::string shared_prefix(const ModelSpec& spec, int64_t layer) {
  if (spec.family == Family::kGraniteMoe) return decoder_names(spec).layer(layer) + "shared_mlp.";
  const bool one = spec.family == Family::kQwen2Moe || spec.family == Family::kLlama4;
  return ffn_prefix(spec, layer) + (one ? "shared_expert." : "shared_experts.");
}

std::string router_name(const ModelSpec& spec, int64_t layer) {
  const std::string p = ffn_prefix(spec, layer);
  switch (spec.family) {
    case Family::kGptOss:
    case Family::kLlama4:
      return p + "router.weight";
    case Family::kGraniteMoe:
    case Family::kJetMoe:
    case Family::kDbrx:
      return p + "router.layer.weight";
    default:
      return p + "gate.weight";
  }
}

std::string score_bias_name(const ModelSpec& spec, int64_t layer) {
  return ffn_prefix(spec, layer) +
         (spec.family == Family::kErnie45Moe ? "moe_statics.e_score_correction_bias" : "gate.e_score_correction_bias");
}

bool fused_expert_tensor(const ModelSpec& spec, const std::string& hf) {
  const auto has = [&](const char* s) { return hf.find(s) != std::string::npos; };
  switch (spec.family) {
    case Family::kGptOss:
      return has(".experts.");
    case Family::kGraniteMoe:
      return has("input_linear") || has("output_linear");
    case Family::kDbrx:
      return has(".experts.mlp.");
    case Family::kLlama4:
      return has(".experts.gate_up_proj") || has(".experts.down_proj");
    default:
      return false;
  }
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
    case Family::kGlm4Moe:
      return "glm4moe";
    case Family::kDots1:
      return "dots1";
    case Family::kErnie45Moe:
      return "ernie4_5-moe";
    case Family::kGraniteMoe:
      return "granitemoe";
    case Family::kPhiMoe:
      return "phimoe";
    case Family::kDbrx:
      return "dbrx";
    case Family::kLlama4:
      return "llama4";
    default:
      return nullptr;
  }
}

bool permutes_qk(const ModelSpec& spec) {
  return spec.family == Family::kLlama || spec.family == Family::kMixtral || spec.family == Family::kGraniteMoe;
}

std::string gguf_name(const ModelSpec& spec, const std::string& hf) {
  const DecoderNames n = decoder_names(spec);
  if (hf == n.embed) return "token_embd.weight";
  for (const char* part : {"weight", "bias"}) {
    if (hf == n.head + "." + part) return fmt::format("output.{}", part);
    if (hf == n.final_norm + "." + part) return fmt::format("output_norm.{}", part);
  }
  if (hf.rfind(n.layers, 0) != 0) return {};
  const size_t dot = hf.find('.', n.layers.size());
  if (dot == std::string::npos) return {};
  const std::string num = hf.substr(n.layers.size(), dot - n.layers.size());
  if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) return {};
  const int64_t layer = std::stoll(num);
  const std::string blk = "blk." + num + ".", rest = hf.substr(dot + 1);
  if (hf == router_name(spec, layer)) return blk + "ffn_gate_inp.weight";
  if (hf == score_bias_name(spec, layer)) return blk + "exp_probs_b.bias";
  const std::string sp = shared_prefix(spec, layer), x = ffn_prefix(spec, layer) + "experts.";
  for (const char* w : {"gate", "up", "down"}) {
    if (hf == sp + w + "_proj.weight") return blk + "ffn_" + w + "_shexp.weight";
    if (hf.rfind(x, 0) == 0 && hf.size() > x.size() && std::isdigit(static_cast<unsigned char>(hf[x.size()])) &&
        hf.find(std::string(".") + expert_hf_name(spec, w) + ".weight") != std::string::npos)
      return blk + "ffn_" + w + "_exps.weight";
  }
  const std::string g = gguf_for(spec, rest);
  return g.empty() ? std::string() : blk + g;
}

}  // namespace moe::gguf_names
