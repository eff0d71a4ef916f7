// Family tables for the MoE block (see families.h). Router semantics follow the HF modeling
// code (remote code for DeepSeek); tests/reference/make_model_fixtures.py documents each.
#include "model/families.h"

#include <fmt/format.h>

#include <algorithm>

#include "model/gguf_names.h"
#include "moe/layer_config.h"
#include "moe/weight_layout.h"
#include "util/error.h"

namespace moe {

std::string DecoderNames::layer(int64_t i) const { return fmt::format("{}{}.", layers, i); }

DecoderNames decoder_names(const ModelSpec& spec) {
  DecoderNames n;
  if (spec.family == Family::kLlama4) {  // text model, or the text half of the multimodal wrapper
    n.embed = spec.tensor_prefix + "model.embed_tokens.weight";
    n.final_norm = spec.tensor_prefix + "model.norm";
    n.head = spec.tensor_prefix + "lm_head";
    n.layers = spec.tensor_prefix + "model.layers.";
    n.dense_ffn = "feed_forward.";
  }
  if (spec.family == Family::kJetMoe) n.attn = "self_attention.";
  if (spec.family == Family::kDbrx) {
    n.embed = "transformer.wte.weight";
    n.final_norm = "transformer.norm_f";
    n.layers = "transformer.blocks.";
    n.in_norm = "norm_attn_norm.norm_1";
    n.post_norm = "norm_attn_norm.norm_2";
    n.attn = "norm_attn_norm.attn.";
    n.fused_qkv = "Wqkv";
    n.o_proj = "out_proj";
  }
  return n;
}

std::string ffn_prefix(const ModelSpec& spec, int64_t layer) {
  if (spec.family == Family::kDbrx) return decoder_names(spec).layer(layer) + "ffn.";
  if (spec.family == Family::kLlama4) return decoder_names(spec).layer(layer) + "feed_forward.";
  const std::string p = fmt::format("model.layers.{}.", layer);
  const bool block_sparse = spec.family == Family::kMixtral || spec.family == Family::kPhiMoe ||
                            spec.family == Family::kGraniteMoe || spec.family == Family::kMiniMax;
  return block_sparse ? p + "block_sparse_moe." : p + "mlp.";
}

MoeLayerConfig decoder_moe_config(const ModelSpec& spec) {
  switch (spec.family) {  // families whose MoE block the decoder loads (tensor names below)
    case Family::kMixtral:
    case Family::kQwen2Moe:
    case Family::kQwen3Moe:
    case Family::kOlmoe:
    case Family::kDeepseekV2:
    case Family::kDeepseekV3:
    case Family::kGlm4Moe:
    case Family::kDots1:
    case Family::kErnie45Moe:
    case Family::kGraniteMoe:
    case Family::kJetMoe:
    case Family::kMiniMax:
    case Family::kPhiMoe:
    case Family::kDbrx:
    case Family::kLlama4:
    case Family::kGptOss:
      break;
    default:
      fail("model", "{}: no MoE decoder for model_type {} yet", spec.source, spec.model_type);
  }
  MoeLayerConfig c = moe_layer_config(spec);  // the one ModelSpec -> router/activation mapping
  c.router.validate();
  c.activation.validate();
  return c;
}

namespace {

ExpertMatrices swiglu_views(WeightStore& store, const std::string& p, const char* gate, const char* up,
                            const char* down) {
  ExpertMatrices m;
  m.gate = store.matrix(p + gate + ".weight");
  m.up = store.matrix(p + up + ".weight");
  m.down = store.matrix(p + down + ".weight");
  m.gate_bias = store.f32_or_null(p + gate + ".bias");  // mlp_bias families (ERNIE use_bias)
  m.up_bias = store.f32_or_null(p + up + ".bias");
  m.down_bias = store.f32_or_null(p + down + ".bias");
  return m;
}

// out[j * rows + i] = in[i * ld_in + j * step + offset] for i < rows, j < cols, in 32 x 32 tiles (both
// sides then touch whole cache lines): one expert's gate or up half of gate_up [D, 2F] (step 2) as
// Linear rows [F, D], or down [F, D] transposed to [D, F].
template <typename T>
void strided_transpose(const T* in, int64_t rows, int64_t cols, int64_t ld_in, int64_t step, int64_t offset, T* out) {
  constexpr int64_t kTile = 32;
  for (int64_t i0 = 0; i0 < rows; i0 += kTile)
    for (int64_t j0 = 0; j0 < cols; j0 += kTile)
      for (int64_t i = i0; i < std::min(rows, i0 + kTile); ++i)
        for (int64_t j = j0; j < std::min(cols, j0 + kTile); ++j) out[j * rows + i] = in[i * ld_in + j * step + offset];
}

// gpt-oss: gate_up_proj [E, D, 2F] (gate even columns, up odd) and down_proj [E, F, D] become gate, up
// [F, D] and down [D, F] per expert in PyTorch Linear layout, one expert at a time, each matrix packed
// into the kernels' panels as it is made and the file's pages of the expert released: bf16 and f32
// weights are resident once, never widened. (Other float dtypes, f16, are read through the store's f32
// copy of each tensor, WeightStore::rows.)
ExpertWeights gpt_oss_experts(const ModelSpec& spec, const std::string& p, WeightStore& store, const ExpertKeep& keep) {
  const int64_t E = spec.n_expert, D = spec.d_model, F = spec.n_ff_expert;
  const std::string gu_name = p + "experts.gate_up_proj", dn_name = p + "experts.down_proj";
  const WeightView gu_all = store.rows(gu_name, 0, E * D), dn_all = store.rows(dn_name, 0, E * F);
  const DType t = gu_all.dtype == DType::kBF16 && dn_all.dtype == DType::kBF16 ? DType::kBF16 : DType::kF32;
  const size_t es = dtype_size(t);
  const float* gu_b = store.f32(p + "experts.gate_up_proj_bias");  // [E, 2F]
  const float* dn_bias = store.f32(p + "experts.down_proj_bias");  // [E, D]
  std::vector<float>& gate_b = store.own(E * F);                   // [E, F]
  std::vector<float>& up_b = store.own(E * F);                     // [E, F]
  std::vector<uint8_t> src(static_cast<size_t>(D * 2 * F) * es), out(static_cast<size_t>(F * D) * es);
  // Expert e's rows of a fused tensor in dtype t: the mapped bytes as they are, or converted into src.
  const auto expert_src = [&](const std::string& name, int64_t rows_per_expert, int64_t e) -> const uint8_t* {
    const WeightView v = store.rows(name, e * rows_per_expert, rows_per_expert);
    if (v.dtype == t) return static_cast<const uint8_t*>(v.data);
    const int64_t n = rows_per_expert * v.ld;
    convert_to_f32(v.dtype, v.data, reinterpret_cast<float*>(src.data()), static_cast<size_t>(n));
    return src.data();
  };
  const auto relayout = [&](const uint8_t* from, int which) {  // 0 gate, 1 up, 2 down into out
    const int64_t rows = which < 2 ? D : F, cols = which < 2 ? F : D, ld = which < 2 ? 2 * F : D;
    const int64_t step = which < 2 ? 2 : 1, offset = which < 2 ? interleaved_gate_up_index(0, GateUpHalf(which)) : 0;
    if (t == DType::kBF16) {
      strided_transpose(reinterpret_cast<const uint16_t*>(from), rows, cols, ld, step, offset,
                        reinterpret_cast<uint16_t*>(out.data()));
    } else {
      strided_transpose(reinterpret_cast<const float*>(from), rows, cols, ld, step, offset,
                        reinterpret_cast<float*>(out.data()));
    }
  };
  ExpertWeights w;
  w.d_model = D;
  w.d_ff = F;
  for (int64_t e = 0; e < E; ++e) {
    deinterleave_gate_up_bias(gu_b + e * 2 * F, F, GateUpHalf::kGate, gate_b.data() + e * F);
    deinterleave_gate_up_bias(gu_b + e * 2 * F, F, GateUpHalf::kUp, up_b.data() + e * F);
    ExpertMatrices m;
    if (!keep || keep(e)) {
      const uint8_t* gu = expert_src(gu_name, D, e);
      relayout(gu, 0);
      m.gate = store.keep_matrix(out.data(), t, F, D);
      relayout(gu, 1);
      m.up = store.keep_matrix(out.data(), t, F, D);
      store.release(store.rows(gu_name, e * D, D), D);
      relayout(expert_src(dn_name, F, e), 2);
      m.down = store.keep_matrix(out.data(), t, D, F);
      store.release(store.rows(dn_name, e * F, F), F);
      m.gate_bias = gate_b.data() + e * F;
      m.up_bias = up_b.data() + e * F;
      m.down_bias = dn_bias + e * D;
    }
    w.experts.push_back(m);
  }
  return w;
}

// Rows of gpt-oss's MXFP4 experts as GGUF MXFP4 blocks. The checkpoint's blocks [E, rows, cols/32, 16]
// hold element 2i of a block in byte i's low nibble and 2i+1 in its high one, with one E8M0 scale per block
// in scales [E, rows, cols/32]; a GGUF block is the scale, then element j in the low nibble of byte j and
// j + 16 in the high one (the same FP4 codes, so no value changes).
void mxfp4_rows(const uint8_t* blocks, const uint8_t* scales, int64_t cols, const std::vector<int64_t>& rows,
                uint8_t* out) {
  const int64_t nb = cols / 32;
  for (size_t r = 0; r < rows.size(); ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* src = blocks + (rows[r] * nb + b) * 16;
      uint8_t* dst = out + (static_cast<int64_t>(r) * nb + b) * 17;
      dst[0] = scales[rows[r] * nb + b];
      const auto nibble = [src](int i) { return (src[i / 2] >> (4 * (i & 1))) & 15; };
      for (int j = 0; j < 16; ++j) dst[1 + j] = static_cast<uint8_t>(nibble(j) | (nibble(j + 16) << 4));
    }
  }
}

// gpt-oss's MXFP4 experts: each expert's gate (even rows of gate_up), up (odd rows) and down matrices
// rebuilt as MXFP4 rows and packed into the kernels' panels at once (the rows are not kept), biases f32.
ExpertWeights gpt_oss_mxfp4_experts(const ModelSpec& spec, const std::string& p, WeightStore& store,
                                    const ExpertKeep& keep) {
  const int64_t E = spec.n_expert, D = spec.d_model, F = spec.n_ff_expert;
  const auto bytes = [&](const std::string& n) { return store.raw_bytes(p + n); };
  const uint8_t *gu_b = bytes("experts.gate_up_proj_blocks"), *gu_s = bytes("experts.gate_up_proj_scales");
  const uint8_t *dn_b = bytes("experts.down_proj_blocks"), *dn_s = bytes("experts.down_proj_scales");
  const float* gu_bias = store.f32(p + "experts.gate_up_proj_bias");  // [E, 2F]
  std::vector<float>& gate_b = store.own(E * F);                      // [E, F]
  std::vector<float>& up_b = store.own(E * F);                        // [E, F]
  std::vector<int64_t> even(static_cast<size_t>(F)), odd(static_cast<size_t>(F)), down_rows(static_cast<size_t>(D));
  for (int64_t f = 0; f < F; ++f) {
    even[size_t(f)] = interleaved_gate_up_index(f, GateUpHalf::kGate);
    odd[size_t(f)] = interleaved_gate_up_index(f, GateUpHalf::kUp);
  }
  for (int64_t d = 0; d < D; ++d) down_rows[size_t(d)] = d;
  ExpertWeights w;
  w.d_model = D;
  w.d_ff = F;
  std::vector<uint8_t> tmp(static_cast<size_t>(std::max(F * (D / 32), D * (F / 32)) * 17));
  const auto matrix = [&](const uint8_t* blocks, const uint8_t* scales, int64_t cols,
                          const std::vector<int64_t>& rows) {
    mxfp4_rows(blocks, scales, cols, rows, tmp.data());
    return store.keep_matrix(tmp.data(), DType::kMXFP4, static_cast<int64_t>(rows.size()), cols);
  };
  for (int64_t e = 0; e < E; ++e) {
    deinterleave_gate_up_bias(gu_bias + e * 2 * F, F, GateUpHalf::kGate, gate_b.data() + e * F);
    deinterleave_gate_up_bias(gu_bias + e * 2 * F, F, GateUpHalf::kUp, up_b.data() + e * F);
    ExpertMatrices m;
    if (!keep || keep(e)) {
      const int64_t gu_expert = 2 * F * (D / 32), dn_expert = D * (F / 32);  // blocks per expert
      m.gate = matrix(gu_b + e * gu_expert * 16, gu_s + e * gu_expert, D, even);
      m.up = matrix(gu_b + e * gu_expert * 16, gu_s + e * gu_expert, D, odd);
      m.down = matrix(dn_b + e * dn_expert * 16, dn_s + e * dn_expert, F, down_rows);
      m.gate_bias = gate_b.data() + e * F;
      m.up_bias = up_b.data() + e * F;
      m.down_bias = store.f32(p + "experts.down_proj_bias") + e * D;
    }
    w.experts.push_back(m);
  }
  return w;
}

// The frame of a layer whose experts are fused tensors: sizes and the router Linear `router`.
MoeLayerWeights fused_frame(const ModelSpec& spec, WeightStore& store, const std::string& router) {
  MoeLayerWeights w;
  w.experts.d_model = w.shared.d_model = spec.d_model;
  w.experts.d_ff = spec.n_ff_expert;
  w.router.weight = store.matrix(router);
  return w;
}

// Granite-MoE and JetMoE (under mlp.): input_linear [E, 2F, D] (gate rows, then up rows) and output_linear
// [E, D, F] are already PyTorch Linear layouts per expert: zero-copy views. The shared MLP fuses gate and up
// alike. JetMoE's output bias (mlp.bias) is added by the decoder.
MoeLayerWeights granite_weights(const ModelSpec& spec, int64_t layer, WeightStore& store, const ExpertKeep& keep) {
  const int64_t F = spec.n_ff_expert, D = spec.d_model;
  const std::string p = ffn_prefix(spec, layer);
  MoeLayerWeights w = fused_frame(spec, store, p + "router.layer.weight");
  for (int64_t e = 0; e < spec.n_expert; ++e) {
    ExpertMatrices m;  // another rank's expert stays empty (not read)
    if (!keep || keep(e)) {
      m.gate = store.rows(p + "input_linear.weight", e * 2 * F, F);
      m.up = store.rows(p + "input_linear.weight", e * 2 * F + F, F);
      m.down = store.rows(p + "output_linear.weight", e * D, D);
    }
    w.experts.experts.push_back(m);
  }
  if (spec.n_ff_shared > 0) {
    const int64_t Fs = spec.n_ff_shared;
    const std::string s = fmt::format("model.layers.{}.shared_mlp.", layer);
    w.shared.d_ff = Fs;
    w.shared.experts.push_back({store.rows(s + "input_linear.weight", 0, Fs),
                                store.rows(s + "input_linear.weight", Fs, Fs),
                                store.matrix(s + "output_linear.weight")});
  }
  return w;
}

// DBRX: w1 and v1 [E*F, D] hold each expert's gate and up rows (viewed in place); w2 [E*F, D] holds
// each expert's down projection transposed ([F, D]), re-laid out once into [D, F].
MoeLayerWeights dbrx_weights(const ModelSpec& spec, int64_t layer, WeightStore& store, const ExpertKeep& keep) {
  const int64_t F = spec.n_ff_expert, D = spec.d_model;
  const std::string p = ffn_prefix(spec, layer), x = p + "experts.mlp.";
  MoeLayerWeights w = fused_frame(spec, store, p + "router.layer.weight");
  const float* w2 = nullptr;
  for (int64_t e = 0; e < spec.n_expert; ++e) {
    ExpertMatrices m;  // another rank's expert stays empty (not read)
    if (!keep || keep(e)) {
      if (!w2) w2 = store.f32(x + "w2");                                 // [E*F, D]
      std::vector<float>& down = store.own(static_cast<size_t>(D * F));  // [D, F]
      for (int64_t f = 0; f < F; ++f)
        for (int64_t d = 0; d < D; ++d) down[d * F + f] = w2[(e * F + f) * D + d];
      m.gate = store.rows(x + "w1", e * F, F);
      m.up = store.rows(x + "v1", e * F, F);
      m.down = WeightView{down.data(), DType::kF32, F};
    }
    w.experts.experts.push_back(m);
  }
  return w;
}

// Llama 4: gate_up_proj [E, D, 2F] (gate the first F columns, up the last F) and down_proj [E, F, D]
// become gate, up [F, D] and down [D, F] per expert; the shared expert and the router are Linear.
MoeLayerWeights llama4_weights(const ModelSpec& spec, int64_t layer, WeightStore& store, const ExpertKeep& keep) {
  const int64_t F = spec.n_ff_expert, D = spec.d_model;
  const std::string p = ffn_prefix(spec, layer);
  MoeLayerWeights w = fused_frame(spec, store, p + "router.weight");
  const float *gu = nullptr, *dn = nullptr;
  for (int64_t e = 0; e < spec.n_expert; ++e) {
    ExpertMatrices m;  // another rank's expert stays empty (not read)
    if (!keep || keep(e)) {
      if (!gu) gu = store.f32(p + "experts.gate_up_proj");               // [E, D, 2F]
      if (!dn) dn = store.f32(p + "experts.down_proj");                  // [E, F, D]
      std::vector<float>& gate = store.own(static_cast<size_t>(F * D));  // [F, D]
      std::vector<float>& up = store.own(static_cast<size_t>(F * D));    // [F, D]
      std::vector<float>& down = store.own(static_cast<size_t>(D * F));  // [D, F]
      for (int64_t d = 0; d < D; ++d)
        for (int64_t f = 0; f < F; ++f) {
          gate[f * D + d] = gu[(e * D + d) * 2 * F + f];
          up[f * D + d] = gu[(e * D + d) * 2 * F + F + f];
          down[d * F + f] = dn[(e * F + f) * D + d];
        }
      m.gate = WeightView{gate.data(), DType::kF32, D};
      m.up = WeightView{up.data(), DType::kF32, D};
      m.down = WeightView{down.data(), DType::kF32, F};
    }
    w.experts.experts.push_back(m);
  }
  w.shared.d_ff = spec.n_ff_shared;
  w.shared.experts.push_back(swiglu_views(store, p + "shared_expert.", "gate_proj", "up_proj", "down_proj"));
  return w;
}

// Experts one Linear matrix each under ffn_prefix + "experts.<e>.": every family's checkpoints but the
// fused ones, and every family read from GGUF (whose converters split the fused layouts).
ExpertWeights split_experts(const ModelSpec& spec, const std::string& p, WeightStore& store, const ExpertKeep& keep) {
  ExpertWeights w;
  w.d_model = spec.d_model;
  w.d_ff = spec.n_ff_expert;
  for (int64_t e = 0; e < spec.n_expert; ++e) {
    if (keep && !keep(e)) {
      w.experts.emplace_back();  // another rank's expert: not read
      continue;
    }
    const std::string x = fmt::format("{}experts.{}.", p, e);
    w.experts.push_back(swiglu_views(store, x, gguf_names::expert_hf_name(spec, "gate"),
                                     gguf_names::expert_hf_name(spec, "up"), gguf_names::expert_hf_name(spec, "down")));
  }
  return w;
}

}  // namespace

