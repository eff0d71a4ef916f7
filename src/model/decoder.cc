// Decoder forward (see decoder.h). Shapes: T new tokens, D model dim, H / Hkv heads, Dh head dim.
#include "model/decoder.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "io/gguf_config.h"
#include "kernels/quant_blocks.h"
#include "model/attention.h"
#include "model/decoder_layer.h"
#include "model/deepseek_v4.h"
#include "model/families.h"
#include "model/linear.h"
#include "model/mla.h"
#include "model/moa.h"
#include "model/norm.h"
#include "model/rope.h"
#include "moe/expert_ffn.h"
#include "moe/moe_layer.h"
#include "runtime/cpu_features.h"
#include "runtime/process_limits.h"
#include "runtime/timer.h"
#include "util/dtype.h"
#include "util/error.h"
#include "util/log.h"

namespace moe {

namespace {

// y [T, n] = x [T, k] . w^T + bias, with k = the weight's row length (rows: ld; panels: ld, which
// pack_dense only produces when it equals k).
void linear(const float* x, int64_t T, const WeightView& w, const float* bias, int64_t n, float* y) {
  linear_forward(x, w, bias, y, LinearShape{T, n, w.ld});
}

// The decoder's dense matrices (attention projections, dense MLPs, routers, LM head) go into the
// kernels' panel layout once at load (pack_dense), as the experts do: at m = 1 the bf16 panel kernel
// streams 4 panels at once and reaches the read ceiling, the row-layout GEMV about 80% of it
// (matmul_bench BM_Decode vs BM_DecodePanels at m 1, n 14336, k 4096).

}  // namespace

Decoder::Decoder(const std::string& path, DecoderOptions options)
    : spec_(load_model_spec_any(path)), options_(std::move(options)) {
  if (spec_.family == Family::kDeepseekV4) {
    load_v4(path);
    return;
  }
  if (spec_.quant.method == QuantMethod::kMxfp4 && spec_.family != Family::kGptOss) {
    fail("model", "{}: MXFP4 checkpoints are read for gpt-oss only (its experts' *_blocks / *_scales)", path);
  }
  store_ = std::make_unique<WeightStore>(path, spec_);
  // What decides the panels' bytes besides the source: the packers' format, the ISA (which dtypes have
  // panel kernels) and, under expert parallelism, which experts this process loads. The version changes
  // when what is cached changes (v2: gpt-oss's bf16 / f32 experts are packed as they are re-laid out, not
  // cached): a cache is mapped whole, so entries no load asks for would only take memory.
  std::string layout = fmt::format("panels v2, {}", isa_name(active_isa()));
  if (options_.load_expert) {  // asked once per MoE layer and expert; load_layer reads the answers
    layout += ", experts ";
    expert_keep_.resize(static_cast<size_t>(spec_.n_layer));
    for (int64_t li = 0; li < spec_.n_layer; ++li) {
      if (!spec_.layers[static_cast<size_t>(li)].is_moe) continue;
      for (int64_t e = 0; e < spec_.n_expert; ++e) expert_keep_[size_t(li)].push_back(options_.load_expert(li, e));
      for (const bool k : expert_keep_[size_t(li)]) layout += k ? '1' : '0';
      layout += ' ';
    }
  }
  if (options_.offload.mem_budget > 0) {
    if (options_.moe_block || options_.load_expert)
      fail("model", "{}: --mem-budget cannot be combined with expert parallelism (--ep)", path);
    options_.offload.uniform_routing_seed = options_.uniform_routing_seed;
    offload_ = std::make_unique<ExpertOffload>(spec_, options_.offload);
    layout += ", routed experts on disk";
  }
  pack_cache_ = std::make_unique<PackCache>(path, layout, options_.pack_cache.value_or(PackCacheOptions::from_env()));
  names_ = decoder_names(spec_);
  embed_ = store_->matrix(names_.embed);  // rows: looked up by id
  const std::string head_name = spec_.tie_word_embeddings ? names_.embed : names_.head + ".weight";
  head_ = packed_matrix(head_name);
  head_bias_ = store_->f32_or_null(names_.head + ".bias");  // PhiMoE lm_head_bias, ERNIE use_bias (also tied)
  final_norm_ = store_->f32(names_.final_norm + ".weight");
  final_norm_b_ = store_->f32_or_null(names_.final_norm + ".bias");
  for (int64_t li = 0; li < spec_.n_layer; ++li) {
    load_layer(li);
    if (options_.load_progress) options_.load_progress(li + 1, spec_.n_layer);
  }
  if (!pack_cache_->hit()) {
    if (const uint64_t bytes = pack_cache_->save())
      log_info("cached the packed weights ({:.2f} GB) in {}; later loads map them", double(bytes) * 1e-9,
               pack_cache_->path());
  }
  if (offload_) offload_->start(resident_bytes_now());
}

std::vector<ExpertSource> Decoder::expert_sources(int64_t li, const ExpertWeights& experts) {
  std::vector<ExpertSource> out;
  const int64_t D = experts.d_model, F = experts.d_ff;
  for (size_t e = 0; e < experts.experts.size(); ++e) {
    const ExpertMatrices& m = experts.experts[e];
    ExpertSource src;
    const WeightView* v[3] = {&m.gate, &m.up, &m.down};
    const int64_t n[3] = {F, F, D}, k[3] = {D, D, F};
    for (int j = 0; j < 3; ++j) {
      const uint64_t bytes = uint64_t(n[j]) * uint64_t(dtype_row_bytes(v[j]->dtype, k[j]));
      const auto where = v[j]->data && v[j]->layout == WeightLayout::kRows && v[j]->ld == k[j]
                             ? store_->locate(v[j]->data, bytes)
                             : std::nullopt;
      if (!where) {
        fail("model",
             "{}: --mem-budget: layer {} expert {}: the weights are re-laid out at load (a fused or FP8 layout), "
             "not read from the file as they are; convert the model to GGUF first (moe quantize)",
             spec_.source, li, e);
      }
      src.m[j] = ExpertSlice{offload_->file_index(where->first), where->second, bytes, v[j]->dtype, n[j], k[j]};
    }
    src.bias[0] = m.gate_bias;
    src.bias[1] = m.up_bias;
    src.bias[2] = m.down_bias;
    out.push_back(src);
  }
  return out;
}

Decoder::~Decoder() = default;

// A dense matrix packed into panels, the file's pages of it released (resident once).
WeightView Decoder::packed_matrix(const std::string& name) {
  return panels(name, store_->matrix(name), store_->shape(name)[0]);
}

WeightView Decoder::panels(const std::string& key, const WeightView& rows, int64_t n) {
  const bool packs = panel_layout_supported(rows.dtype) && rows.layout == WeightLayout::kRows &&
                     panel_ld(rows.dtype, rows.ld) == rows.ld;
  if (!packs) return rows;  // as pack_dense leaves it
  const size_t bytes = panel_bytes(rows.dtype, n, rows.ld);
  if (const uint8_t* cached = pack_cache_->find(key, bytes)) return panel_view(rows.dtype, rows.ld, cached);
  const WeightView packed = pack_dense(rows, n, &packed_);
  store_->release(rows, n);
  pack_cache_->record(key, packed.data, bytes);
  return packed;
}

PackedExpertWeights Decoder::expert_panels(const std::string& key, const ExpertWeights& rows) {
  const size_t bytes = packed_expert_bytes(rows);
  if (bytes == 0) return pack_expert_weights(rows);  // stays rows
  if (const uint8_t* cached = pack_cache_->find(key, bytes)) return pack_expert_weights(rows, {}, cached);
  PackedExpertWeights packed =
      pack_expert_weights(rows, [this](const WeightView& r, int64_t n) { store_->release(r, n); });
  pack_cache_->record(key, packed.arena.data(), bytes);
  return packed;
}

void Decoder::load_layer(int64_t li) {
  auto L = std::make_unique<Layer>();
  WeightStore& s = *store_;
  const std::string p = names_.layer(li), a = p + names_.attn;
  L->in_norm = s.f32(p + names_.in_norm + ".weight");
  L->post_norm = s.f32(p + names_.post_norm + ".weight");
  L->in_norm_b = s.f32_or_null(p + names_.in_norm + ".bias");
  L->post_norm_b = s.f32_or_null(p + names_.post_norm + ".bias");
  const LayerSpec& ls = spec_.layers[static_cast<size_t>(li)];
  if (spec_.is_mla) {
    load_mla_attention(*L, a);
  } else if (ls.attention == AttentionKind::kLightning) {
    load_lightning(*L, a, li);
  } else {
    load_gqa_attention(*L, a, ls);
  }
  const ResidualSpec& r = spec_.residual;  // MiniMax: the factors of this layer's attention kind
  L->alpha = static_cast<float>(L->lightning ? r.linear_alpha : r.full_alpha);
  L->beta = static_cast<float>(L->lightning ? r.linear_beta : r.full_beta);
  if (ls.is_moe) {
    load_moe(*L, li, p);
  } else {
    const std::string f = p + names_.dense_ffn;
    L->gate = packed_matrix(f + "gate_proj.weight");
    L->up = packed_matrix(f + "up_proj.weight");
    L->down = packed_matrix(f + "down_proj.weight");
    L->gate_b = s.f32_or_null(f + "gate_proj.bias");
    L->up_b = s.f32_or_null(f + "up_proj.bias");
    L->down_b = s.f32_or_null(f + "down_proj.bias");
  }
  layers_.push_back(std::move(L));
}

// DeepSeek's multi-head latent attention: low-rank q (or a plain q_proj), the compressed kv with its
// norm, the absorbed kv_b_proj, and the softmax scale with YaRN's temperature.
void Decoder::load_mla_attention(Layer& L, const std::string& a) {
  WeightStore& s = *store_;
  const MlaSpec& m = spec_.mla;
  if (m.q_lora_rank > 0) {
    L.q_a = packed_matrix(a + "q_a_proj.weight");
    L.q_a_norm = s.f32(a + "q_a_layernorm.weight");
    L.q_b = packed_matrix(a + "q_b_proj.weight");
  } else {
    L.q = packed_matrix(a + "q_proj.weight");
  }
  L.kv_a = packed_matrix(a + "kv_a_proj_with_mqa.weight");
  L.kv_a_norm = s.f32(a + "kv_a_layernorm.weight");
  L.o = packed_matrix(a + "o_proj.weight");
  L.mla = std::make_unique<MlaAttention>(
      MlaShape{spec_.n_head, m.qk_nope_head_dim, m.qk_rope_head_dim, m.v_head_dim, m.kv_lora_rank},
      s.matrix(a + "kv_b_proj.weight"));
  L.rope = make_rope_table(rope_config_from_spec(spec_.rope, m.qk_rope_head_dim));
  double scale = 1.0 / std::sqrt(static_cast<double>(m.qk_nope_head_dim + m.qk_rope_head_dim));
  if (spec_.rope.type == RopeType::kYarn && spec_.rope.mscale_all_dim > 0) {
    const double ms = yarn_get_mscale(spec_.rope.factor, spec_.rope.mscale_all_dim);
    scale *= ms * ms;  // the YaRN attention temperature of the DeepSeek code
  }
  L.scale = static_cast<float>(scale);
}

// GQA / MHA (or JetMoE's mixture of attention heads): projections with their optional biases, q/k
// norms and sinks, the layer's window or chunk, RoPE tables, and the softmax scale.
void Decoder::load_gqa_attention(Layer& L, const std::string& a, const LayerSpec& ls) {
  WeightStore& s = *store_;
  if (spec_.family == Family::kJetMoe)
    load_moa(L, a);
  else
    load_gqa_projections(L, a);
  L.q_bias = s.f32_or_null(a + "q_proj.bias");
  L.k_bias = s.f32_or_null(a + "k_proj.bias");
  L.v_bias = s.f32_or_null(a + "v_proj.bias");
  L.o_bias = s.f32_or_null(a + "o_proj.bias");
  L.q_norm = s.f32_or_null(a + "q_norm.weight");
  L.k_norm = s.f32_or_null(a + "k_norm.weight");
  L.sinks = s.f32_or_null(a + "sinks");
  L.window = ls.attention == AttentionKind::kSliding ? ls.window : 0;
  L.chunk = ls.attention == AttentionKind::kChunked ? ls.window : 0;
  L.use_rope = ls.use_rope;
  L.rope = make_rope_table(rope_config_from_spec(spec_.rope, spec_.head_dim));
  if (spec_.rope.type == RopeType::kLongrope)
    L.rope_long = make_rope_table(rope_config_from_spec(spec_.rope, spec_.head_dim, true));
  const double granite = spec_.multipliers.attention;  // Granite's attention_multiplier replaces Dh^-0.5
  L.scale = static_cast<float>(granite > 0 ? granite : 1.0 / std::sqrt(static_cast<double>(spec_.head_dim)));
}

// The MoE block of layer li: router and experts in panels, routed experts left on disk under offload,
// and the block that runs them (offloaded, the options' own, or local).
void Decoder::load_moe(Layer& L, int64_t li, const std::string& p) {
  WeightStore& s = *store_;
  const MoeLayerConfig config = decoder_moe_config(spec_);
  ExpertKeep keep;
  if (options_.load_expert) keep = [&](int64_t e) { return bool(expert_keep_[size_t(li)][size_t(e)]); };
  MoeLayerWeights w = moe_layer_weights(spec_, li, s, keep);
  // The router too (every rank of expert parallelism the same view, so the same logits' bits).
  w.router.weight = panels(p + "router", w.router.weight, config.router.n_expert);
  std::vector<ExpertSource> on_disk;
  if (offload_) {  // routed experts stay in the file (their views are only located, never read)
    on_disk = expert_sources(li, w.experts);
    for (ExpertMatrices& m : w.experts.experts) m = ExpertMatrices{};
  }
  // Experts go into the kernels' panel layout once, here (when the ISA has panel kernels), so no
  // matmul re-packs them per call; every MoE block, local or expert-parallel, reads the same panels.
  L.routed_packed = expert_panels(p + "routed experts", w.experts);
  L.shared_packed = expert_panels(p + "shared experts", w.shared);
  w.experts = L.routed_packed.weights;
  w.shared = L.shared_packed.weights;
  if (offload_) {
    offload_->add_layer(li, std::move(on_disk), config, w.router);
    L.moe = offload_->make_block(li, config, w);
  } else {
    L.moe = options_.moe_block ? options_.moe_block(li, config, w)
                               : std::make_unique<LocalMoeBlock>(
                                     config, w, options_.uniform_routing_seed ? options_.uniform_routing_seed + li : 0);
  }
  if (spec_.family == Family::kJetMoe) L.moe_bias = s.f32(ffn_prefix(spec_, li) + "bias");
}

// q/k/v/o of a GQA layer: separate Linear weights, or DBRX's fused Wqkv [(H + 2 Hkv) Dh, D] viewed by row blocks.
void Decoder::load_gqa_projections(Layer& L, const std::string& a) {
  WeightStore& s = *store_;
  const int64_t q_rows = spec_.n_head * spec_.head_dim, kv_rows = spec_.n_head_kv * spec_.head_dim;
  if (names_.fused_qkv.empty()) {
    L.q = packed_matrix(a + "q_proj.weight");
    L.k = packed_matrix(a + "k_proj.weight");
    L.v = packed_matrix(a + "v_proj.weight");
  } else {
    const std::string w = a + names_.fused_qkv + ".weight";
    L.q = panels(w + " q", s.rows(w, 0, q_rows), q_rows);
    L.k = panels(w + " k", s.rows(w, q_rows, kv_rows), kv_rows);
    L.v = panels(w + " v", s.rows(w, q_rows + kv_rows, kv_rows), kv_rows);
  }
  L.o = packed_matrix(a + names_.o_proj + ".weight");
}

// JetMoE: the experts' query and output projections (one [Hkv Dh, D] / [D, Hkv Dh] block of the fused
// input_linear / output_linear each), their router and bias; kv_proj's key rows then value rows.
void Decoder::load_moa(Layer& L, const std::string& a) {
  WeightStore& s = *store_;
  const int64_t E = spec_.n_expert, D = spec_.d_model, Q = spec_.n_head_kv * spec_.head_dim;
  const std::string x = a + "experts.";
  MoaWeights w;
  w.router = panels(x + "router.layer.weight", s.matrix(x + "router.layer.weight"), E);
  for (int64_t e = 0; e < E; ++e) {
    const std::string q = x + "input_linear.weight", o = x + "output_linear.weight";
    w.q.push_back(panels(fmt::format("{} {}", q, e), s.rows(q, e * Q, Q), Q));
    w.o.push_back(panels(fmt::format("{} {}", o, e), s.rows(o, e * D, D), D));
  }
  w.bias = s.f32(x + "bias");
  L.moa = std::make_unique<MoaAttention>(MoaShape{D, E, spec_.n_expert_used, spec_.n_head_kv, spec_.head_dim},
                                         std::move(w));
  const std::string kv = a + "kv_proj.weight";
  L.k = panels(kv + " k", s.rows(kv, 0, Q), Q);
  L.v = panels(kv + " v", s.rows(kv, Q, Q), Q);
}

DType Decoder::kv_type() const {
  if (options_.kv_type) return *options_.kv_type;
  return spec_.torch_dtype == "float32" ? DType::kF32 : DType::kF16;
}

KvCache Decoder::make_cache(int64_t max_tokens) const {
  if (v4_) return v4_cache(max_tokens);
  if (spec_.is_mla)
    return KvCache(spec_.n_layer, max_tokens, spec_.mla.kv_lora_rank + spec_.mla.qk_rope_head_dim, 0, 1, {}, kv_type());
  const int64_t row = spec_.n_head_kv * spec_.head_dim;
  RecurrentLayers recurrent;  // MiniMax's lightning layers keep a [H, Dh, Dh] state, not rows
  for (const LayerSpec& l : spec_.layers) recurrent.mask.push_back(l.attention == AttentionKind::kLightning);
  if (std::find(recurrent.mask.begin(), recurrent.mask.end(), 1) == recurrent.mask.end()) recurrent.mask.clear();
  recurrent.state_floats = spec_.n_head * spec_.head_dim * spec_.head_dim;
  // Head-major, attention streams each head; 16-bit keys in tiles (decode scores without sums across lanes).
  return KvCache(spec_.n_layer, max_tokens, row, row, spec_.n_head_kv, recurrent, kv_type(), true);
}

void Decoder::attention_gqa(Layer& L, int64_t li, const float* x, const SequenceChunk* chunks, int64_t n_chunks,
                            const int64_t* rows, float* out) {
  const int64_t D = spec_.d_model, H = spec_.n_head, Hkv = spec_.n_head_kv, Dh = spec_.head_dim;
  const int64_t T = rows[n_chunks];
  const float eps = static_cast<float>(spec_.norm_eps);
  scratch_q_.resize(T * H * Dh);    // [T, H, Dh]
  scratch_k_.resize(T * Hkv * Dh);  // [T, Hkv, Dh]
  scratch_v_.resize(T * Hkv * Dh);  // [T, Hkv, Dh]
  scratch_o_.resize(T * H * Dh);    // [T, H, Dh]
  float *q = scratch_q_.data(), *k = scratch_k_.data(), *v = scratch_v_.data();
  if (L.moa)
    L.moa->project_queries(x, T, q);  // routed, in the grouped head order attention_forward reads
  else
    linear(x, T, L.q, L.q_bias, H * Dh, q);
  linear(x, T, L.k, L.k_bias, Hkv * Dh, k);
  linear(x, T, L.v, L.v_bias, Hkv * Dh, v);
  if (spec_.clip_qkv > 0) {
    const float c = static_cast<float>(spec_.clip_qkv);
    for (auto* buf : {&scratch_q_, &scratch_k_, &scratch_v_})
      for (float& e : *buf) e = std::min(c, std::max(-c, e));
  }
  if (spec_.qk_norm == QkNorm::kPerHead) {  // Qwen3: per head over Dh
    rms_norm(q, L.q_norm, q, T * H, Dh, eps);
    rms_norm(k, L.k_norm, k, T * Hkv, Dh, eps);
  } else if (spec_.qk_norm == QkNorm::kFullWidth) {  // OLMoE: over the whole projection
    rms_norm(q, L.q_norm, q, T, H * Dh, eps);
    rms_norm(k, L.k_norm, k, T, Hkv * Dh, eps);
  }
  const RopeStyle style = rope_style_from_spec(spec_.rope);
  for (int64_t c = 0; c < n_chunks; ++c) {  // positions, the cache and attention are per sequence
    KvCache& cache = *chunks[c].cache;
    const int64_t r0 = rows[c], n = rows[c + 1] - rows[c], past = cache.length();
    float *qc = q + r0 * H * Dh, *kc = k + r0 * Hkv * Dh, *vc = v + r0 * Hkv * Dh;
    const RopeTable& rope = longrope_uses_long(spec_.rope, past + n) ? L.rope_long : L.rope;
    if (L.use_rope) {
      apply_rope(qc, n, past, RopeLayout{H, Dh, H * Dh, style}, rope);
      apply_rope(kc, n, past, RopeLayout{Hkv, Dh, Hkv * Dh, style}, rope);
      if (spec_.qk_norm == QkNorm::kL2) {  // Llama 4: weightless RMSNorm per head, after RoPE, RoPE layers only
        rms_norm(qc, nullptr, qc, n * H, Dh, eps);
        rms_norm(kc, nullptr, kc, n * Hkv, Dh, eps);
      }
    } else if (spec_.attn_temperature_floor > 0) {
      // Llama 4 temperature tuning of the NoPE layers: q x (log(floor((pos + 1) / floor) + 1) x scale + 1)
      for (int64_t t = 0; t < n; ++t) {
        const double pos = static_cast<double>(past + t);
        const float m = static_cast<float>(std::log(std::floor((pos + 1.0) / spec_.attn_temperature_floor) + 1.0) *
                                               spec_.attn_temperature_scale +
                                           1.0);
        for (int64_t i = 0; i < H * Dh; ++i) qc[t * H * Dh + i] *= m;
      }
    }
    cache.store(li, kc, vc, n);
    AttentionTensors at{qc,
                        cache.key_data(li),
                        cache.value_data(li),
                        scratch_o_.data() + r0 * H * Dh,
                        n,
                        past + n,
                        Dh,
                        Dh,
                        cache.key_head_stride(),
                        cache.value_head_stride(),
                        cache.dtype(),
                        cache.key_tiled()};
    attention_forward(at, AttentionShape{H, Hkv, Dh, Dh}, AttentionOptions{L.scale, L.window, L.sinks, L.chunk});
  }
  if (L.moa)
    L.moa->project_output(scratch_o_.data(), T, out);
  else
    linear(scratch_o_.data(), T, L.o, L.o_bias, D, out);
}

void Decoder::attention_mla(Layer& L, int64_t li, const float* x, const SequenceChunk* chunks, int64_t n_chunks,
                            const int64_t* rows, float* out) {
  const MlaSpec& m = spec_.mla;
  const int64_t D = spec_.d_model, H = spec_.n_head, dq = m.qk_nope_head_dim + m.qk_rope_head_dim;
  const int64_t r = m.kv_lora_rank, lr = r + m.qk_rope_head_dim, T = rows[n_chunks];
  const float eps = static_cast<float>(spec_.norm_eps);
  scratch_q_.resize(T * H * dq);            // [T, H, nope + rope]
  scratch_k_.resize(T * lr);                // [T, r + rope] latent rows
  scratch_o_.resize(T * H * m.v_head_dim);  // [T, H, Dv]
  float *q = scratch_q_.data(), *lat = scratch_k_.data();
  if (m.q_lora_rank > 0) {
    scratch_v_.resize(T * m.q_lora_rank);  // [T, q_lora_rank]
    linear(x, T, L.q_a, nullptr, m.q_lora_rank, scratch_v_.data());
    rms_norm(scratch_v_.data(), L.q_a_norm, scratch_v_.data(), T, m.q_lora_rank, eps);
    linear(scratch_v_.data(), T, L.q_b, nullptr, H * dq, q);
  } else {
    linear(x, T, L.q, nullptr, H * dq, q);
  }
  linear(x, T, L.kv_a, nullptr, lr, lat);
  rms_norm(lat, L.kv_a_norm, lat, RmsNormShape{T, r, lr, lr}, eps);
  const RopeStyle style = rope_style_from_spec(spec_.rope);
  for (int64_t c = 0; c < n_chunks; ++c) {
    KvCache& cache = *chunks[c].cache;
    const int64_t r0 = rows[c], n = rows[c + 1] - rows[c], past = cache.length();
    float *qc = q + r0 * H * dq, *lc = lat + r0 * lr;
    apply_rope(qc + m.qk_nope_head_dim, n, past, RopeLayout{H, dq, H * dq, style}, L.rope);
    apply_rope(lc + r, n, past, RopeLayout{1, lr, lr, style}, L.rope);
    cache.store(li, lc, nullptr, n);
    const MlaTensors t{qc, cache.key_data(li), scratch_o_.data() + r0 * H * m.v_head_dim, n, past + n, cache.dtype()};
    const AttentionOptions o{L.scale, 0, nullptr};
    if (n == 1) {
      L.mla->forward_absorbed(t, o);
    } else {
      L.mla->forward_naive(t, o);
    }
  }
  linear(scratch_o_.data(), T, L.o, nullptr, D, out);
}

void Decoder::ffn(Layer& L, const float* x, int64_t T, float* out, MoeTelemetry* telemetry) {
  if (L.moe) {
    L.moe->forward(x, T, out, telemetry);
    if (L.moe_bias)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < spec_.d_model; ++d) out[t * spec_.d_model + d] += L.moe_bias[d];
    return;
  }
  const int64_t D = spec_.d_model, F = spec_.n_ff;
  scratch_g_.resize(T * F);  // [T, F]
  scratch_u_.resize(T * F);  // [T, F]
  linear(x, T, L.gate, L.gate_b, F, scratch_g_.data());
  linear(x, T, L.up, L.up_b, F, scratch_u_.data());
  apply_glu(ActivationOptions{}, scratch_g_.data(), scratch_u_.data(), scratch_g_.data(), T * F);
  linear(scratch_g_.data(), T, L.down, L.down_b, D, out);
}

