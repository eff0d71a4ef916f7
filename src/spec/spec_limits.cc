// Config size bounds (see spec_limits.h).
#include "spec/spec_limits.h"

#include <fmt/format.h>

#include "util/error.h"

namespace moe {

void check_spec_field(const std::string& source, std::string_view field, int64_t value, int64_t max) {
  if (value > max) fail("spec", "{}: {}: expected at most {}, found {}", source, field, max, value);
}

void check_spec_limits(const ModelSpec& s) {
  const std::string& src = s.source;
  check_spec_field(src, "num_hidden_layers", s.n_layer, kMaxSpecLayers);
  check_spec_field(src, "num_nextn_predict_layers", s.n_mtp_layers, kMaxSpecLayers);
  check_spec_field(src, "hidden_size", s.d_model, kMaxSpecWidth);
  check_spec_field(src, "num_attention_heads", s.n_head, kMaxSpecHeads);
  check_spec_field(src, "num_key_value_heads", s.n_head_kv, kMaxSpecHeads);
  check_spec_field(src, "head_dim", s.head_dim, kMaxSpecHeads);
  check_spec_field(src, "vocab_size", s.vocab, kMaxSpecVocab);
  check_spec_field(src, "intermediate_size", s.n_ff, kMaxSpecWidth);
  check_spec_field(src, "num_experts", s.n_expert, kMaxSpecHeads);
  check_spec_field(src, "moe_intermediate_size", s.n_ff_expert, kMaxSpecWidth);
  check_spec_field(src, "n_shared_experts", s.n_expert_shared, kMaxSpecHeads);
  check_spec_field(src, "shared expert width", s.n_ff_shared, kMaxSpecWidth);
  check_spec_field(src, "n_group", s.router.n_group, kMaxSpecHeads);
  check_spec_field(src, "q_lora_rank", s.mla.q_lora_rank, kMaxSpecWidth);
  check_spec_field(src, "kv_lora_rank", s.mla.kv_lora_rank, kMaxSpecWidth);
  check_spec_field(src, "qk_nope_head_dim", s.mla.qk_nope_head_dim, kMaxSpecHeads);
  check_spec_field(src, "qk_rope_head_dim", s.mla.qk_rope_head_dim, kMaxSpecHeads);
  check_spec_field(src, "v_head_dim", s.mla.v_head_dim, kMaxSpecHeads);
  check_spec_field(src, "index_n_heads", s.dsv4.index_n_heads, kMaxSpecHeads);
  check_spec_field(src, "index_head_dim", s.dsv4.index_head_dim, kMaxSpecHeads);
  check_spec_field(src, "o_lora_rank", s.dsv4.o_lora_rank, kMaxSpecWidth);
  check_spec_field(src, "o_groups", s.dsv4.o_groups, kMaxSpecHeads);
  check_spec_field(src, "hc_mult", s.dsv4.hc_mult, kMaxSpecHeads);
  using Num = long double;
  const Num layers = Num(s.n_layer) + Num(s.n_mtp_layers);
  const Num tensors = layers * (3 * Num(s.n_expert) + 64);
  if (tensors > Num(kMaxSpecTensors)) {
    fail("spec", "{}: num_hidden_layers = {} x num_experts = {}: {:.3g} tensors, more than the {} this engine lists",
         src, s.n_layer, s.n_expert, static_cast<double>(tensors), kMaxSpecTensors);
  }
  // An upper estimate of the parameters: every layer with attention, a dense FFN, all experts
  // and the shared ones at the largest of the declared widths, plus embedding and head.
  const Num D = s.d_model;
  const Num qkv = (2 * Num(s.n_head) + 2 * Num(s.n_head_kv)) * Num(s.head_dim) * D;
  const MlaSpec& m = s.mla;
  const Num H = s.n_head, qk = Num(m.qk_nope_head_dim) + Num(m.qk_rope_head_dim);
  const Num mla = Num(m.q_lora_rank) * (D + H * qk) + Num(m.kv_lora_rank) * (D + H * (qk + Num(m.v_head_dim))) +
                  D * H * (qk + Num(m.v_head_dim));
  const Num ffn = 3 * D * (Num(s.n_ff) + Num(s.n_expert) * Num(s.n_ff_expert) + Num(s.n_ff_shared) + Num(s.n_expert));
  const Num params = layers * (qkv + mla + ffn) + 2 * Num(s.vocab) * D;
  if (params > kMaxSpecParams) {
    fail(
        "spec",
        "{}: the config describes up to {:.3g} parameters (num_hidden_layers {}, hidden_size {}, num_experts {}, "
        "moe_intermediate_size {}, intermediate_size {}, vocab_size {}), more than the {:.3g} this engine accounts for",
        src, static_cast<double>(params), s.n_layer, s.d_model, s.n_expert, s.n_ff_expert, s.n_ff, s.vocab,
        static_cast<double>(kMaxSpecParams));
  }
}

}  // namespace moe
