// MiniMax-Text-01 as transformers' MiniMaxConfig reads it (a MixtralConfig plus layer_types, block_size
// and six residual factors): lightning attention layers ("linear_attention") between softmax ones
// ("full_attention"; default: layer i is full when i is even), Mixtral's MoE in every layer.
#include <cmath>

#include "spec/config_families.h"
#include "util/error.h"

namespace moe::spec_detail {

void parse_minimax(ConfigReader& r, ModelSpec& s) {
  read_core_dims(r, s);
  read_common(r, s);  // MixtralConfig's defaults: rms_norm_eps 1e-5, rope_theta 1e6
  s.n_expert = r.int_or({"num_local_experts", "num_experts"}, 8);
  s.n_expert_used = r.int_or({"num_experts_per_tok"}, 2);
  s.n_ff_expert = r.req_int({"intermediate_size"});
  if (s.n_expert == 0) r.fail_field("num_local_experts", "must be at least 1");
  if (s.n_expert_used == 0 || s.n_expert_used > s.n_expert)
    r.fail_field("num_experts_per_tok",
                 fmt::format("must be in [1, num_local_experts = {}], found {}", s.n_expert, s.n_expert_used));
  s.router.norm_topk_prob = true;  // softmax over all experts, top-k renormalized (Mixtral)
  // MiniMax's own config rotates the first rotary_dim dims of each head (the release: 64 of 128), NeoX
  // halves within them, the rest passed through (MiniMax's vLLM model: rotary_dim, is_neox_style), as
  // GLM-4.5's partial_rotary_factor does.
  if (auto rot = r.opt_int({"rotary_dim"})) {
    if (*rot == 0 || *rot > s.head_dim || *rot % 2)
      r.fail_field("rotary_dim", fmt::format("{} is not an even size in (0, head_dim {}]", *rot, s.head_dim));
    const double f = static_cast<double>(*rot) / static_cast<double>(s.head_dim);
    if (r.has({"partial_rotary_factor"}) && std::abs(f - s.rope.partial_rotary_factor) > 1e-9)
      r.fail_field("rotary_dim", fmt::format("{} contradicts partial_rotary_factor {} x head_dim {}", *rot,
                                             s.rope.partial_rotary_factor, s.head_dim));
    s.rope.partial_rotary_factor = f;
  }
  s.sliding_window = r.is_null("sliding_window") ? 0 : r.int_or({"sliding_window"}, 0);
  s.lightning_block_size = r.int_or({"block_size"}, 256);
  if (s.lightning_block_size < 1) r.fail_field("block_size", "must be at least 1");
  ResidualSpec& f = s.residual;
  f.normed = true;
  f.full_alpha = r.num_or({"full_attn_alpha_factor"}, 1.0);
  f.full_beta = r.num_or({"full_attn_beta_factor"}, 1.0);
  f.linear_alpha = r.num_or({"linear_attn_alpha_factor"}, 1.0);
  f.linear_beta = r.num_or({"linear_attn_beta_factor"}, 1.0);
  f.mlp_alpha = r.num_or({"mlp_alpha_factor"}, 1.0);
  f.mlp_beta = r.num_or({"mlp_beta_factor"}, 1.0);
  set_layers_all(s, true);
  std::vector<std::string> types = r.str_list({"layer_types"});
  const std::vector<int64_t> attn_types = r.int_list({"attn_type_list"});  // MiniMax's own spelling: 0 lightning
  if (types.empty() && !attn_types.empty())
    r.fail_field("attn_type_list",
                 "transformers' MiniMaxConfig does not read it (it alternates layers unless "
                 "layer_types is given): write layer_types");
  if (types.empty())
    for (int64_t i = 0; i < s.n_layer; ++i) types.push_back((i + 1) % 2 ? "full_attention" : "linear_attention");
  if (static_cast<int64_t>(types.size()) != s.n_layer)
    r.fail_field("layer_types",
                 fmt::format("has {} entries, expected num_hidden_layers = {}", types.size(), s.n_layer));
  if (!attn_types.empty() && attn_types.size() != types.size())
    r.fail_field("attn_type_list", fmt::format("has {} entries, layer_types {}", attn_types.size(), types.size()));
  for (size_t i = 0; i < types.size(); ++i) {
    LayerSpec& l = s.layers[i];
    if (types[i] == "linear_attention") {
      l.attention = AttentionKind::kLightning;
    } else if (types[i] == "full_attention") {
      if (s.sliding_window > 0) l = LayerSpec{true, AttentionKind::kSliding, s.sliding_window, 0, false, true};
    } else {
      r.fail_field(fmt::format("layer_types[{}]", i),
                   fmt::format("unsupported \"{}\" (expected full_attention or linear_attention)", types[i]));
    }
    if (!attn_types.empty() && attn_types[i] != (l.attention == AttentionKind::kLightning ? 0 : 1))
      r.fail_field(fmt::format("attn_type_list[{}]", i),
                   fmt::format("{} contradicts layer_types \"{}\"", attn_types[i], types[i]));
  }
}

}  // namespace moe::spec_detail