void Decoder::norm(const float* x, const float* weight, const float* bias, float* y, int64_t T, bool block) const {
  const float eps = static_cast<float>(block && spec_.block_norm_eps > 0 ? spec_.block_norm_eps : spec_.norm_eps);
  if (spec_.norm == NormKind::kRms) {
    rms_norm(x, weight, y, T, spec_.d_model, eps);
  } else {
    layer_norm(x, weight, bias, y, T, spec_.d_model, eps);
  }
}

void Decoder::forward(const int32_t* ids, int64_t T, KvCache& cache, float* logits, ForwardStats* stats) {
  const SequenceChunk chunk{ids, T, &cache, logits, false};
  forward_batch(&chunk, 1, stats);
}

namespace {

// Fails, naming the chunk, on an empty chunk, a missing cache or logits buffer, more tokens than the
// cache holds, an id outside [0, V), or two chunks on one cache.
void check_chunks(const SequenceChunk* chunks, int64_t n_chunks, int64_t V) {
  if (n_chunks <= 0) fail("model", "empty batch: at least one sequence is needed");
  for (int64_t c = 0; c < n_chunks; ++c) {
    const SequenceChunk& s = chunks[c];
    const std::string who = n_chunks > 1 ? fmt::format("sequence {} of the batch: ", c) : std::string();
    if (s.n_tokens <= 0 || s.ids == nullptr) fail("model", "{}empty input: at least one token is needed", who);
    if (s.cache == nullptr || s.logits == nullptr) fail("model", "{}no KV cache or logits buffer", who);
    KvCache& cache = *s.cache;
    if (cache.length() + s.n_tokens > cache.max_tokens()) {
      fail("model", "{}{} tokens after {} exceed the context of {} tokens", who, s.n_tokens, cache.length(),
           cache.max_tokens());
    }
    for (int64_t t = 0; t < s.n_tokens; ++t) {
      if (s.ids[t] < 0 || s.ids[t] >= V)
        fail("model", "{}token id {} at position {} is outside the vocabulary [0, {})", who, s.ids[t], t, V);
    }
    for (int64_t o = 0; o < c; ++o)
      if (chunks[o].cache == s.cache) fail("model", "{}shares its KV cache with sequence {}", who, o);
  }
}

}  // namespace