MoeLayerWeights moe_layer_weights(const ModelSpec& spec, int64_t layer, WeightStore& store, const ExpertKeep& keep) {
  const std::string p = ffn_prefix(spec, layer);
  MoeLayerWeights w;
  w.experts.d_model = w.shared.d_model = spec.d_model;
  const bool split = store.has(p + "experts.0." + gguf_names::expert_hf_name(spec, "gate") + ".weight");
  const Family f = spec.family;
  if (split && (f == Family::kGraniteMoe || f == Family::kDbrx || f == Family::kLlama4)) {  // from GGUF
    w.router.weight = store.matrix(gguf_names::router_name(spec, layer));
    w.experts = split_experts(spec, p, store, keep);
    if (spec.n_ff_shared > 0) {
      w.shared.d_ff = spec.n_ff_shared;
      w.shared.experts.push_back(
          swiglu_views(store, gguf_names::shared_prefix(spec, layer), "gate_proj", "up_proj", "down_proj"));
    }
    return w;
  }
  if (f == Family::kGraniteMoe || f == Family::kJetMoe) return granite_weights(spec, layer, store, keep);
  if (f == Family::kDbrx) return dbrx_weights(spec, layer, store, keep);
  if (f == Family::kLlama4) return llama4_weights(spec, layer, store, keep);
  if (spec.family == Family::kGptOss) {
    w.router.weight = store.matrix(p + "router.weight");
    w.router.bias = store.f32(p + "router.bias");
    if (store.has(p + "experts.0.gate_proj.weight")) {  // GGUF: one Linear matrix each, biases [E, F] / [E, D]
      w.experts = split_experts(spec, p, store, keep);
      const float* gb = store.f32(p + "experts.gate_proj_bias");
      const float* ub = store.f32(p + "experts.up_proj_bias");
      const float* db = store.f32(p + "experts.down_proj_bias");
      for (int64_t e = 0; e < spec.n_expert; ++e) {
        ExpertMatrices& m = w.experts.experts[size_t(e)];
        if (!m.gate.data) continue;  // another rank's expert
        m.gate_bias = gb + e * spec.n_ff_expert;
        m.up_bias = ub + e * spec.n_ff_expert;
        m.down_bias = db + e * spec.d_model;
      }
    } else if (store.has(p + "experts.gate_up_proj_blocks")) {  // the released MXFP4 checkpoint
      w.experts = gpt_oss_mxfp4_experts(spec, p, store, keep);
    } else {
      w.experts = gpt_oss_experts(spec, p, store, keep);
    }
    return w;
  }
  w.router.weight = store.matrix(gguf_names::router_name(spec, layer));
  w.router.correction_bias = store.f32_or_null(gguf_names::score_bias_name(spec, layer));
  w.experts = split_experts(spec, p, store, keep);
  if (spec.n_ff_shared > 0) {
    w.shared.d_model = spec.d_model;
    w.shared.d_ff = spec.n_ff_shared;
    w.shared.experts.push_back(
        swiglu_views(store, gguf_names::shared_prefix(spec, layer), "gate_proj", "up_proj", "down_proj"));
    if (spec.shared_expert_gate) w.shared_gate = store.matrix(p + "shared_expert_gate.weight");
  }
  return w;
}

}  // namespace moe
