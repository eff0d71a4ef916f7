// GGUF tensors under Hugging Face names (see gguf_weights.h).
#include "model/gguf_weights.h"

#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "kernels/quant_blocks.h"
#include "model/families.h"
#include "model/gguf_names.h"
#include "spec/tensor_registry.h"
#include "util/error.h"

namespace moe {
namespace {

// Splits "blk.12.attn_q.weight" into layer 12 and "attn_q.weight"; false for top-level names.
bool split_layer(const std::string& name, int64_t* layer, std::string* rest) {
  if (name.rfind("blk.", 0) != 0) return false;
  const size_t dot = name.find('.', 4);
  if (dot == std::string::npos || dot == 4) return false;
  for (size_t i = 4; i < dot; ++i)
    if (name[i] < '0' || name[i] > '9') return false;
  *layer = std::stoll(name.substr(4, dot - 4));
  *rest = name.substr(dot + 1);
  return true;
}

}  // namespace

GgufTensorSource::GgufTensorSource(const std::string& path, const ModelSpec& spec, bool kv_b_data)
    : file_(GgufFile::open(path)) {
  for (gguf_names::Rule& r : gguf_names::layer_rules(spec))
    layer_names_.emplace_back(std::move(r.gguf), std::move(r.hf));
  for (const GgufTensor& t : file_.tensors()) map_tensor(spec, t);
  rebuild_kv_b(spec, kv_b_data);
  // Every tensor the model needs, with the shape its config implies.
  RegistryOptions opt;
  opt.include_mtp = false;
  const TensorRegistry reg = build_registry(spec, opt);
  for (const TensorEntry& e : reg.tensors) {
    if (gguf_names::fused_expert_tensor(spec, e.name)) continue;  // GGUF splits them: checked below
    const SourceTensor* s = find(e.name);
    if (!s) {
      const std::string g = gguf_names::gguf_name(spec, e.name);
      if (g.empty()) fail("gguf", "{}: missing tensor for {} (shape [{}])", path, e.name, fmt::join(e.shape, ", "));
      fail("gguf", "{}: missing tensor {} (for {}, shape [{}])", path, g, e.name, fmt::join(e.shape, ", "));
    }
    if (s->shape != e.shape) {
      fail("gguf", "{}: tensor {} (as {}) has shape [{}], the metadata implies [{}]", path, s->origin, e.name,
           fmt::join(s->shape, ", "), fmt::join(e.shape, ", "));
    }
  }
  check_split_experts(spec);
}

// The families whose checkpoints fuse experts (or a shared MLP) get them from GGUF one matrix each.
void GgufTensorSource::check_split_experts(const ModelSpec& spec) {
  const Family f = spec.family;
  if (f != Family::kGptOss && f != Family::kGraniteMoe && f != Family::kDbrx && f != Family::kLlama4) return;
  const int64_t D = spec.d_model, F = spec.n_ff_expert;
  const auto need = [&](const std::string& name, std::vector<int64_t> shape, int64_t l) {
    const SourceTensor* t = find(name);
    if (!t) fail("gguf", "{}: layer {}: missing {} (as {})", file_.path(), l, gguf_names::gguf_name(spec, name), name);
    if (t->shape != shape)
      fail("gguf", "{}: layer {}: {} has shape [{}], the metadata implies [{}]", file_.path(), l, t->origin,
           fmt::join(t->shape, ", "), fmt::join(shape, ", "));
  };
  for (int64_t l = 0; l < spec.n_layer; ++l) {
    if (!spec.layers[size_t(l)].is_moe) continue;
    const std::string p = ffn_prefix(spec, l);
    for (int64_t e = 0; e < spec.n_expert; ++e) {
      const std::string x = fmt::format("{}experts.{}.", p, e);
      need(x + gguf_names::expert_hf_name(spec, "gate") + ".weight", {F, D}, l);
      need(x + gguf_names::expert_hf_name(spec, "up") + ".weight", {F, D}, l);
      need(x + gguf_names::expert_hf_name(spec, "down") + ".weight", {D, F}, l);
    }
    if (spec.family == Family::kGptOss) {
      for (const char* w : {"gate_proj", "up_proj", "down_proj"}) {
        const int64_t out = std::string(w) == "down_proj" ? D : F;
        need(p + "experts." + w + "_bias", {spec.n_expert, out}, l);
      }
    }
    if (spec.family == Family::kGraniteMoe && spec.n_ff_shared > 0) {
      const std::string sp = gguf_names::shared_prefix(spec, l);
      const int64_t Fs = spec.n_ff_shared;
      need(sp + "gate_proj.weight", {Fs, D}, l);
      need(sp + "up_proj.weight", {Fs, D}, l);
      need(sp + "down_proj.weight", {D, Fs}, l);
    }
  }
}

const SourceTensor* GgufTensorSource::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

void GgufTensorSource::add(const std::string& name, std::vector<int64_t> shape, DType dtype, const uint8_t* data,
                           const std::string& origin) {
  SourceTensor t;
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
  t.nbytes = static_cast<uint64_t>(rows * dtype_row_bytes(dtype, shape.empty() ? 1 : shape.back()));
  t.shape = std::move(shape);
  t.dtype = dtype;
  t.data = data;
  t.origin = origin;
  if (!tensors_.emplace(name, std::move(t)).second) {
    fail("gguf", "{}: tensor {} maps to {}, which another tensor already provides", file_.path(), origin, name);
  }
}

// Routed experts of layer L: 3-D tensors of all experts, or (older Mixtral conversions) one per expert;
// false for any other tensor.
bool GgufTensorSource::map_experts(const ModelSpec& spec, const GgufTensor& t, DType dt, int64_t L,
                                   const std::string& rest) {
  const uint8_t* data = file_.bytes(t).data();
  const std::vector<int64_t> shape = t.shape();
  const std::string mlp = ffn_prefix(spec, L);
  // Experts: 3-D [E, rows, cols] (gate, up, down, or gate and up fused as [E, 2F, D]).
  const bool fused = rest == "ffn_gate_up_exps.weight";
  for (const char* w : {"gate", "up", "down"}) {
    if (!fused && rest != fmt::format("ffn_{}_exps.weight", w)) continue;
    if (shape.size() != 3) fail("gguf", "{}: tensor {}: expected 3 dimensions [E, rows, cols]", file_.path(), t.name);
    const int64_t E = shape[0], rows = shape[1], cols = shape[2];
    const int64_t expert_bytes = rows * dtype_row_bytes(dt, cols);
    for (int64_t e = 0; e < E; ++e) {
      const uint8_t* base = data + e * expert_bytes;
      const std::string x = fmt::format("{}experts.{}.", mlp, e);
      if (fused) {
        if (rows % 2 != 0) fail("gguf", "{}: tensor {}: odd fused gate/up rows {}", file_.path(), t.name, rows);
        add(x + gguf_names::expert_hf_name(spec, "gate") + ".weight", {rows / 2, cols}, dt, base, t.name);
        add(x + gguf_names::expert_hf_name(spec, "up") + ".weight", {rows / 2, cols}, dt,
            base + rows / 2 * dtype_row_bytes(dt, cols), t.name);
      } else {
        add(x + gguf_names::expert_hf_name(spec, w) + ".weight", {rows, cols}, dt, base, t.name);
      }
    }
    return true;
  }
  // Older Mixtral conversions: one tensor per expert, blk.N.ffn_gate.E.weight.
  for (const char* w : {"gate", "up", "down"}) {
    const std::string p = fmt::format("ffn_{}.", w);
    if (rest.rfind(p, 0) == 0 && rest.size() > p.size() + 7 && rest.substr(rest.size() - 7) == ".weight") {
      const std::string e = rest.substr(p.size(), rest.size() - p.size() - 7);
      if (!e.empty() && e.find_first_not_of("0123456789") == std::string::npos) {
        add(fmt::format("{}experts.{}.{}.weight", mlp, e, gguf_names::expert_hf_name(spec, w)), shape, dt, data,
            t.name);
        return true;
      }
    }
  }
  return false;
}

void GgufTensorSource::map_tensor(const ModelSpec& spec, const GgufTensor& t) {
  const GgmlTypeInfo* ti = ggml_type_info(t.ggml_type);
  if (!ti->dtype || (!dtype_is_float(*ti->dtype))) {
    fail("gguf",
         "{}: tensor {}: type {} is not supported (supported: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K "
         "Q5_K Q6_K MXFP4 IQ4_XS)",
         file_.path(), t.name, ti->name);
  }
  const DType dt = *ti->dtype;
  const uint8_t* data = file_.bytes(t).data();
  const std::vector<int64_t> shape = t.shape();
  const DecoderNames names = decoder_names(spec);
  if (t.name == "token_embd.weight") return add(names.embed, shape, dt, data, t.name);
  for (const char* part : {"weight", "bias"}) {
    if (t.name == fmt::format("output_norm.{}", part))
      return add(fmt::format("{}.{}", names.final_norm, part), shape, dt, data, t.name);
    if (t.name == fmt::format("output.{}", part))
      return add(fmt::format("{}.{}", names.head, part), shape, dt, data, t.name);
  }
  // Rotary frequency factors: read into the config (gguf_config.cc), not weights.
  if (t.name == "rope_factors_long.weight" || t.name == "rope_factors_short.weight" || t.name == "rope_freqs.weight")
    return;
  int64_t L = 0;
  std::string rest;
  if (!split_layer(t.name, &L, &rest)) {
    fail("gguf", "{}: tensor {} is not part of a {} model", file_.path(), t.name, spec.model_type);
  }
  if (L >= spec.n_layer) {
    if (L < spec.n_layer + spec.n_mtp_layers) return;  // MTP (nextn) layers: counted, not run
    fail("gguf", "{}: tensor {}: layer {} beyond block_count {}", file_.path(), t.name, L, spec.n_layer);
  }
  const std::string hl = names.layer(L);
  for (const auto& [gguf, hf] : layer_names_)
    if (rest == gguf) return add(hl + hf, shape, dt, data, t.name);
  const std::string mlp = ffn_prefix(spec, L);
  const bool gpt_oss = spec.family == Family::kGptOss;
  if (rest == "ffn_gate_inp.weight") return add(gguf_names::router_name(spec, L), shape, dt, data, t.name);
  if (rest == "ffn_gate_inp.bias" && gpt_oss) return add(mlp + "router.bias", shape, dt, data, t.name);
  if (rest == "exp_probs_b.bias") {  // [E]; ERNIE's moe_statics holds it as [1, E]
    std::vector<int64_t> s = spec.family == Family::kErnie45Moe ? std::vector<int64_t>{1, shape.back()} : shape;
    return add(gguf_names::score_bias_name(spec, L), std::move(s), dt, data, t.name);
  }
  if (rest == "ffn_gate_inp_shexp.weight") {  // [D] in GGUF, Linear(D, 1) in HF
    return add(mlp + "shared_expert_gate.weight", {1, shape.back()}, dt, data, t.name);
  }
  for (const char* w : {"gate", "up", "down"}) {
    if (rest == fmt::format("ffn_{}_shexp.weight", w))
      return add(gguf_names::shared_prefix(spec, L) + w + "_proj.weight", shape, dt, data, t.name);
    if (gpt_oss && rest == fmt::format("ffn_{}_exps.bias", w))
      return add(mlp + "experts." + w + "_proj_bias", shape, dt, data, t.name);
  }
  if (map_experts(spec, t, dt, L, rest)) return;
  if (rest == "attn_k_b.weight" || rest == "attn_v_b.weight") {
    return add(hl + "self_attn." + rest.substr(0, rest.size() - 7) + ".gguf", shape, dt, data, t.name);
  }
  fail("gguf", "{}: tensor {} is not part of a {} model (general.architecture {})", file_.path(), t.name,
       spec.model_type, file_.opt_str("general.architecture").value_or("?"));
}

// kv_b_proj [H * (nope + v), kv_lora] from attn_k_b [H, kv_lora, nope] (transposed per head) and attn_v_b
// [H, v, kv_lora], in f32.
void GgufTensorSource::rebuild_kv_b(const ModelSpec& spec, bool with_data) {
  if (!spec.is_mla) return;
  const int64_t H = spec.n_head, r = spec.mla.kv_lora_rank, nope = spec.mla.qk_nope_head_dim, v = spec.mla.v_head_dim;
  for (int64_t l = 0; l < spec.n_layer; ++l) {
    const std::string a = fmt::format("model.layers.{}.self_attn.", l);
    const SourceTensor* kb = find(a + "attn_k_b.gguf");
    const SourceTensor* vb = find(a + "attn_v_b.gguf");
    if (!kb && !vb) continue;
    if (!kb || !vb) fail("gguf", "{}: layer {}: attn_k_b and attn_v_b must come together", file_.path(), l);
    if (kb->shape != std::vector<int64_t>{H, r, nope} || vb->shape != std::vector<int64_t>{H, v, r}) {
      fail("gguf", "{}: layer {}: attn_k_b [{}] / attn_v_b [{}], expected [{}, {}, {}] / [{}, {}, {}]", file_.path(), l,
           fmt::join(kb->shape, ", "), fmt::join(vb->shape, ", "), H, r, nope, H, v, r);
    }
    if (!with_data) {
      add(a + "kv_b_proj.weight", {H * (nope + v), r}, DType::kF32, nullptr, kKvBFromSplit);
      continue;
    }
    std::vector<float> k(static_cast<size_t>(H * r * nope)), vv(static_cast<size_t>(H * v * r));
    for (int64_t row = 0; row < H * r; ++row)
      dequantize_row(kb->dtype, kb->data + row * dtype_row_bytes(kb->dtype, nope), k.data() + row * nope, nope);
    for (int64_t row = 0; row < H * v; ++row)
      dequantize_row(vb->dtype, vb->data + row * dtype_row_bytes(vb->dtype, r), vv.data() + row * r, r);
    std::vector<float>& kv = owned_.emplace_back(static_cast<size_t>(H * (nope + v) * r));  // [H * (nope + v), r]
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < nope; ++i)
        for (int64_t c = 0; c < r; ++c) kv[((h * (nope + v)) + i) * r + c] = k[(h * r + c) * nope + i];
      std::memcpy(&kv[(h * (nope + v) + nope) * r], &vv[h * v * r], sizeof(float) * size_t(v * r));
    }
    add(a + "kv_b_proj.weight", {H * (nope + v), r}, DType::kF32, reinterpret_cast<const uint8_t*>(kv.data()),
        kKvBFromSplit);
  }
}

}  // namespace moe