std::vector<SequenceChunk> Decoder::chunks_to_batch(const SequenceChunk* chunks, int64_t n_chunks,
                                                    ForwardStats* stats) {
  const int64_t V = spec_.vocab;
  std::vector<SequenceChunk> batch;         // the chunks this pass runs together
  for (int64_t c = 0; c < n_chunks; ++c) {  // all checked: nothing is written before every chunk passed
    const SequenceChunk& s = chunks[c];
    KvCache& cache = *s.cache;
    const int64_t past = cache.length();
    if (past > 0 && !longrope_uses_long(spec_.rope, past) && longrope_uses_long(spec_.rope, past + s.n_tokens)) {
      // LongRoPE switches every position to the long factors once the sequence is longer than
      // original_max_position_embeddings; transformers' generation then recomputes the whole prefix
      // (the cached keys and every later layer's states change), and so does this, for this sequence alone.
      std::vector<int32_t> all = cache.ids();  // [past + T]
      all.insert(all.end(), s.ids, s.ids + s.n_tokens);
      const int64_t n_all = static_cast<int64_t>(all.size());
      std::vector<float> all_logits(static_cast<size_t>((s.last_only ? 1 : n_all) * V));
      cache.reset();
      const SequenceChunk whole{all.data(), n_all, &cache, all_logits.data(), s.last_only};
      forward_batch(&whole, 1, n_chunks == 1 ? stats : nullptr);
      const int64_t keep = s.last_only ? 1 : s.n_tokens;
      std::copy(all_logits.end() - keep * V, all_logits.end(), s.logits);
      continue;
    }
    batch.push_back(s);
  }
  return batch;
}

