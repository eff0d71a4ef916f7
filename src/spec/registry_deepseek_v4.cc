// DeepSeek-V4 tensor layout with the official checkpoint names (embed, layers.{i}.attn.*,
// ffn.*, hc_*, mtp.{j}.*), as documented in shared/notes/deepseek-v4-architecture.md:
// FP8 linears with E8M0 128x128 block scales, routed experts packed FP4 (I8 [out, in/2]) with
// E8M0 scales per 32 inputs, fp32 mHC / ape / sinks / router bias, int64 tid2eid in hash layers.
#include <fmt/format.h>

#include <string_view>
#include <utility>

#include "spec/deepseek_v4_names.h"
#include "spec/registry_builder.h"
#include "util/error.h"

namespace moe {
namespace {

using NamePair = std::pair<std::string_view, std::string_view>;

// Official suffix after "layers.N.attn." -> transformers' after "model.layers.N.".
constexpr NamePair kHfAttention[] = {
    {"attn_sink", "self_attn.sinks"},
    {"wq_a.weight", "self_attn.q_a_proj.weight"},
    {"q_norm.weight", "self_attn.q_a_norm.weight"},
    {"wq_b.weight", "self_attn.q_b_proj.weight"},
    {"wkv.weight", "self_attn.kv_proj.weight"},
    {"kv_norm.weight", "self_attn.kv_norm.weight"},
    {"wo_a.weight", "self_attn.o_a_proj.weight"},
    {"wo_b.weight", "self_attn.o_b_proj.weight"},
    {"compressor.ape", "self_attn.compressor.position_bias"},
    {"compressor.wkv.weight", "self_attn.compressor.kv_proj.weight"},
    {"compressor.wgate.weight", "self_attn.compressor.gate_proj.weight"},
    {"compressor.norm.weight", "self_attn.compressor.kv_norm.weight"},
    {"indexer.wq_b.weight", "self_attn.compressor.indexer.q_b_proj.weight"},
    {"indexer.weights_proj.weight", "self_attn.compressor.indexer.scorer.weights_proj.weight"},
    {"indexer.compressor.ape", "self_attn.compressor.indexer.position_bias"},
    {"indexer.compressor.wkv.weight", "self_attn.compressor.indexer.kv_proj.weight"},
    {"indexer.compressor.wgate.weight", "self_attn.compressor.indexer.gate_proj.weight"},
    {"indexer.compressor.norm.weight", "self_attn.compressor.indexer.kv_norm.weight"},
};
// Official suffix after "layers.N." -> transformers' after "model.layers.N.".
constexpr NamePair kHfLayer[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"hc_attn_fn", "attn_hc.fn"},
    {"hc_attn_base", "attn_hc.base"},
    {"hc_attn_scale", "attn_hc.scale"},
    {"hc_ffn_fn", "ffn_hc.fn"},
    {"hc_ffn_base", "ffn_hc.base"},
    {"hc_ffn_scale", "ffn_hc.scale"},
    {"ffn.gate.weight", "mlp.gate.weight"},
    {"ffn.gate.bias", "mlp.gate.e_score_correction_bias"},
    {"ffn.gate.tid2eid", "mlp.gate.tid2eid"},
    {"ffn.shared_experts.w1.weight", "mlp.shared_experts.gate_proj.weight"},
    {"ffn.shared_experts.w2.weight", "mlp.shared_experts.down_proj.weight"},
    {"ffn.shared_experts.w3.weight", "mlp.shared_experts.up_proj.weight"},
};
constexpr NamePair kHfTop[] = {
    {"embed.weight", "model.embed_tokens.weight"},
    {"norm.weight", "model.norm.weight"},
    {"head.weight", "lm_head.weight"},
    {"hc_head_fn", "model.hc_head.hc_fn"},
    {"hc_head_base", "model.hc_head.hc_base"},
    {"hc_head_scale", "model.hc_head.hc_scale"},
};

template <size_t N>
const std::string_view* lookup(const NamePair (&table)[N], std::string_view key) {
  for (const NamePair& p : table)
    if (p.first == key) return &p.second;
  return nullptr;
}

}  // namespace

bool dsv4_hf_layout(const ModelSpec& s) { return s.family == Family::kDeepseekV4 && s.dsv4.hf_layout; }

std::string dsv4_hf_name(const std::string& official) {
  if (const auto* top = lookup(kHfTop, official)) return std::string(*top);
  if (official.starts_with("layers.")) {
    const size_t dot = official.find('.', 7);
    if (dot != std::string::npos) {
      const std::string prefix = "model." + official.substr(0, dot + 1);
      const std::string_view rest = std::string_view(official).substr(dot + 1);
      if (rest.starts_with("attn."))
        if (const auto* a = lookup(kHfAttention, rest.substr(5))) return prefix + std::string(*a);
      if (const auto* l = lookup(kHfLayer, rest)) return prefix + std::string(*l);
    }
  }
  fail("spec", "DeepSeek-V4 tensor {} has no transformers name", official);
}

