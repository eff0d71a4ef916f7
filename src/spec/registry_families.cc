// Tensor layouts of the Llama-style families (Llama, Mistral, Qwen2/3, Mixtral, PhiMoE, Qwen2/3-MoE,
// OLMoE, DeepSeek v1/V2/V3/Kimi-K2, GLM-4.5, gpt-oss, Llama 4, Granite-MoE, JetMoE) and of DBRX, with the exact
// Hugging Face checkpoint names of each family.
#include <fmt/format.h>

#include "spec/registry_builder.h"
#include "util/error.h"

namespace moe::spec_detail {
namespace {

std::string layer_prefix(const ModelSpec& s, int64_t i) { return s.tensor_prefix + fmt::format("model.layers.{}.", i); }

void norm(RegistryBuilder& b, const std::string& base, int64_t n) {
  b.add(base + ".weight", {n}, Role::kNorm);
  if (b.spec().norm == NormKind::kLayerNorm) b.add(base + ".bias", {n}, Role::kNorm);
}

void attention_gqa(RegistryBuilder& b, const std::string& p) {
  const ModelSpec& s = b.spec();
  const int64_t q = s.n_head * s.head_dim, kv = s.n_head_kv * s.head_dim;
  const std::string a = p + "self_attn.";
  b.linear(a + "q_proj", q, s.d_model, Role::kAttention);
  if (s.attention_bias) b.add(a + "q_proj.bias", {q}, Role::kAttention);
  b.linear(a + "k_proj", kv, s.d_model, Role::kAttention);
  if (s.attention_bias) b.add(a + "k_proj.bias", {kv}, Role::kAttention);
  b.linear(a + "v_proj", kv, s.d_model, Role::kAttention);
  if (s.attention_bias) b.add(a + "v_proj.bias", {kv}, Role::kAttention);
  b.linear(a + "o_proj", s.d_model, q, Role::kAttention);
  if (s.o_bias) b.add(a + "o_proj.bias", {s.d_model}, Role::kAttention);
  if (s.qk_norm == QkNorm::kPerHead) {
    const bool hunyuan = s.family == Family::kHunyuanMoe;
    b.add(a + (hunyuan ? "query_layernorm.weight" : "q_norm.weight"), {s.head_dim}, Role::kNorm);
    b.add(a + (hunyuan ? "key_layernorm.weight" : "k_norm.weight"), {s.head_dim}, Role::kNorm);
  } else if (s.qk_norm == QkNorm::kFullWidth) {
    b.add(a + "q_norm.weight", {q}, Role::kNorm);
    b.add(a + "k_norm.weight", {kv}, Role::kNorm);
  }
  if (s.attention_sinks) b.add(a + "sinks", {s.n_head}, Role::kAttention);
}

// MiniMax lightning attention: qkv_proj [3 H Dh, D] (each head's q, k, v rows in turn), output_gate
// [H Dh, D], out_proj [D, H Dh] and the RMSNorm over H Dh of the heads' outputs.
void attention_lightning(RegistryBuilder& b, const std::string& p) {
  const ModelSpec& s = b.spec();
  const int64_t W = s.n_head * s.head_dim;
  const std::string a = p + "self_attn.";
  b.linear(a + "qkv_proj", 3 * W, s.d_model, Role::kAttention);
  b.linear(a + "output_gate", W, s.d_model, Role::kAttention);
  b.linear(a + "out_proj", s.d_model, W, Role::kAttention);
  b.add(a + "norm.weight", {W}, Role::kNorm);
}

// JetMoE's mixture of attention heads: E experts of a query projection [Hkv Dh, D] and an output
// projection [D, Hkv Dh] (routed: k of E per token), their router, the output bias and one kv_proj
// [2 Hkv Dh, D] (keys, then values) shared by every expert.
void attention_moa(RegistryBuilder& b, const std::string& p) {
  const ModelSpec& s = b.spec();
  const int64_t E = s.n_expert, D = s.d_model, kv = s.n_head_kv * s.head_dim;
  const std::string a = p + "self_attention.";
  b.linear(a + "experts.router.layer", E, D, Role::kRouter, false);
  b.routed(a + "experts.input_linear.weight", {E, kv, D}, E);
  b.routed(a + "experts.output_linear.weight", {E, D, kv}, E);
  b.add(a + "experts.bias", {D}, Role::kAttention);
  b.linear(a + "kv_proj", 2 * kv, D, Role::kAttention);
}

void attention_mla(RegistryBuilder& b, const std::string& p) {
  const ModelSpec& s = b.spec();
  const MlaSpec& m = s.mla;
  const std::string a = p + "self_attn.";
  const int64_t qk = m.qk_nope_head_dim + m.qk_rope_head_dim;
  if (m.q_lora_rank > 0) {
    b.linear(a + "q_a_proj", m.q_lora_rank, s.d_model, Role::kAttention);
    if (s.attention_bias) b.add(a + "q_a_proj.bias", {m.q_lora_rank}, Role::kAttention);
    b.add(a + "q_a_layernorm.weight", {m.q_lora_rank}, Role::kNorm);
    b.linear(a + "q_b_proj", s.n_head * qk, m.q_lora_rank, Role::kAttention);
  } else {
    b.linear(a + "q_proj", s.n_head * qk, s.d_model, Role::kAttention);
  }
  b.linear(a + "kv_a_proj_with_mqa", m.kv_lora_rank + m.qk_rope_head_dim, s.d_model, Role::kAttention);
  if (s.attention_bias) b.add(a + "kv_a_proj_with_mqa.bias", {m.kv_lora_rank + m.qk_rope_head_dim}, Role::kAttention);
  b.add(a + "kv_a_layernorm.weight", {m.kv_lora_rank}, Role::kNorm);
  b.linear(a + "kv_b_proj", s.n_head * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank, Role::kAttention);
  b.linear(a + "o_proj", s.d_model, s.n_head * m.v_head_dim, Role::kAttention);
  if (s.o_bias) b.add(a + "o_proj.bias", {s.d_model}, Role::kAttention);
}

// gate/up/down MLP (dense FFN, shared expert, or one routed expert), with biases when mlp_bias.
void swiglu(RegistryBuilder& b, const std::string& p, int64_t width, Role role) {
  const ModelSpec& s = b.spec();
  const int64_t D = s.d_model;
  if (role == Role::kRoutedExpert) {
    b.routed_linear(p + "gate_proj", width, D);
    b.routed_linear(p + "up_proj", width, D);
    b.routed_linear(p + "down_proj", D, width);
    if (s.mlp_bias) {
      b.routed(p + "gate_proj.bias", {width}, 1);
      b.routed(p + "up_proj.bias", {width}, 1);
      b.routed(p + "down_proj.bias", {D}, 1);
    }
    return;
  }
  b.linear(p + "gate_proj", width, D, role);
  b.linear(p + "up_proj", width, D, role);
  b.linear(p + "down_proj", D, width, role);
  if (s.mlp_bias) {
    b.add(p + "gate_proj.bias", {width}, role);
    b.add(p + "up_proj.bias", {width}, role);
    b.add(p + "down_proj.bias", {D}, role);
  }
}

void experts_mixtral(RegistryBuilder& b, const std::string& p) {
  const ModelSpec& s = b.spec();
  b.linear(p + "block_sparse_moe.gate", s.n_expert, s.d_model, Role::kRouter, false);
  if (s.router.has_score_bias)  // MiniMax-M2
    b.add(p + "block_sparse_moe.e_score_correction_bias", {s.n_expert}, Role::kRouter, DType::kF32);
  for (int64_t e = 0; e < s.n_expert; ++e) {
    b.expert(static_cast<int>(e));
    const std::string x = p + fmt::format("block_sparse_moe.experts.{}.", e);
    b.routed_linear(x + "w1", s.n_ff_expert, s.d_model);
    b.routed_linear(x + "w2", s.d_model, s.n_ff_expert);
    b.routed_linear(x + "w3", s.n_ff_expert, s.d_model);
  }
  b.expert(-1);
}

// Granite-MoE and JetMoE: experts fused per layer, no ".weight"-per-expert; Granite's shared MLP fuses
// gate and up too; JetMoE's block (under mlp.) adds a bias [D] to its output, counted with the router.
void experts_granite(RegistryBuilder& b, const std::string& p) {
  const ModelSpec& s = b.spec();
  const int64_t E = s.n_expert, D = s.d_model, F = s.n_ff_expert;
  const bool jetmoe = s.family == Family::kJetMoe;
  const std::string m = p + (jetmoe ? "mlp." : "block_sparse_moe.");
  b.linear(m + "router.layer", E, D, Role::kRouter, false);
  b.routed(m + "input_linear.weight", {E, 2 * F, D}, E);  // [E, 2F, D]: gate rows, then up rows
  b.routed(m + "output_linear.weight", {E, D, F}, E);     // [E, D, F]
  if (jetmoe) b.add(m + "bias", {D}, Role::kRouter);
  if (s.n_ff_shared > 0) {
    b.linear(p + "shared_mlp.input_linear", 2 * s.n_ff_shared, D, Role::kSharedExpert);  // [2Fs, D]
    b.linear(p + "shared_mlp.output_linear", D, s.n_ff_shared, Role::kSharedExpert);     // [D, Fs]
  }
}

void experts_gpt_oss(RegistryBuilder& b, const std::string& p) {
  const ModelSpec& s = b.spec();
  const int64_t E = s.n_expert, D = s.d_model, F = s.n_ff_expert;
  b.linear(p + "mlp.router", E, D, Role::kRouter, false);
  b.add(p + "mlp.router.bias", {E}, Role::kRouter);
  const std::string x = p + "mlp.experts.";
  if (b.checkpoint() && s.quant.method == QuantMethod::kMxfp4) {
    // MXFP4: 32 values per block, two 4-bit values per byte, one E8M0 scale (stored U8) per block.
    if (D % 32 != 0 || F % 32 != 0)
      fail("spec", "{}: MXFP4 needs hidden_size and intermediate_size divisible by 32 (found {} and {})", s.source, D,
           F);
    b.packed(x + "gate_up_proj_blocks", {E, 2 * F, D / 32, 16}, DType::kU8, Role::kRoutedExpert, E * 2 * F * D, E);
    b.scale(x + "gate_up_proj_scales", {E, 2 * F, D / 32}, DType::kU8, x + "gate_up_proj_blocks");
    b.routed(x + "gate_up_proj_bias", {E, 2 * F}, E);
    b.packed(x + "down_proj_blocks", {E, D, F / 32, 16}, DType::kU8, Role::kRoutedExpert, E * D * F, E);
    b.scale(x + "down_proj_scales", {E, D, F / 32}, DType::kU8, x + "down_proj_blocks");
    b.routed(x + "down_proj_bias", {E, D}, E);
    return;
  }
  b.routed(x + "gate_up_proj", {E, D, 2 * F}, E);  // [E, D, 2F]: gate and up interleaved on the last dim
  b.routed(x + "gate_up_proj_bias", {E, 2 * F}, E);
  b.routed(x + "down_proj", {E, F, D}, E);  // [E, F, D]
  b.routed(x + "down_proj_bias", {E, D}, E);
}

void experts_llama4(RegistryBuilder& b, const std::string& p) {
  const ModelSpec& s = b.spec();
  const int64_t E = s.n_expert, D = s.d_model, F = s.n_ff_expert;
  b.linear(p + "feed_forward.router", E, D, Role::kRouter, false);
  b.routed(p + "feed_forward.experts.gate_up_proj", {E, D, 2 * F}, E);  // [E, D, 2F]
  b.routed(p + "feed_forward.experts.down_proj", {E, F, D}, E);         // [E, F, D]
  swiglu(b, p + "feed_forward.shared_expert.", s.n_ff_shared, Role::kSharedExpert);
}

// Qwen2/3-MoE, OLMoE, DeepSeek v1/V2/V3, GLM-4.5: mlp.gate + mlp.experts.{e}.{gate,up,down}_proj.
void experts_mlp(RegistryBuilder& b, const std::string& p) {
  const ModelSpec& s = b.spec();
  if (s.family == Family::kErnie45Moe) {
    // kept in f32 (_keep_in_fp32_modules_strict); the bias is [1, E] under moe_statics
    b.add(p + "mlp.gate.weight", {s.n_expert, s.d_model}, Role::kRouter, DType::kF32);
    b.add(p + "mlp.moe_statics.e_score_correction_bias", {1, s.n_expert}, Role::kRouter, DType::kF32);
  } else {
    const bool hunyuan = s.family == Family::kHunyuanMoe;  // its router Linear is mlp.gate.wg
    b.linear(p + (hunyuan ? "mlp.gate.wg" : "mlp.gate"), s.n_expert, s.d_model, Role::kRouter, false);
    if (s.router.has_score_bias)
      b.add(p + "mlp.gate.e_score_correction_bias", {s.n_expert}, Role::kRouter, DType::kF32);
  }
  for (int64_t e = 0; e < s.n_expert; ++e) {
    b.expert(static_cast<int>(e));
    swiglu(b, p + fmt::format("mlp.experts.{}.", e), s.n_ff_expert, Role::kRoutedExpert);
  }
  b.expert(-1);
  if (s.n_ff_shared > 0) {
    if (s.family == Family::kQwen2Moe) {
      swiglu(b, p + "mlp.shared_expert.", s.n_ff_shared, Role::kSharedExpert);
      b.linear(p + "mlp.shared_expert_gate", 1, s.d_model, Role::kSharedExpert, false);
    } else if (s.family == Family::kHunyuanMoe) {
      swiglu(b, p + "mlp.shared_mlp.", s.n_ff_shared, Role::kSharedExpert);
    } else {
      swiglu(b, p + "mlp.shared_experts.", s.n_ff_shared, Role::kSharedExpert);
    }
  }
}

void ffn(RegistryBuilder& b, const std::string& p, bool is_moe) {
  const ModelSpec& s = b.spec();
  if (!is_moe) {
    swiglu(b, p + (s.family == Family::kLlama4 ? "feed_forward." : "mlp."), s.n_ff, Role::kDenseFfn);
    return;
  }
  switch (s.family) {
    case Family::kMixtral:
    case Family::kPhiMoe:
    case Family::kMiniMaxM2:
    case Family::kMiniMax:
      experts_mixtral(b, p);
      break;
    case Family::kGptOss:
      experts_gpt_oss(b, p);
      break;
    case Family::kGraniteMoe:
    case Family::kJetMoe:
      experts_granite(b, p);
      break;
    case Family::kLlama4:
      experts_llama4(b, p);
      break;
    default:
      experts_mlp(b, p);
      break;
  }
}

void decoder_layer(RegistryBuilder& b, int64_t i, bool is_moe, bool is_mtp) {
  const ModelSpec& s = b.spec();
  const std::string p = layer_prefix(s, i);
  b.at(static_cast<int>(i), is_mtp);
  norm(b, p + "input_layernorm", s.d_model);
  if (s.is_mla)
    attention_mla(b, p);
  else if (s.family == Family::kJetMoe)
    attention_moa(b, p);
  else if (i < s.n_layer && s.layers[static_cast<size_t>(i)].attention == AttentionKind::kLightning)
    attention_lightning(b, p);
  else
    attention_gqa(b, p);
  norm(b, p + "post_attention_layernorm", s.d_model);
  ffn(b, p, is_moe);
}

// DeepSeek-V3 / GLM-4.5 MTP module j, stored as layer n_layer + j with its own embedding and head copies.
void mtp_layer(RegistryBuilder& b, int64_t j) {
  const ModelSpec& s = b.spec();
  const int64_t i = s.n_layer + j;
  const std::string p = layer_prefix(s, i);
  decoder_layer(b, i, s.layers.back().is_moe, true);
  b.add(p + "embed_tokens.weight", {s.vocab, s.d_model}, Role::kEmbedding);
  b.add(p + "enorm.weight", {s.d_model}, Role::kNorm);
  b.add(p + "hnorm.weight", {s.d_model}, Role::kNorm);
  b.linear(p + "eh_proj", s.d_model, 2 * s.d_model, Role::kMtp, false);
  b.add(p + "shared_head.norm.weight", {s.d_model}, Role::kNorm);
  b.linear(p + "shared_head.head", s.vocab, s.d_model, Role::kLmHead, false);
}

}  // namespace

void build_llama_style(RegistryBuilder& b) {
  const ModelSpec& s = b.spec();
  const std::string m = s.tensor_prefix + "model.";
  b.add(m + "embed_tokens.weight", {s.vocab, s.d_model}, Role::kEmbedding);
  for (int64_t i = 0; i < s.n_layer; ++i) decoder_layer(b, i, s.layers[i].is_moe, false);
  b.at(-1, false);
  norm(b, m + "norm", s.d_model);
  if (!s.tie_word_embeddings) b.linear(s.tensor_prefix + "lm_head", s.vocab, s.d_model, Role::kLmHead, false);
  if (s.lm_head_bias) b.add(s.tensor_prefix + "lm_head.bias", {s.vocab}, Role::kLmHead);
  if (b.include_mtp())
    for (int64_t j = 0; j < s.n_mtp_layers; ++j) mtp_layer(b, j);
  b.at(-1, false);
}

void build_dbrx(RegistryBuilder& b) {
  const ModelSpec& s = b.spec();
  const int64_t D = s.d_model, E = s.n_expert, F = s.n_ff_expert;
  b.add("transformer.wte.weight", {s.vocab, D}, Role::kEmbedding);
  for (int64_t i = 0; i < s.n_layer; ++i) {
    b.at(static_cast<int>(i), false);
    const std::string p = fmt::format("transformer.blocks.{}.", i);
    const std::string na = p + "norm_attn_norm.";
    b.add(na + "norm_1.weight", {D}, Role::kNorm);
    b.linear(na + "attn.Wqkv", (s.n_head + 2 * s.n_head_kv) * s.head_dim, D, Role::kAttention);
    b.linear(na + "attn.out_proj", D, s.n_head * s.head_dim, Role::kAttention);
    b.add(na + "norm_2.weight", {D}, Role::kNorm);
    b.linear(p + "ffn.router.layer", E, D, Role::kRouter, false);
    // Experts fused per layer, each [E*F, D] with no ".weight" suffix (w2 stored transposed).
    b.routed(p + "ffn.experts.mlp.w1", {E * F, D}, E);
    b.routed(p + "ffn.experts.mlp.v1", {E * F, D}, E);
    b.routed(p + "ffn.experts.mlp.w2", {E * F, D}, E);
  }
  b.at(-1, false);
  b.add("transformer.norm_f.weight", {D}, Role::kNorm);
  if (!s.tie_word_embeddings) b.linear("lm_head", s.vocab, D, Role::kLmHead, false);
}

}  // namespace moe::spec_detail