void Decoder::embed(const Pass& p) {
  const int64_t D = spec_.d_model;
  const int64_t row_bytes = dtype_row_bytes(embed_.dtype, embed_.ld);
  for (int64_t c = 0; c < p.n_chunks; ++c) {
    for (int64_t t = 0; t < p.chunks[c].n_tokens; ++t) {
      dequantize_row(embed_.dtype, static_cast<const uint8_t*>(embed_.data) + p.chunks[c].ids[t] * row_bytes,
                     &p.h[(p.rows[c] + t) * D], D);
    }
  }
  if (const float m = static_cast<float>(spec_.multipliers.embedding); m != 1.0f)
    for (int64_t i = 0; i < p.T * D; ++i) p.h[i] *= m;  // Granite's embedding_multiplier
  tap(kModelTensor, tap::kEmbed, p.h, p.T);
}

void Decoder::layer_forward(Layer& L, int64_t li, const Pass& p) {
  const int64_t T = p.T, D = spec_.d_model;
  float *h = p.h, *x = p.x, *y = p.y;
  const float residual = static_cast<float>(spec_.multipliers.residual);  // Granite: each branch scaled
  const bool normed = spec_.residual.normed;
  const float mlp_alpha = static_cast<float>(spec_.residual.mlp_alpha),
              mlp_beta = static_cast<float>(spec_.residual.mlp_beta);
  ForwardStats* stats = p.stats;
  double part = stats ? now_seconds() : 0;  // the attention's, then the FFN's start (only when stats are asked)
  norm(h, L.in_norm, L.in_norm_b, x, T);
  tap(li, tap::kAttnNorm, x, T);
  if (spec_.is_mla) {
    attention_mla(L, li, x, p.chunks, p.n_chunks, p.rows, y);
  } else if (L.lightning) {
    attention_lightning(L, li, x, p.chunks, p.n_chunks, p.rows, y);
  } else {
    attention_gqa(L, li, x, p.chunks, p.n_chunks, p.rows, y);
  }
  tap(li, tap::kAttnOut, y, T);
  if (normed) {  // MiniMax: the stream becomes alpha x norm(h) + beta x attention
    for (int64_t i = 0; i < T * D; ++i) h[i] = L.alpha * x[i] + L.beta * y[i];
  } else {
    for (int64_t i = 0; i < T * D; ++i) h[i] += residual * y[i];
  }
  if (stats) {
    const double now = now_seconds();
    stats->attention_seconds += now - part;
    part = now;
  }
  norm(h, L.post_norm, L.post_norm_b, x, T);
  tap(li, tap::kFfnNorm, x, T);
  ffn(L, x, T, y, stats ? &stats->moe_layers[static_cast<size_t>(li)] : nullptr);
  tap(li, L.moe ? tap::kMoeOut : tap::kFfnOut, y, T);
  if (stats && L.moe) {
    const RouterOutput& routing = L.moe->last_router_output();
    stats->expert_ids[static_cast<size_t>(li)] = routing.expert_ids;
    stats->expert_weights[static_cast<size_t>(li)] = routing.weights;
  }
  if (normed) {
    for (int64_t i = 0; i < T * D; ++i) h[i] = mlp_alpha * x[i] + mlp_beta * y[i];
  } else {
    for (int64_t i = 0; i < T * D; ++i) h[i] += residual * y[i];
  }
  if (stats) stats->ffn_seconds += now_seconds() - part;
  tap(li, tap::kHidden, h, T);
}

