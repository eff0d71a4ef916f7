// Tensor layouts of the families `moe inspect` counts but does not run, in their checkpoints'
// own names: Grok-1 (hpcai-tech remote code), Ling / Bailing-MoE and Qwen3-Next.
#include <fmt/format.h>

#include "spec/registry_builder.h"

namespace moe::spec_detail {
namespace {

// gate / up / down Linear triple (routed when role is kRoutedExpert).
void glu(RegistryBuilder& b, const std::string& p, const char* gate, const char* up, const char* down, int64_t width,
         Role role) {
  const int64_t D = b.spec().d_model;
  if (role == Role::kRoutedExpert) {
    b.routed_linear(p + gate, width, D);
    b.routed_linear(p + up, width, D);
    b.routed_linear(p + down, D, width);
    return;
  }
  b.linear(p + gate, width, D, role);
  b.linear(p + up, width, D, role);
  b.linear(p + down, D, width, role);
}

void routed_experts(RegistryBuilder& b, const std::string& p, const char* gate, const char* up, const char* down) {
  const ModelSpec& s = b.spec();
  for (int64_t e = 0; e < s.n_expert; ++e) {
    b.expert(static_cast<int>(e));
    glu(b, p + fmt::format("{}.", e), gate, up, down, s.n_ff_expert, Role::kRoutedExpert);
  }
  b.expert(-1);
}

void head_and_norm(RegistryBuilder& b, const std::string& norm) {
  const ModelSpec& s = b.spec();
  b.at(-1, false);
  b.add(norm, {s.d_model}, Role::kNorm);
  if (!s.tie_word_embeddings) b.linear("lm_head", s.vocab, s.d_model, Role::kLmHead, false);
}

}  // namespace

// Grok-1: attn.{q,k,v,o}_proj, four norms, moe_block.gate and experts.<e>.{linear, linear_v, linear_1}.
void build_grok1(RegistryBuilder& b) {
  const ModelSpec& s = b.spec();
  const int64_t D = s.d_model, q = s.n_head * s.head_dim, kv = s.n_head_kv * s.head_dim;
  b.add("model.embed_tokens.weight", {s.vocab, D}, Role::kEmbedding);
  for (int64_t i = 0; i < s.n_layer; ++i) {
    b.at(static_cast<int>(i), false);
    const std::string p = fmt::format("model.layers.{}.", i);
    for (const char* n : {"pre_attn_norm", "post_attn_norm", "pre_moe_norm", "post_moe_norm"})
      b.add(p + n + ".weight", {D}, Role::kNorm);
    b.linear(p + "attn.q_proj", q, D, Role::kAttention);
    b.linear(p + "attn.k_proj", kv, D, Role::kAttention);
    b.linear(p + "attn.v_proj", kv, D, Role::kAttention);
    b.linear(p + "attn.o_proj", D, q, Role::kAttention);
    b.linear(p + "moe_block.gate", s.n_expert, D, Role::kRouter, false);
    routed_experts(b, p + "moe_block.experts.", "linear", "linear_v", "linear_1");
  }
  head_and_norm(b, "model.norm.weight");
}

// Ling / Bailing-MoE: model.word_embeddings, attention.query_key_value (q, k, v rows) and attention.dense.
void build_bailing(RegistryBuilder& b) {
  const ModelSpec& s = b.spec();
  const int64_t D = s.d_model, q = s.n_head * s.head_dim, kv = s.n_head_kv * s.head_dim;
  b.add("model.word_embeddings.weight", {s.vocab, D}, Role::kEmbedding);
  for (int64_t i = 0; i < s.n_layer; ++i) {
    b.at(static_cast<int>(i), false);
    const std::string p = fmt::format("model.layers.{}.", i);
    b.add(p + "input_layernorm.weight", {D}, Role::kNorm);
    b.add(p + "post_attention_layernorm.weight", {D}, Role::kNorm);
    b.linear(p + "attention.query_key_value", q + 2 * kv, D, Role::kAttention);
    if (s.attention_bias) b.add(p + "attention.query_key_value.bias", {q + 2 * kv}, Role::kAttention);
    b.linear(p + "attention.dense", D, q, Role::kAttention);
    if (s.o_bias) b.add(p + "attention.dense.bias", {D}, Role::kAttention);
    if (!s.layers[i].is_moe) {
      glu(b, p + "mlp.", "gate_proj", "up_proj", "down_proj", s.n_ff, Role::kDenseFfn);
      continue;
    }
    b.linear(p + "mlp.gate", s.n_expert, D, Role::kRouter, false);
    routed_experts(b, p + "mlp.experts.", "gate_proj", "up_proj", "down_proj");
    if (s.n_ff_shared > 0)
      glu(b, p + "mlp.shared_experts.", "gate_proj", "up_proj", "down_proj", s.n_ff_shared, Role::kSharedExpert);
  }
  head_and_norm(b, "model.norm.weight");
}

// Qwen3-Next: Gated DeltaNet layers (linear_attn.{in_proj_qkvz, in_proj_ba, conv1d, dt_bias, A_log,
// norm, out_proj}) and gated attention layers (q_proj yields the query and its output gate), MoE with
// a sigmoid-gated shared expert.
void build_qwen3_next(RegistryBuilder& b) {
  const ModelSpec& s = b.spec();
  const LinearAttnSpec& a = s.linear_attn;
  const int64_t D = s.d_model, Dh = s.head_dim;
  const int64_t key_dim = a.n_key_heads * a.key_head_dim, value_dim = a.n_value_heads * a.value_head_dim;
  b.add("model.embed_tokens.weight", {s.vocab, D}, Role::kEmbedding);
  for (int64_t i = 0; i < s.n_layer; ++i) {
    b.at(static_cast<int>(i), false);
    const std::string p = fmt::format("model.layers.{}.", i);
    b.add(p + "input_layernorm.weight", {D}, Role::kNorm);
    b.add(p + "post_attention_layernorm.weight", {D}, Role::kNorm);
    if (s.layers[i].attention == AttentionKind::kLinear) {
      const std::string l = p + "linear_attn.";
      b.linear(l + "in_proj_qkvz", 2 * key_dim + 2 * value_dim, D, Role::kAttention);
      b.linear(l + "in_proj_ba", 2 * a.n_value_heads, D, Role::kAttention);
      b.add(l + "conv1d.weight", {2 * key_dim + value_dim, 1, a.conv_kernel}, Role::kAttention);
      b.add(l + "dt_bias", {a.n_value_heads}, Role::kAttention);
      b.add(l + "A_log", {a.n_value_heads}, Role::kAttention);
      b.add(l + "norm.weight", {a.value_head_dim}, Role::kNorm);
      b.linear(l + "out_proj", D, value_dim, Role::kAttention);
    } else {
      const std::string t = p + "self_attn.";
      b.linear(t + "q_proj", 2 * s.n_head * Dh, D, Role::kAttention);  // query and output gate
      b.linear(t + "k_proj", s.n_head_kv * Dh, D, Role::kAttention);
      b.linear(t + "v_proj", s.n_head_kv * Dh, D, Role::kAttention);
      b.linear(t + "o_proj", D, s.n_head * Dh, Role::kAttention);
      b.add(t + "q_norm.weight", {Dh}, Role::kNorm);
      b.add(t + "k_norm.weight", {Dh}, Role::kNorm);
    }
    if (!s.layers[i].is_moe) {
      glu(b, p + "mlp.", "gate_proj", "up_proj", "down_proj", s.n_ff, Role::kDenseFfn);
      continue;
    }
    b.linear(p + "mlp.gate", s.n_expert, D, Role::kRouter, false);
    routed_experts(b, p + "mlp.experts.", "gate_proj", "up_proj", "down_proj");
    if (s.n_ff_shared > 0) {
      glu(b, p + "mlp.shared_expert.", "gate_proj", "up_proj", "down_proj", s.n_ff_shared, Role::kSharedExpert);
      b.linear(p + "mlp.shared_expert_gate", 1, D, Role::kSharedExpert, false);
    }
  }
  head_and_norm(b, "model.norm.weight");
}

}  // namespace moe::spec_detail