namespace spec_detail {
namespace {

// The name of an official tensor in the checkpoint's layout.
std::string named(const RegistryBuilder& b, const std::string& official) {
  return dsv4_hf_layout(b.spec()) ? dsv4_hf_name(official) : official;
}
// A Linear's base name (without ".weight") in the checkpoint's layout.
std::string named_linear(const RegistryBuilder& b, const std::string& base) {
  const std::string w = named(b, base + ".weight");
  return w.substr(0, w.size() - 7);
}

// Compressor of width c*d over windows of `ratio` tokens (c = 2 for the overlapping ratio-4 one).
void compressor(RegistryBuilder& b, const std::string& p, int ratio, int64_t width) {
  const int64_t D = b.spec().d_model;
  const int64_t c = ratio == 4 ? 2 : 1;
  b.add(named(b, p + "ape"), {ratio, c * width}, Role::kAttention, DType::kF32);
  b.add(named(b, p + "wkv.weight"), {c * width, D}, Role::kAttention, DType::kBF16);
  b.add(named(b, p + "wgate.weight"), {c * width, D}, Role::kAttention, DType::kBF16);
  b.add(named(b, p + "norm.weight"), {width}, Role::kNorm, DType::kBF16);
}

void attention(RegistryBuilder& b, const std::string& p, int ratio) {
  const ModelSpec& s = b.spec();
  const Dsv4Spec& v = s.dsv4;
  const int64_t D = s.d_model, H = s.n_head, d = s.head_dim, rq = s.mla.q_lora_rank;
  const int64_t G = v.o_groups, ro = v.o_lora_rank;
  const std::string a = p + "attn.";
  b.add(named(b, a + "attn_sink"), {H}, Role::kAttention, DType::kF32);
  b.linear(named_linear(b, a + "wq_a"), rq, D, Role::kAttention);
  b.add(named(b, a + "q_norm.weight"), {rq}, Role::kNorm, DType::kBF16);
  b.linear(named_linear(b, a + "wq_b"), H * d, rq, Role::kAttention);
  b.linear(named_linear(b, a + "wkv"), d, D, Role::kAttention);  // one K=V head shared by all query heads
  b.add(named(b, a + "kv_norm.weight"), {d}, Role::kNorm, DType::kBF16);
  b.linear(named_linear(b, a + "wo_a"), G * ro, H * d / G,
           Role::kAttention);  // block-diagonal: group g maps its H/G heads to ro
  b.linear(named_linear(b, a + "wo_b"), D, G * ro, Role::kAttention);
  if (ratio > 0) compressor(b, a + "compressor.", ratio, d);
  if (ratio == 4) {
    b.linear(named_linear(b, a + "indexer.wq_b"), v.index_n_heads * v.index_head_dim, rq, Role::kAttention);
    b.add(named(b, a + "indexer.weights_proj.weight"), {v.index_n_heads, D}, Role::kAttention, DType::kBF16);
    compressor(b, a + "indexer.compressor.", 4, v.index_head_dim);
  }
}

void hyper_connections(RegistryBuilder& b, const std::string& p, const std::string& which) {
  const ModelSpec& s = b.spec();
  const int64_t n = s.dsv4.hc_mult, m = (2 + n) * n;
  b.add(named(b, p + "hc_" + which + "_fn"), {m, n * s.d_model}, Role::kHyperConnection, DType::kF32);
  b.add(named(b, p + "hc_" + which + "_base"), {m}, Role::kHyperConnection, DType::kF32);
  b.add(named(b, p + "hc_" + which + "_scale"), {3}, Role::kHyperConnection, DType::kF32);
}

void hc_head(RegistryBuilder& b, const std::string& p) {
  const ModelSpec& s = b.spec();
  const int64_t n = s.dsv4.hc_mult;
  b.add(named(b, p + "hc_head_fn"), {n, n * s.d_model}, Role::kHyperConnection, DType::kF32);
  b.add(named(b, p + "hc_head_base"), {n}, Role::kHyperConnection, DType::kF32);
  b.add(named(b, p + "hc_head_scale"), {1}, Role::kHyperConnection, DType::kF32);
}

void routed_expert(RegistryBuilder& b, const std::string& base, int64_t out, int64_t in) {
  const ModelSpec& s = b.spec();
  if (!(b.checkpoint() && s.quant.experts_fp4)) {
    b.routed_linear(base, out, in);
    return;
  }
  if (in % 32 != 0) fail("spec", "{}: FP4 experts need input widths divisible by 32, found {}", s.source, in);
  // Two FP4 values per I8 byte; one E8M0 scale per 32 inputs.
  b.packed(base + ".weight", {out, in / 2}, DType::kI8, Role::kRoutedExpert, out * in, 1);
  b.scale(base + ".scale", {out, in / 32}, DType::kF8E8M0, base + ".weight");
}

void moe_ffn(RegistryBuilder& b, const std::string& p, bool hash) {
  const ModelSpec& s = b.spec();
  const int64_t D = s.d_model, E = s.n_expert, I = s.n_ff_expert;
  b.add(named(b, p + "ffn.gate.weight"), {E, D}, Role::kRouter, DType::kBF16);
  if (hash) {
    b.packed(named(b, p + "ffn.gate.tid2eid"), {s.vocab, s.n_expert_used}, DType::kI64, Role::kIndexTable, 0, 0);
  } else {
    b.add(named(b, p + "ffn.gate.bias"), {E}, Role::kRouter, DType::kF32);
  }
  if (dsv4_hf_layout(s)) {
    // transformers fuses the experts: gate_up_proj [E, 2F, D] (w1 rows, then w3 rows), down_proj [E, D, F].
    const std::string x = "model." + p + "mlp.experts.";
    b.routed(x + "gate_up_proj", {E, 2 * I, D}, E);
    b.routed(x + "down_proj", {E, D, I}, E);
  }
  for (int64_t e = 0; e < E && !dsv4_hf_layout(s); ++e) {
    b.expert(static_cast<int>(e));
    const std::string x = p + fmt::format("ffn.experts.{}.", e);
    routed_expert(b, x + "w1", I, D);
    routed_expert(b, x + "w2", D, I);
    routed_expert(b, x + "w3", I, D);
  }
  b.expert(-1);
  const int64_t S = s.n_ff_shared;
  b.linear(named_linear(b, p + "ffn.shared_experts.w1"), S, D, Role::kSharedExpert);
  b.linear(named_linear(b, p + "ffn.shared_experts.w2"), D, S, Role::kSharedExpert);
  b.linear(named_linear(b, p + "ffn.shared_experts.w3"), S, D, Role::kSharedExpert);
}

void block(RegistryBuilder& b, const std::string& p, int ratio, bool hash) {
  const int64_t D = b.spec().d_model;
  attention(b, p, ratio);
  hyper_connections(b, p, "attn");
  hyper_connections(b, p, "ffn");
  b.add(named(b, p + "attn_norm.weight"), {D}, Role::kNorm, DType::kBF16);
  b.add(named(b, p + "ffn_norm.weight"), {D}, Role::kNorm, DType::kBF16);
  moe_ffn(b, p, hash);
}

}  // namespace

void build_deepseek_v4(RegistryBuilder& b) {
  const ModelSpec& s = b.spec();
  const int64_t D = s.d_model;
  if ((s.n_head * s.head_dim) % s.dsv4.o_groups != 0)
    fail("spec", "{}: heads x head_dim {} is not divisible by o_groups {}", s.source, s.n_head * s.head_dim,
         s.dsv4.o_groups);
  b.add(named(b, "embed.weight"), {s.vocab, D}, Role::kEmbedding, DType::kBF16);
  for (int64_t i = 0; i < s.n_layer; ++i) {
    b.at(static_cast<int>(i), false);
    block(b, fmt::format("layers.{}.", i), s.layers[i].compress_ratio, s.layers[i].hash_routed);
  }
  b.at(-1, false);
  b.add(named(b, "norm.weight"), {D}, Role::kNorm, DType::kBF16);
  b.linear(named_linear(b, "head"), s.vocab, D, Role::kLmHead, false);
  hc_head(b, "");
  if (!b.include_mtp() || dsv4_hf_layout(s)) return;  // transformers drops the MTP block
  for (int64_t j = 0; j < s.n_mtp_layers; ++j) {
    // The MTP block reuses the main embed and head; it uses compress_ratios[n_layer + j].
    b.at(static_cast<int>(s.n_layer + j), true);
    const std::string p = fmt::format("mtp.{}.", j);
    block(b, p, s.dsv4.compress_ratios[s.n_layer + j], false);
    b.linear(named_linear(b, p + "e_proj"), D, D, Role::kMtp);
    b.linear(named_linear(b, p + "h_proj"), D, D, Role::kMtp);
    b.add(named(b, p + "enorm.weight"), {D}, Role::kNorm, DType::kBF16);
    b.add(named(b, p + "hnorm.weight"), {D}, Role::kNorm, DType::kBF16);
    b.add(named(b, p + "norm.weight"), {D}, Role::kNorm, DType::kBF16);
    hc_head(b, p);
  }
  b.at(-1, false);
}

}  // namespace spec_detail
}  // namespace moe