void Decoder::lm_head(const Pass& p) {
  const int64_t D = spec_.d_model, V = spec_.vocab, B = p.n_chunks, T = p.T;
  const SequenceChunk* batch = p.chunks;
  const int64_t* rows = p.rows;
  float *h = p.h, *x = p.x;
  // The LM head runs only over the rows whose logits are asked for (at prefill, usually one row of
  // many: the head is the largest matrix of most MoE models).
  int64_t n_out = 0;
  for (int64_t c = 0; c < B; ++c) n_out += batch[c].last_only ? 1 : batch[c].n_tokens;
  // Straight into the chunks' logits where they lie one after another in order (one chunk, or a serving
  // step's chunks in the scheduler's [chunks, V] buffer); else gathered and copied. A serving step
  // gathering into a [rows, V] buffer allocated and zeroed per step and copying per sequence took 1.2 /
  // 2.1 ms more at 8 / 16 streams (bench serve, 3 alternated runs).
  bool direct = true;
  for (int64_t c = 0, o = 0; c < B && direct; ++c) {
    direct = batch[c].logits == batch[0].logits + o * V;
    o += batch[c].last_only ? 1 : batch[c].n_tokens;
  }
  if (n_out < T) {  // gather the final states of the rows asked for to the front of h
    int64_t o = 0;
    for (int64_t c = 0; c < B; ++c) {
      const int64_t first = batch[c].last_only ? rows[c + 1] - 1 : rows[c], n = rows[c + 1] - first;
      std::copy(h + first * D, h + (first + n) * D, h + o * D);
      o += n;
    }
  }
  norm(h, final_norm_, final_norm_b_, x, n_out, false);
  tap(kModelTensor, tap::kFinalNorm, x, n_out);
  std::vector<float> gathered(direct ? 0 : static_cast<size_t>(n_out * V));  // [n_out, V]
  float* out = direct ? batch[0].logits : gathered.data();
  linear(x, n_out, head_, head_bias_, V, out);
  if (const float d = static_cast<float>(spec_.multipliers.logits_divisor); d != 1.0f)
    for (int64_t i = 0; i < n_out * V; ++i) out[i] /= d;  // Granite's logits_scaling
  if (direct) return;
  int64_t o = 0;
  for (int64_t c = 0; c < B; ++c) {
    const int64_t n = batch[c].last_only ? 1 : batch[c].n_tokens;
    std::copy(out + o * V, out + (o + n) * V, batch[c].logits);
    o += n;
  }
}

