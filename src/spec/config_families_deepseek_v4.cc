// DeepSeek-V4 (deepseek_v4) in both config dialects: the config.json DeepSeek ships (compress_ratios, num_hash_layers,
// qk_rope_head_dim, rope_scaling) and the one transformers' DeepseekV4Config saves (layer_types + compress_rates,
// mlp_layer_types, partial_rotary_factor, rope_parameters nested as main / compress).
#include <fmt/format.h>

#include <utility>

#include "spec/config_families.h"
#include "util/error.h"

namespace moe::spec_detail {
namespace {

// transformers' DeepseekV4Config (what save_pretrained writes) names the layer schedule instead of DeepSeek's
// compress_ratios / num_hash_layers: layer_types (sliding_attention, compressed_sparse_attention,
// heavily_compressed_attention) with compress_rates per type, and mlp_layer_types (hash_moe, then moe).
std::vector<int64_t> dsv4_ratios(ConfigReader& r, const ModelSpec& s) {
  const std::vector<std::string> types = r.str_list({"layer_types"});
  if (types.empty()) r.fail_field("compress_ratios", "missing (and no layer_types either)");
  int64_t csa = r.int_or({"compress_rate_csa"}, 4), hca = r.int_or({"compress_rate_hca"}, 128);
  if (const nlohmann::json* rates = r.object({"compress_rates"})) {
    ConfigReader q(*rates, r.source(), "compress_rates.");
    csa = q.int_or({"compressed_sparse_attention"}, csa);
    hca = q.int_or({"heavily_compressed_attention"}, hca);
    for (auto& k : q.unused_keys()) q.fail_field(k, "is not a DeepSeek-V4 attention type");
  }
  if (static_cast<int64_t>(types.size()) != s.n_layer)
    r.fail_field("layer_types",
                 fmt::format("has {} entries, expected num_hidden_layers = {}", types.size(), s.n_layer));
  std::vector<int64_t> ratios;
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] == "sliding_attention") {
      ratios.push_back(0);
    } else if (types[i] == "compressed_sparse_attention") {
      ratios.push_back(csa);
    } else if (types[i] == "heavily_compressed_attention") {
      ratios.push_back(hca);
    } else {
      r.fail_field(fmt::format("layer_types[{}]", i),
                   fmt::format("\"{}\" is not sliding_attention, compressed_sparse_attention or "
                               "heavily_compressed_attention",
                               types[i]));
    }
  }
  if (csa != 4)
    r.fail_field("compress_rates.compressed_sparse_attention", fmt::format("expected 4 (CSA), found {}", csa));
  return ratios;  // the MTP layers' ratios are not in layer_types: 0 (transformers does not run MTP)
}

int64_t dsv4_hash_layers(ConfigReader& r, const ModelSpec& s) {
  const std::vector<std::string> types = r.str_list({"mlp_layer_types"});
  if (types.empty()) return 0;
  if (static_cast<int64_t>(types.size()) != s.n_layer)
    r.fail_field("mlp_layer_types",
                 fmt::format("has {} entries, expected num_hidden_layers = {}", types.size(), s.n_layer));
  int64_t n = 0;
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] != "hash_moe" && types[i] != "moe")
      r.fail_field(fmt::format("mlp_layer_types[{}]", i), fmt::format("\"{}\" is not hash_moe or moe", types[i]));
    if (types[i] == "hash_moe" && static_cast<int64_t>(i) != n)
      r.fail_field(fmt::format("mlp_layer_types[{}]", i), "hash_moe after a moe layer (the hash layers come first)");
    n += types[i] == "hash_moe";
  }
  return n;
}

// rope_parameters {"main": {...}, "compress": {...}}: main's rope_theta for the window-only layers, compress's
// (YaRN) for the compressed ones; the top-level rope_theta / compress_rope_theta say the same when present.
void dsv4_nested_rope(ConfigReader& r, ModelSpec& s) {
  const nlohmann::json* rp = r.object({"rope_parameters"});
  if (!rp || !rp->contains("main") || !rp->contains("compress")) return;
  ConfigReader top(*rp, r.source(), "rope_parameters.");
  const nlohmann::json* main = top.object({"main"});
  const nlohmann::json* compress = top.object({"compress"});
  if (!main || !compress) top.fail_field("main", "expected the objects main and compress");
  ConfigReader m(*main, r.source(), "rope_parameters.main."), c(*compress, r.source(), "rope_parameters.compress.");
  const double theta = m.num_or({"rope_theta"}, s.rope.theta);
  if (m.str_or({"rope_type", "type"}, "default") != "default")
    m.fail_field("rope_type", "DeepSeek-V4's window-only layers use plain RoPE (default)");
  m.acknowledge({"partial_rotary_factor"});
  s.rope.theta = s.dsv4.compress_rope_theta;
  read_rope_fields(c, s);
  s.dsv4.compress_rope_theta = s.rope.theta;
  s.rope.theta = theta;
  for (auto& k : m.unused_keys()) s.unknown_keys.push_back(k);
}

}  // namespace

