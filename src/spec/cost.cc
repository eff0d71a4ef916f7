// Cost of a workload: decode/prefill FLOPs, KV cache, weight bytes per format, the decode
// floor E(1-(1-K/E)^B) and EP dispatch/combine bytes. Each figure records its formula.
#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include <fmt/format.h>

#include "spec/accounting.h"
#include "util/error.h"

namespace moe {
namespace {

double dsv4_compressed_keys(const ModelSpec& s, const LayerSpec& l, int64_t t) {
  if (l.compress_ratio == 4) return static_cast<double>(std::min<int64_t>(t / 4, s.dsv4.index_topk));
  if (l.compress_ratio > 0) return static_cast<double>(t / l.compress_ratio);
  return 0;
}

// FLOPs of QK^T and AV for one query at position t (it sees t keys including itself).
double layer_attention_flops(const ModelSpec& s, const LayerSpec& l, int64_t t, bool decode) {
  const double H = static_cast<double>(s.n_head);
  switch (l.attention) {
    case AttentionKind::kFull:
      return 4.0 * H * s.head_dim * t;
    case AttentionKind::kSliding:
      return 4.0 * H * s.head_dim * std::min(t, l.window);
    case AttentionKind::kChunked:
      return 4.0 * H * s.head_dim * ((t - 1) % l.window + 1);
    case AttentionKind::kMla: {
      const MlaSpec& m = s.mla;
      if (decode) return 2.0 * H * (m.kv_lora_rank + m.qk_rope_head_dim) * t + 2.0 * H * m.kv_lora_rank * t;
      return 2.0 * H * (m.qk_nope_head_dim + m.qk_rope_head_dim) * t + 2.0 * H * m.v_head_dim * t;
    }
    case AttentionKind::kLinear: {
      // Gated DeltaNet: read and update a [dk, dv] state per value head, independent of t
      const LinearAttnSpec& a = s.linear_attn;
      return 6.0 * a.n_value_heads * a.key_head_dim * a.value_head_dim;
    }
    case AttentionKind::kLightning:  // MiniMax: decay, add k^T v, read q S: a [Dh, Dh] state per head
      return 6.0 * H * s.head_dim * s.head_dim;
    case AttentionKind::kCompressed:
      break;
  }
  const double keys = static_cast<double>(std::min(t, l.window)) + dsv4_compressed_keys(s, l, t);
  double f = 4.0 * H * s.head_dim * keys;
  if (l.compress_ratio == 4) f += 2.0 * s.dsv4.index_n_heads * s.dsv4.index_head_dim * static_cast<double>(t / 4);
  return f;
}

// Closed-form sums over t = 1..n (long double: n may be 1e15, n^2 far beyond int64).
using Sum = long double;
Sum sum_t(int64_t n) { return static_cast<Sum>(n) * (static_cast<Sum>(n) + 1) / 2; }
// sum of min(t, w)
Sum sum_min(int64_t n, int64_t w) { return n <= w ? sum_t(n) : sum_t(w) + static_cast<Sum>(n - w) * w; }
// sum of (t - 1) mod w + 1 (position inside its chunk)
Sum sum_chunk(int64_t n, int64_t w) { return w <= 0 ? sum_t(n) : static_cast<Sum>(n / w) * sum_t(w) + sum_t(n % w); }
// sum of floor(t / c)
Sum sum_floor(int64_t n, int64_t c) {
  const Sum q = static_cast<Sum>(n / c), r = static_cast<Sum>(n % c);
  return static_cast<Sum>(c) * q * (q - 1) / 2 + q * (r + 1);
}
// sum of min(floor(t / c), cap)
Sum sum_floor_capped(int64_t n, int64_t c, int64_t cap) {
  if (cap <= 0) return 0;
  const Sum last_below = static_cast<Sum>(c) * static_cast<Sum>(cap) - 1;  // floor(t / c) < cap up to here
  const int64_t m = last_below >= static_cast<Sum>(n) ? n : static_cast<int64_t>(last_below);
  return sum_floor(m, c) + static_cast<Sum>(cap) * static_cast<Sum>(n - m);
}

// Sum over t = 1..n of layer_attention_flops(s, l, t, false), in constant time.
double layer_prefill_attention_flops(const ModelSpec& s, const LayerSpec& l, int64_t n) {
  if (n <= 0) return 0;
  const Sum H = static_cast<Sum>(s.n_head), head = 4 * H * static_cast<Sum>(s.head_dim);
  switch (l.attention) {
    case AttentionKind::kFull:
      return static_cast<double>(head * sum_t(n));
    case AttentionKind::kSliding:
      return static_cast<double>(head * sum_min(n, l.window));
    case AttentionKind::kChunked:
      return static_cast<double>(head * sum_chunk(n, l.window));
    case AttentionKind::kMla: {
      const MlaSpec& m = s.mla;
      return static_cast<double>((2 * H * (m.qk_nope_head_dim + m.qk_rope_head_dim) + 2 * H * m.v_head_dim) * sum_t(n));
    }
    case AttentionKind::kLightning:  // constant per token
    case AttentionKind::kLinear:
      return layer_attention_flops(s, l, 1, false) * static_cast<double>(n);
    case AttentionKind::kCompressed:
      break;
  }
  Sum keys = sum_min(n, l.window);
  if (l.compress_ratio == 4) {
    keys += sum_floor_capped(n, 4, s.dsv4.index_topk);
  } else if (l.compress_ratio > 0) {
    keys += sum_floor(n, l.compress_ratio);
  }
  Sum f = head * keys;
  if (l.compress_ratio == 4) f += 2 * static_cast<Sum>(s.dsv4.index_n_heads) * s.dsv4.index_head_dim * sum_floor(n, 4);
  return static_cast<double>(f);
}

// KV elements one sequence keeps for layer l at context L (caps applied).
double layer_kv_elems(const ModelSpec& s, const LayerSpec& l, int64_t L) {
  const double gqa = 2.0 * s.n_head_kv * s.head_dim;
  switch (l.attention) {
    case AttentionKind::kFull:
      return gqa * L;
    case AttentionKind::kSliding:
      if (s.family == Family::kDeepseekV4) return static_cast<double>(s.head_dim) * std::min(L, l.window);
      return gqa * std::min(L, l.window);
    case AttentionKind::kChunked:
      return gqa * std::min(L, l.window);
    case AttentionKind::kMla:
      return static_cast<double>(s.mla.kv_lora_rank + s.mla.qk_rope_head_dim) * L;
    case AttentionKind::kLinear: {  // the recurrent state and the convolution's last kernel - 1 inputs
      const LinearAttnSpec& a = s.linear_attn;
      const double conv_dim = 2.0 * a.n_key_heads * a.key_head_dim + a.n_value_heads * a.value_head_dim;
      return static_cast<double>(a.n_value_heads * a.key_head_dim * a.value_head_dim) +
             conv_dim * static_cast<double>(a.conv_kernel - 1);
    }
    case AttentionKind::kLightning:  // MiniMax: the [H, Dh, Dh] state, whatever the context
      return static_cast<double>(s.n_head) * static_cast<double>(s.head_dim) * static_cast<double>(s.head_dim);
    case AttentionKind::kCompressed:
      break;
  }
  double e = static_cast<double>(s.head_dim) * (std::min(L, l.window) + static_cast<double>(L / l.compress_ratio));
  if (l.compress_ratio == 4) e += static_cast<double>(s.dsv4.index_head_dim) * static_cast<double>(L / 4);
  return e;
}

// Per-position growth at long context (windows full, compressed entries still growing).
double layer_kv_elems_per_token(const ModelSpec& s, const LayerSpec& l) {
  switch (l.attention) {
    case AttentionKind::kFull:
      return 2.0 * s.n_head_kv * s.head_dim;
    case AttentionKind::kMla:
      return static_cast<double>(s.mla.kv_lora_rank + s.mla.qk_rope_head_dim);
    case AttentionKind::kCompressed: {
      double e = static_cast<double>(s.head_dim) / l.compress_ratio;
      if (l.compress_ratio == 4) e += s.dsv4.index_head_dim / 4.0;
      return e;
    }
    default:
      return 0;
  }
}

std::string kv_layout(const ModelSpec& s) {
  if (s.is_mla) return fmt::format("MLA latent {} + rope key {} per layer", s.mla.kv_lora_rank, s.mla.qk_rope_head_dim);
  if (s.family == Family::kDeepseekV4)
    return fmt::format("one K=V latent of {} per kept entry: window {} + L/ratio compressed (+ indexer keys {} x L/4)",
                       s.head_dim, s.sliding_window, s.dsv4.index_head_dim);
  std::string caps;
  const auto n_slide = std::count_if(s.layers.begin(), s.layers.end(), [](const LayerSpec& l) {
    return l.attention == AttentionKind::kSliding || l.attention == AttentionKind::kChunked;
  });
  if (n_slide > 0)
    caps = fmt::format(", {} of {} layers capped at {} tokens", n_slide, s.n_layer,
                       s.attention_chunk_size ? s.attention_chunk_size : s.sliding_window);
  return fmt::format("K and V: {} kv heads x {}{}", s.n_head_kv, s.head_dim, caps);
}

void add(Cost& c, const std::string& key, double v, const std::string& unit, const std::string& formula) {
  c.figures.push_back({key, v, unit, formula});
}

// Scale bytes count with the tensor they scale (a routed expert's scales stream with it).
Role effective_role(const TensorRegistry& reg, const TensorEntry& t) {
  if (t.role != Role::kQuantScale) return t.role;
  const TensorEntry* w = reg.find(t.scale_of);
  return w ? w->role : t.role;
}

void weight_formats(const ModelSpec& spec, Cost& c) {
  const TensorRegistry dense = build_registry(spec, {WeightFormat::kDense, DType::kBF16, false});
  for (const TensorEntry& t : dense.tensors) {
    const double p = static_cast<double>(t.n_params);
    c.weights.bf16 += 2 * p;
    if (is_matmul_weight(t) && t.role != Role::kLmHead) {
      const int64_t rows = t.shape[t.shape.size() - 2], cols = t.shape.back();
      const double mats = p / static_cast<double>(rows * cols);
      c.weights.fp8 += p + 4.0 * mats * static_cast<double>(((rows + 127) / 128) * ((cols + 127) / 128));
      c.weights.int4 += p / 2 + p / 32;
    } else {
      c.weights.fp8 += 2 * p;
      c.weights.int4 += 2 * p;
    }
  }
}

void decode_floor(const ModelSpec& s, const TensorRegistry& reg, Cost& c) {
  const Workload& w = c.workload;
  const double B = static_cast<double>(w.batch);
  std::map<int, double> routed_bytes;  // layer -> bytes of all its routed experts
  double embed_row_bytes = 0;
  for (const TensorEntry& t : reg.tensors) {
    if (t.is_mtp) continue;
    const Role r = effective_role(reg, t);
    if (r == Role::kRoutedExpert) {
      routed_bytes[t.layer] += static_cast<double>(t.nbytes());
    } else if (r == Role::kEmbedding) {
      embed_row_bytes += static_cast<double>(t.nbytes()) / static_cast<double>(s.vocab);
    } else if (r != Role::kIndexTable) {
      c.floor.always_on_bytes += static_cast<double>(t.nbytes());
    }
  }
  c.floor.always_on_bytes += B * embed_row_bytes;
  const double E = static_cast<double>(s.n_expert), K = static_cast<double>(s.n_expert_used);
  c.floor.expected_experts_per_layer = expected_distinct_experts(s.n_expert, s.n_expert_used, B);
  for (const auto& [layer, bytes] : routed_bytes)
    c.floor.expert_bytes += c.floor.expected_experts_per_layer * bytes / E;
  c.floor.kv_bytes = c.kv.bytes_at_batch;
  c.floor.bytes_per_step = c.floor.always_on_bytes + c.floor.expert_bytes + c.floor.kv_bytes;
  c.floor.bytes_per_token = c.floor.bytes_per_step / B;
  add(c, "expected_experts_per_layer", c.floor.expected_experts_per_layer, "experts",
      fmt::format("E(1-(1-K/E)^B) = {}(1-(1-{}/{})^{}) distinct experts per MoE layer under uniform routing", E, K, E,
                  w.batch));
  add(c, "decode_floor_bytes_per_step", c.floor.bytes_per_step, "B",
      fmt::format("always-on weights {} (incl. B embedding rows) + sum over MoE layers of distinct experts x expert "
                  "bytes {} + KV reads B x KV(L) {}",
                  format_bytes(c.floor.always_on_bytes), format_bytes(c.floor.expert_bytes),
                  format_bytes(c.floor.kv_bytes)));
  add(c, "decode_floor_bytes_per_token", c.floor.bytes_per_token, "B", "decode floor per step / B");
}

void ep_traffic(const ModelSpec& s, const TensorRegistry& reg, Cost& c) {
  const Workload& w = c.workload;
  const int64_t R = w.ep_ranks;
  auto& ep = c.ep;
  ep.ranks = R;
  if (R <= 1 || s.n_expert == 0) return;
  const int64_t E = s.n_expert, K = s.n_expert_used, D = s.d_model;
  const int64_t local = E / R;  // E need not divide by R (the runtime's placements allow it): the smaller share
  double p_none = 1;            // a given rank holds none of the K experts (drawn without replacement)
  for (int64_t i = 0; i < K; ++i) p_none *= static_cast<double>(E - local - i) / static_cast<double>(E - i);
  if (E - local < K) p_none = 0;
  ep.remote_copies_per_token_layer = static_cast<double>(K) * (R - 1) / R;
  ep.remote_ranks_per_token_layer = (R - 1) * (1.0 - p_none);
  ep.dispatch_bf16_bytes = ep.remote_copies_per_token_layer * D * 2;
  ep.dispatch_fp8_bytes = ep.remote_copies_per_token_layer * (D + 4.0 * ((D + 127) / 128));
  ep.combine_bf16_bytes = ep.remote_copies_per_token_layer * D * 2;
  ep.dispatch_bf16_bytes_dedup = ep.remote_ranks_per_token_layer * D * 2;
  ep.per_token_all_layers_bytes =
      static_cast<double>(s.n_moe_layers()) * (ep.dispatch_bf16_bytes + ep.combine_bf16_bytes);
  ep.per_step_bytes = ep.per_token_all_layers_bytes * static_cast<double>(w.batch);
  add(c, "ep_dispatch_bf16_bytes", ep.dispatch_bf16_bytes, "B",
      fmt::format("K x (R-1)/R x D x 2 = {} x {}/{} x {} x 2 per token per MoE layer (uniform routing)", K, R - 1, R,
                  D));
  add(c, "ep_dispatch_fp8_bytes", ep.dispatch_fp8_bytes, "B",
      fmt::format("K x (R-1)/R x (D + 4 x ceil(D/128)) (fp8 values + f32 scale per 128)"));
  add(c, "ep_combine_bf16_bytes", ep.combine_bf16_bytes, "B",
      "K x (R-1)/R x D x 2 (weighted outputs come back in bf16)");
  add(c, "ep_dispatch_bf16_bytes_dedup", ep.dispatch_bf16_bytes_dedup, "B",
      fmt::format("(R-1) x (1 - C(E-E/R, K)/C(E, K)) x D x 2: one copy per remote rank that holds >= 1 chosen expert"));
  add(c, "ep_bytes_per_token_all_layers", ep.per_token_all_layers_bytes, "B",
      fmt::format("{} MoE layers x (dispatch bf16 + combine bf16)", s.n_moe_layers()));
  double routed = 0, rest = 0;  // checkpoint bytes, MTP excluded (as weight_bytes_checkpoint)
  for (const TensorEntry& t : reg.tensors) {
    if (t.is_mtp) continue;
    (effective_role(reg, t) == Role::kRoutedExpert ? routed : rest) += static_cast<double>(t.nbytes());
  }
  const int64_t most = (E + R - 1) / R, least = E / R;
  ep.weight_bytes_rank_max = rest + routed * static_cast<double>(most) / static_cast<double>(E);
  ep.weight_bytes_rank_min = rest + routed * static_cast<double>(least) / static_cast<double>(E);
  add(c, "ep_weight_bytes_rank_max", ep.weight_bytes_rank_max, "B",
      fmt::format("what the largest rank loads (contiguous placement): replicated {} + ceil(E/R) = {} of {} routed "
                  "experts x {} per expert over all MoE layers",
                  format_bytes(rest), most, E, format_bytes(routed / static_cast<double>(E))));
  add(c, "ep_weight_bytes_rank_min", ep.weight_bytes_rank_min, "B",
      fmt::format("the smallest rank: replicated + floor(E/R) = {} experts", least));
}

}  // namespace

double prefill_attention_flops(const ModelSpec& spec, int64_t n) {
  double f = 0;
  for (const LayerSpec& l : spec.layers) f += layer_prefill_attention_flops(spec, l, n);
  return f;
}

double attention_flops_per_token(const ModelSpec& spec, int64_t context, bool decode) {
  double f = 0;
  for (const LayerSpec& l : spec.layers) f += layer_attention_flops(spec, l, std::max<int64_t>(context, 1), decode);
  return f;
}

Cost compute_cost(const ModelSpec& s, const TensorRegistry& reg, const Workload& w) {
  if (w.context < 1) fail_usage("inspect", "--context must be at least 1, found {}", w.context);
  if (w.batch < 1) fail_usage("inspect", "--batch must be at least 1, found {}", w.batch);
  if (w.ep_ranks < 1) fail_usage("inspect", "--ep must be at least 1, found {}", w.ep_ranks);
  if (w.ep_ranks > 1 && s.n_expert == 0) fail_usage("inspect", "--ep {}: {} is a dense model", w.ep_ranks, s.source);
  if (w.ep_ranks > s.n_expert && s.n_expert > 0)
    fail_usage("inspect", "--ep {}: more ranks than the {} experts of {}", w.ep_ranks, s.n_expert, s.source);
  Cost c;
  c.workload = w;
  if (c.workload.prompt == 0) c.workload.prompt = w.context;
  const int64_t N = c.workload.prompt, L = w.context;
  double matmul_params = 0;
  const ParamCounts counts = count_params(s, reg);
  for (const TensorEntry& t : reg.tensors) {
    if (t.is_mtp || !is_matmul_weight(t)) continue;
    const double active = t.role == Role::kRoutedExpert ? static_cast<double>(t.n_params) * s.n_expert_used / s.n_expert
                                                        : static_cast<double>(t.n_params);
    matmul_params += active;
    if (t.role == Role::kLmHead) c.lm_head_flops_per_token += 2 * static_cast<double>(t.n_params);
  }
  c.decode_matmul_flops = 2 * matmul_params;
  c.decode_attention_flops = attention_flops_per_token(s, L, true);
  c.decode_flops_per_token = c.decode_matmul_flops + c.decode_attention_flops;
  add(c, "decode_flops_per_token", c.decode_flops_per_token, "FLOP",
      fmt::format("2 x activated matmul params ({}; embedding lookup, norms and biases excluded) + attention at L={} "
                  "({}): per layer 4 x H x Dh x keys seen, keys = min(L, window); MLA cached form 2H(r_kv+d_rope)L + "
                  "2H r_kv L",
                  format_count(matmul_params), L, format_count(c.decode_attention_flops)));
  c.prefill_flops = 2 * matmul_params * static_cast<double>(N) + prefill_attention_flops(s, N);
  c.prefill_flops_per_token = c.prefill_flops / static_cast<double>(N);
  add(c, "prefill_flops", c.prefill_flops, "FLOP",
      fmt::format("N x 2 x activated matmul params + sum over t=1..N of attention(t), causal, N={}; MLA uncompressed "
                  "form 2H(d_nope+d_rope)t + 2H d_v t",
                  N));
  for (const LayerSpec& l : s.layers) {
    c.kv.bytes_per_token += layer_kv_elems_per_token(s, l) * w.kv_bytes_per_elem;
    c.kv.bytes_at_context += layer_kv_elems(s, l, L) * w.kv_bytes_per_elem;
  }
  c.kv.bytes_at_batch = c.kv.bytes_at_context * static_cast<double>(w.batch);
  c.kv.layout = kv_layout(s);
  add(c, "kv_bytes_per_token", c.kv.bytes_per_token, "B",
      fmt::format("per extra position at long context, {} bytes/elem: full layers 2 x Hkv x Dh, MLA r_kv + d_rope, "
                  "sliding layers 0 once the window is full ({})",
                  w.kv_bytes_per_elem, c.kv.layout));
  add(c, "kv_bytes_at_context", c.kv.bytes_at_context, "B",
      fmt::format("sum over layers of kept entries at L={} (min(L, window) for sliding/chunked) x width x {} bytes", L,
                  w.kv_bytes_per_elem));
  c.weights.checkpoint = static_cast<double>(counts.bytes);
  weight_formats(s, c);
  add(c, "weight_bytes_checkpoint", c.weights.checkpoint, "B",
      "sum of registry tensors at checkpoint dtypes, scales included, MTP excluded");
  add(c, "weight_bytes_bf16", c.weights.bf16, "B", "2 x total params");
  add(c, "weight_bytes_fp8", c.weights.fp8, "B",
      "matmul weights (not embedding/head) 1 B + 4 B f32 scale per 128x128 block; rest 2 B");
  add(c, "weight_bytes_4bit", c.weights.int4, "B",
      "matmul weights (not embedding/head) 0.5 B + 1 B e8m0 scale per 32; rest 2 B");
  decode_floor(s, reg, c);
  ep_traffic(s, reg, c);
  return c;
}

double expected_distinct_experts(int64_t n_expert, int64_t k, double batch) {
  if (n_expert <= 0 || k <= 0 || batch <= 0) return 0.0;
  const double E = static_cast<double>(n_expert);
  return E * (1.0 - std::pow(1.0 - static_cast<double>(k) / E, batch));
}

}  // namespace moe