void Decoder::forward_batch(const SequenceChunk* chunks, int64_t n_chunks, ForwardStats* stats) {
  check_chunks(chunks, n_chunks, spec_.vocab);
  if (v4_) return forward_v4(chunks, n_chunks, stats);
  const int64_t D = spec_.d_model;
  const std::vector<SequenceChunk> batch = chunks_to_batch(chunks, n_chunks, stats);
  if (batch.empty()) return;
  const int64_t B = static_cast<int64_t>(batch.size());
  std::vector<int64_t> rows(static_cast<size_t>(B + 1), 0);  // chunk c: rows [rows[c], rows[c + 1])
  for (int64_t c = 0; c < B; ++c) rows[c + 1] = rows[c] + batch[c].n_tokens;
  const int64_t T = rows[B];
  std::vector<float> h(T * D), x(T * D), y(T * D);  // [T, D]
  const Pass pass{batch.data(), B, rows.data(), T, h.data(), x.data(), y.data(), stats};
  embed(pass);
  if (stats) {
    stats->moe_layers.assign(static_cast<size_t>(spec_.n_layer), MoeTelemetry{});
    stats->expert_ids.assign(static_cast<size_t>(spec_.n_layer), {});
    stats->expert_weights.assign(static_cast<size_t>(spec_.n_layer), {});
  }
  for (int64_t li = 0; li < spec_.n_layer; ++li) layer_forward(*layers_[static_cast<size_t>(li)], li, pass);
  for (const SequenceChunk& s : batch) {
    s.cache->record_ids(s.ids, s.n_tokens);
    s.cache->advance(s.n_tokens);
  }
  const double head = stats ? now_seconds() : 0;
  lm_head(pass);
  if (stats) stats->head_seconds += now_seconds() - head;
}

}  // namespace moe