void parse_deepseek_v4(ConfigReader& r, ModelSpec& s) {
  s.n_layer = r.req_int({"num_hidden_layers"});
  s.d_model = r.req_int({"hidden_size"});
  s.n_head = r.req_int({"num_attention_heads"});
  if (s.n_head == 0) r.fail_field("num_attention_heads", "must be at least 1");
  s.n_head_kv = r.int_or({"num_key_value_heads"}, 1);
  if (s.n_head_kv != 1)
    r.fail_field("num_key_value_heads", fmt::format("DeepSeek-V4 shares one K=V head, found {}", s.n_head_kv));
  s.head_dim = r.req_int({"head_dim"});
  s.vocab = r.req_int({"vocab_size"});
  read_common(r, s);
  read_topk(r, s, {"n_routed_experts"});
  s.n_ff_expert = r.req_int({"moe_intermediate_size"});
  s.n_expert_shared = r.int_or({"n_shared_experts"}, 1);
  s.n_ff_shared = s.n_expert_shared * s.n_ff_expert;
  s.router.norm_topk_prob = r.bool_or({"norm_topk_prob"}, true);
  s.router.scoring = parse_scoring(r, r.str_or({"scoring_func"}, "sqrtsoftplus"));
  s.router.topk_method = parse_topk_method(r, r.str_or({"topk_method"}, "noaux_tc"));
  s.router.routed_scaling_factor = r.num_or({"routed_scaling_factor"}, 1.0);
  s.router.has_score_bias = true;
  s.router.n_group = s.router.topk_group = 1;
  s.swiglu_limit = r.num_or({"swiglu_limit"}, 0);
  s.sliding_window = r.req_int({"sliding_window"});
  s.attention_sinks = true;
  s.mla.q_lora_rank = r.req_int({"q_lora_rank"});
  // transformers' DeepseekV4Config saves partial_rotary_factor (= qk_rope_head_dim / head_dim) instead.
  s.mla.qk_rope_head_dim =
      r.has({"qk_rope_head_dim"}) || !r.has({"partial_rotary_factor"})
          ? r.int_or({"qk_rope_head_dim"}, 64)
          : static_cast<int64_t>(static_cast<double>(s.head_dim) * r.num_or({"partial_rotary_factor"}, 0.125));
  s.n_mtp_layers = r.int_or({"num_nextn_predict_layers"}, 0);
  s.quant.experts_fp4 = r.str_or({"expert_dtype"}, "") == "fp4";
  auto& v4 = s.dsv4;
  v4.hc_mult = r.req_int({"hc_mult"});
  v4.hc_sinkhorn_iters = r.int_or({"hc_sinkhorn_iters"}, 20);
  v4.hc_eps = r.num_or({"hc_eps"}, 1e-6);
  v4.index_n_heads = r.req_int({"index_n_heads"});
  v4.index_head_dim = r.req_int({"index_head_dim"});
  v4.index_topk = r.req_int({"index_topk"});
  for (const auto& [key, v] : {std::pair{"index_n_heads", v4.index_n_heads},
                               std::pair{"index_head_dim", v4.index_head_dim}, std::pair{"index_topk", v4.index_topk}})
    if (v < 1) r.fail_field(key, fmt::format("must be at least 1, found {}", v));
  v4.o_groups = r.req_int({"o_groups"});
  v4.o_lora_rank = r.req_int({"o_lora_rank"});
  v4.num_hash_layers = r.has({"num_hash_layers"}) ? r.int_or({"num_hash_layers"}, 0) : dsv4_hash_layers(r, s);
  v4.compress_rope_theta = r.num_or({"compress_rope_theta"}, s.rope.theta);
  dsv4_nested_rope(r, s);
  if (v4.o_groups == 0 || s.n_head % v4.o_groups != 0)
    r.fail_field("o_groups", fmt::format("{} does not divide num_attention_heads {}", v4.o_groups, s.n_head));
  const std::vector<int64_t> ratios = r.has({"compress_ratios"}) ? r.int_list({"compress_ratios"}) : dsv4_ratios(r, s);
  const size_t want = static_cast<size_t>(s.n_layer + s.n_mtp_layers);
  if (ratios.size() != want && ratios.size() != static_cast<size_t>(s.n_layer))
    r.fail_field(
        "compress_ratios",
        fmt::format("has {} entries, expected num_hidden_layers + num_nextn_predict_layers = {}", ratios.size(), want));
  for (size_t i = 0; i < want; ++i) {
    const int64_t v = i < ratios.size() ? ratios[i] : 0;
    // 0: window only; 4: CSA (overlapping windows + indexer); any other ratio >= 2: HCA (128 in Flash and Pro).
    if (v != 0 && v < 2)
      r.fail_field(fmt::format("compress_ratios[{}]", i),
                   fmt::format("expected 0, 4 or an HCA ratio of at least 2, found {}", v));
    v4.compress_ratios.push_back(static_cast<int>(v));
  }
  s.rope.interleaved = true;
  set_layers_all(s, true);
  for (int64_t i = 0; i < s.n_layer; ++i) {
    auto& l = s.layers[i];
    l.compress_ratio = v4.compress_ratios[i];
    l.attention = l.compress_ratio > 0 ? AttentionKind::kCompressed : AttentionKind::kSliding;
    l.window = s.sliding_window;
    l.hash_routed = i < v4.num_hash_layers;
  }
  s.attention_bias = r.bool_or({"attention_bias"}, false);
  if (r.bool_or({"mlp_bias"}, false)) r.fail_field("mlp_bias", "DeepSeek-V4's experts have no biases, found true");
}

}  // namespace moe::spec_detail
