// HF checkpoint -> GGUF (see gguf_export.h): the metadata, the tensor plan with each tensor's type under the
// mixture, and the streaming quantizing writer.
#include "model/gguf_export.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "io/gguf.h"
#include "kernels/quant_blocks.h"
#include "model/families.h"
#include "model/gguf_names.h"
#include "model/rope.h"
#include "model/weights.h"
#include "moe/weight_layout.h"
#include "runtime/thread_pool.h"
#include "spec/model_spec.h"
#include "tokenizer/gguf_vocab.h"
#include "util/error.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

// One output tensor: its GGUF name, HF-order shape, target type, layer (-1: none), and how to read it as f32.
struct Planned {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::kF32;
  int64_t layer = -1;
  std::function<std::vector<float>()> read;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

enum class Role2 { kOther, kOutput, kEmbedding, kAttnV, kAttnK, kAttnOut, kFfnDown, kExperts, kRouter };

struct Mixture {
  std::string type;
  DType base = DType::kQ8_0;
  bool k_mixture = false;  // Q4_K_M / Q5_K_M adjustments
  bool mxfp4 = false;
};

Mixture parse_mixture(const std::string& t) {
  Mixture m;
  m.type = t;
  if (t == "Q8_0")
    m.base = DType::kQ8_0;
  else if (t == "Q4_0")
    m.base = DType::kQ4_0;
  else if (t == "Q4_1")
    m.base = DType::kQ4_1;
  else if (t == "Q5_0")
    m.base = DType::kQ5_0;
  else if (t == "Q5_1")
    m.base = DType::kQ5_1;
  else if (t == "Q6_K")
    m.base = DType::kQ6_K;
  else if (t == "Q4_K_M")
    m.base = DType::kQ4_K, m.k_mixture = true;
  else if (t == "Q5_K_M")
    m.base = DType::kQ5_K, m.k_mixture = true;
  else if (t == "MXFP4")
    m.base = DType::kQ8_0, m.mxfp4 = true;
  else if (t == "IQ4_XS")
    m.base = DType::kIQ4_XS;
  else if (t == "BF16")
    m.base = DType::kBF16;
  else if (t == "F32")
    m.base = DType::kF32;
  else
    fail_usage("quantize", "--type {} is not one of {}", t, quantize_types());
  return m;
}

int ftype_of(const std::string& t) {
  if (t == "F32") return 0;
  if (t == "Q4_0") return 2;
  if (t == "Q4_1") return 3;
  if (t == "Q8_0") return 7;
  if (t == "Q5_0") return 8;
  if (t == "Q5_1") return 9;
  if (t == "Q4_K_M") return 15;
  if (t == "Q5_K_M") return 17;
  if (t == "Q6_K") return 18;
  if (t == "BF16") return 32;
  if (t == "IQ4_XS") return 30;
  return 38;  // MXFP4_MOE
}

// The first and last eighth of the layers and every third one in between keep more bits (K_M mixtures).
bool more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// A 256-block type whose block does not divide the rows falls back to a 32-block one; BF16 below that.
DType fit_rows(DType t, int64_t cols) {
  if (cols % dtype_block_elems(t) == 0) return t;
  DType f = (t == DType::kQ4_K || t == DType::kIQ4_XS) ? DType::kQ5_0 : t == DType::kQ5_K ? DType::kQ5_1 : DType::kQ8_0;
  return cols % dtype_block_elems(f) == 0 ? f : DType::kBF16;
}

DType choose_type(const Mixture& mx, const ModelSpec& spec, const Planned& t, Role2 role) {
  const bool bias = t.name.size() > 5 && t.name.compare(t.name.size() - 5, 5, ".bias") == 0;
  if (t.shape.size() < 2 || bias || mx.base == DType::kF32 || role == Role2::kRouter) return DType::kF32;
  if (mx.base == DType::kBF16) return DType::kBF16;
  DType d = mx.base;
  if (role == Role2::kOutput) {
    d = (mx.base == DType::kQ8_0) ? DType::kQ8_0 : DType::kQ6_K;
  } else if (mx.mxfp4) {
    d = role == Role2::kExperts ? DType::kMXFP4 : DType::kQ8_0;
  } else if (mx.k_mixture) {
    const bool eight = spec.n_expert == 8;
    const int64_t L = t.layer < 0 ? 0 : t.layer;
    if (role == Role2::kAttnV) d = eight ? DType::kQ8_0 : more_bits(L, spec.n_layer) ? DType::kQ6_K : d;
    if (role == Role2::kAttnK && eight) d = DType::kQ8_0;
    if (role == Role2::kFfnDown && more_bits(L, spec.n_layer)) d = DType::kQ6_K;
    if (role == Role2::kAttnOut && eight && mx.base == DType::kQ4_K) d = DType::kQ5_K;
  }
  return fit_rows(d, t.shape.back());
}

// Mixtral / Llama q and k rows per head reordered so that llama.cpp's interleaved rotary pairs (2j, 2j+1)
// are the checkpoint's rotate-half pairs (j, j + d/2): new row 2j + i of a head is old row i * d/2 + j.
std::vector<float> permute_heads(const std::vector<float>& w, int64_t n_heads, int64_t cols) {
  const int64_t rows = static_cast<int64_t>(w.size()) / cols, d = rows / n_heads;
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t j = 0; j < d / 2; ++j)
      for (int64_t i = 0; i < 2; ++i)
        std::copy_n(&w[size_t((h * d + i * (d / 2) + j) * cols)], cols, &out[size_t((h * d + 2 * j + i) * cols)]);
  return out;
}

// Llama 3 rope scaling as llama.cpp stores it: each frequency's divisor (rope_freqs.weight).
std::vector<double> llama3_freq_divisors(const ModelSpec& s) {
  const RopeConfig scaled = rope_config_from_spec(s.rope, s.head_dim);
  RopeConfig plain = scaled;
  plain.scaling = RopeScaling::kNone;
  const RopeTable a = make_rope_table(plain), b = make_rope_table(scaled);
  std::vector<double> f(a.inv_freq.size());
  for (size_t i = 0; i < f.size(); ++i) f[i] = double(a.inv_freq[i]) / double(b.inv_freq[i]);
  return f;
}

class Planner {
 public:
  Planner(const ModelSpec& spec, WeightStore& store, const Mixture& mx) : spec_(spec), store_(store), mx_(mx) {}

  std::vector<Planned> plan() {
    const bool tied = spec_.tie_word_embeddings;
    const DecoderNames n = decoder_names(spec_);
    add("token_embd.weight", n.embed, -1, tied ? Role2::kOutput : Role2::kEmbedding);
    if (spec_.rope.type == RopeType::kLongrope) {  // Phi-3.5-MoE: the factors as tensors
      add_vector("rope_factors_long.weight", spec_.rope.long_factor);
      add_vector("rope_factors_short.weight", spec_.rope.short_factor);
    }
    if (spec_.rope.type == RopeType::kLlama3) add_vector("rope_freqs.weight", llama3_freq_divisors(spec_));
    for (int64_t l = 0; l < spec_.n_layer; ++l) layer(l);
    add("output_norm.weight", n.final_norm + ".weight", -1, Role2::kOther);
    if (store_.has(n.final_norm + ".bias")) add("output_norm.bias", n.final_norm + ".bias", -1, Role2::kOther);
    if (!tied) add("output.weight", n.head + ".weight", -1, Role2::kOutput);
    if (store_.has(n.head + ".bias")) add("output.bias", n.head + ".bias", -1, Role2::kOther);
    return std::move(out_);
  }

 private:
  void push(Planned p, Role2 role) {
    p.dtype = choose_type(mx_, spec_, p, role);
    out_.push_back(std::move(p));
  }
  void add(const std::string& gguf, const std::string& hf, int64_t layer, Role2 role,
           std::function<std::vector<float>(std::vector<float>)> transform = {}) {
    Planned p;
    p.name = gguf;
    p.shape = store_.shape(hf);
    p.layer = layer;
    WeightStore* s = &store_;
    p.read = [s, hf, transform] { return transform ? transform(s->read_f32(hf)) : s->read_f32(hf); };
    push(std::move(p), role);
  }
  // [E, rows, cols] from E per-expert matrices.
  void add_stacked(const std::string& gguf, const std::vector<std::string>& hf, int64_t layer, Role2 role) {
    Planned p;
    p.name = gguf;
    p.shape = store_.shape(hf[0]);
    p.shape.insert(p.shape.begin(), static_cast<int64_t>(hf.size()));
    p.layer = layer;
    WeightStore* s = &store_;
    p.read = [s, hf] {
      std::vector<float> all;
      for (const std::string& n : hf) {
        const std::vector<float> m = s->read_f32(n);
        all.insert(all.end(), m.begin(), m.end());
      }
      return all;
    };
    push(std::move(p), role);
  }
  // A tensor computed from the checkpoint (a fused layout split or transposed).
  void add_computed(const std::string& gguf, std::vector<int64_t> shape, int64_t layer, Role2 role,
                    std::function<std::vector<float>()> read) {
    Planned p;
    p.name = gguf;
    p.shape = std::move(shape);
    p.layer = layer;
    p.read = std::move(read);
    push(std::move(p), role);
  }
  void add_vector(const std::string& gguf, const std::vector<double>& v) {
    std::vector<float> f(v.begin(), v.end());
    add_computed(gguf, {static_cast<int64_t>(f.size())}, -1, Role2::kOther, [f] { return f; });
  }
  void layer(int64_t l);
  void routed_experts(int64_t l, const std::string& mlp);
  void fused_experts(int64_t l);
  void shared_expert(int64_t l);
  void gpt_oss_experts(int64_t l, const std::string& mlp);

  const ModelSpec& spec_;
  WeightStore& store_;
  Mixture mx_;
  std::vector<Planned> out_;
};

Role2 role_of(const std::string& gguf) {
  if (gguf == "attn_v.weight" || gguf == "attn_kv_b.weight") return Role2::kAttnV;
  if (gguf == "attn_k.weight") return Role2::kAttnK;
  if (gguf == "attn_output.weight") return Role2::kAttnOut;
  if (gguf == "ffn_down.weight") return Role2::kFfnDown;
  return Role2::kOther;
}

void Planner::layer(int64_t l) {
  const std::string hl = decoder_names(spec_).layer(l), bl = fmt::format("blk.{}.", l);
  const std::string attn = decoder_names(spec_).attn;
  for (const gguf_names::Rule& r : gguf_names::layer_rules(spec_)) {
    if (!store_.has(hl + r.hf)) continue;
    std::function<std::vector<float>(std::vector<float>)> tf;
    const std::vector<int64_t>& shape = store_.shape(hl + r.hf);
    const int64_t cols = shape.size() == 1 ? 1 : shape.back();  // a bias: one element per row
    const bool q = r.hf == attn + "q_proj.weight" || r.hf == attn + "q_proj.bias";
    const bool k = r.hf == attn + "k_proj.weight" || r.hf == attn + "k_proj.bias";
    if (gguf_names::permutes_qk(spec_) && (q || k)) {
      const int64_t heads = q ? spec_.n_head : spec_.n_head_kv;
      tf = [heads, cols](std::vector<float> w) { return permute_heads(w, heads, cols); };
    }
    add(bl + r.gguf, hl + r.hf, l, role_of(r.gguf), tf);
  }
  if (!spec_.layers[size_t(l)].is_moe) return;
  const std::string mlp = ffn_prefix(spec_, l);
  if (spec_.family == Family::kGptOss) return gpt_oss_experts(l, mlp);
  add(bl + "ffn_gate_inp.weight", gguf_names::router_name(spec_, l), l, Role2::kRouter);
  if (const std::string b = gguf_names::score_bias_name(spec_, l); store_.has(b)) {
    WeightStore* st = &store_;  // [E] (ERNIE's moe_statics holds [1, E])
    add_computed(bl + "exp_probs_b.bias", {spec_.n_expert}, l, Role2::kOther, [st, b] { return st->read_f32(b); });
  }
  const Family f = spec_.family;
  if (f == Family::kGraniteMoe || f == Family::kDbrx || f == Family::kLlama4) {
    fused_experts(l);
  } else {
    routed_experts(l, mlp);
  }
  if (spec_.n_ff_shared > 0) shared_expert(l);
}

void Planner::shared_expert(int64_t l) {
  const std::string bl = fmt::format("blk.{}.", l), sp = gguf_names::shared_prefix(spec_, l);
  const std::string mlp = ffn_prefix(spec_, l);
  if (spec_.family == Family::kGraniteMoe) {  // shared_mlp.input_linear [2Fs, D]: gate rows, then up rows
    const int64_t Fs = spec_.n_ff_shared, D = spec_.d_model;
    WeightStore* st = &store_;
    const std::string in = sp + "input_linear.weight";
    for (int64_t half = 0; half < 2; ++half) {
      add_computed(bl + (half == 0 ? "ffn_gate_shexp.weight" : "ffn_up_shexp.weight"), {Fs, D}, l, Role2::kOther,
                   [st, in, half, Fs, D] {
                     const std::vector<float> w = st->read_f32(in);
                     return std::vector<float>(w.begin() + half * Fs * D, w.begin() + (half + 1) * Fs * D);
                   });
    }
    add(bl + "ffn_down_shexp.weight", sp + "output_linear.weight", l, Role2::kFfnDown);
    return;
  }
  for (const char* w : {"gate", "up", "down"}) {
    add(bl + fmt::format("ffn_{}_shexp.weight", w), sp + w + "_proj.weight", l,
        std::string(w) == "down" ? Role2::kFfnDown : Role2::kOther);
  }
  if (spec_.shared_expert_gate) {  // Linear(D, 1) in HF, a [D] vector in GGUF
    WeightStore* st = &store_;
    const std::string hf = mlp + "shared_expert_gate.weight";
    add_computed(bl + "ffn_gate_inp_shexp.weight", {spec_.d_model}, l, Role2::kOther,
                 [st, hf] { return st->read_f32(hf); });
  }
}

// Granite's input_linear [E, 2F, D] / output_linear [E, D, F], DBRX's w1 / v1 / w2 [E*F, D] (w2 holds each
// expert's down projection transposed) and Llama 4's gate_up_proj [E, D, 2F] / down_proj [E, F, D] as
// GGUF's ffn_{gate,up}_exps [E, F, D] and ffn_down_exps [E, D, F].
void Planner::fused_experts(int64_t l) {
  const std::string bl = fmt::format("blk.{}.", l), p = ffn_prefix(spec_, l);
  const int64_t E = spec_.n_expert, D = spec_.d_model, F = spec_.n_ff_expert;
  const Family fam = spec_.family;
  WeightStore* st = &store_;
  // gate (0) / up (1) element (e, f, d) and down element (e, d, f) from the family's tensors
  std::string gu, up2, dn;
  if (fam == Family::kGraniteMoe) gu = p + "input_linear.weight", dn = p + "output_linear.weight";
  if (fam == Family::kDbrx) gu = p + "experts.mlp.w1", up2 = p + "experts.mlp.v1", dn = p + "experts.mlp.w2";
  if (fam == Family::kLlama4) gu = p + "experts.gate_up_proj", dn = p + "experts.down_proj";
  for (int64_t half = 0; half < 2; ++half) {
    add_computed(bl + (half == 0 ? "ffn_gate_exps.weight" : "ffn_up_exps.weight"), {E, F, D}, l, Role2::kExperts, [=] {
      const std::vector<float> src = st->read_f32(half == 1 && !up2.empty() ? up2 : gu);
      std::vector<float> out(static_cast<size_t>(E * F * D));
      for (int64_t e = 0; e < E; ++e)
        for (int64_t f = 0; f < F; ++f)
          for (int64_t d = 0; d < D; ++d) {
            float v;
            if (fam == Family::kGraniteMoe)
              v = src[size_t((e * 2 * F + half * F + f) * D + d)];
            else if (fam == Family::kDbrx)
              v = src[size_t((e * F + f) * D + d)];
            else
              v = src[size_t((e * D + d) * 2 * F + half * F + f)];
            out[size_t((e * F + f) * D + d)] = v;
          }
      return out;
    });
  }
  add_computed(bl + "ffn_down_exps.weight", {E, D, F}, l, mx_.mxfp4 ? Role2::kExperts : Role2::kFfnDown, [=] {
    const std::vector<float> src = st->read_f32(dn);
    if (fam == Family::kGraniteMoe) return src;              // already [E, D, F]
    std::vector<float> out(static_cast<size_t>(E * D * F));  // DBRX [E*F, D] and Llama 4 [E, F, D]: transpose
    for (int64_t e = 0; e < E; ++e)
      for (int64_t f = 0; f < F; ++f)
        for (int64_t d = 0; d < D; ++d) out[size_t((e * D + d) * F + f)] = src[size_t((e * F + f) * D + d)];
    return out;
  });
}

void Planner::routed_experts(int64_t l, const std::string& mlp) {
  const std::string bl = fmt::format("blk.{}.", l);
  for (const char* w : {"gate", "up", "down"}) {
    std::vector<std::string> names;
    for (int64_t e = 0; e < spec_.n_expert; ++e)
      names.push_back(fmt::format("{}experts.{}.{}.weight", mlp, e, gguf_names::expert_hf_name(spec_, w)));
    add_stacked(bl + fmt::format("ffn_{}_exps.weight", w), names, l,
                std::string(w) == "down" && !mx_.mxfp4 ? Role2::kFfnDown : Role2::kExperts);
  }
}

// gpt-oss's gate_up_proj [E, D, 2F] (gate even columns, up odd, used as x @ W) and down_proj [E, F, D]
// become GGUF's ffn_{gate,up}_exps [E, F, D] and ffn_down_exps [E, D, F], biases split likewise.
void Planner::gpt_oss_experts(int64_t l, const std::string& mlp) {
  const std::string bl = fmt::format("blk.{}.", l);
  add(bl + "ffn_gate_inp.weight", mlp + "router.weight", l, Role2::kRouter);
  add(bl + "ffn_gate_inp.bias", mlp + "router.bias", l, Role2::kOther);
  const int64_t E = spec_.n_expert, D = spec_.d_model, F = spec_.n_ff_expert;
  WeightStore* s = &store_;
  const std::string gu = mlp + "experts.gate_up_proj", dn = mlp + "experts.down_proj";
  for (int64_t half = 0; half < 2; ++half) {  // 0: gate, 1: up
    Planned w;
    w.name = bl + (half == 0 ? "ffn_gate_exps.weight" : "ffn_up_exps.weight");
    w.shape = {E, F, D};
    w.layer = l;
    w.read = [s, gu, E, D, F, half] {
      const std::vector<float> src = s->read_f32(gu);          // [E, D, 2F]
      std::vector<float> out(static_cast<size_t>(E * F * D));  // [E, F, D]
      for (int64_t e = 0; e < E; ++e)
        deinterleave_gate_up(src.data() + e * D * 2 * F, D, F, GateUpHalf(half), out.data() + e * F * D);
      return out;
    };
    push(std::move(w), Role2::kExperts);
    Planned b;
    b.name = bl + (half == 0 ? "ffn_gate_exps.bias" : "ffn_up_exps.bias");
    b.shape = {E, F};
    b.layer = l;
    const std::string gub = gu + "_bias";
    b.read = [s, gub, E, F, half] {
      const std::vector<float> src = s->read_f32(gub);     // [E, 2F]
      std::vector<float> out(static_cast<size_t>(E * F));  // [E, F]
      for (int64_t e = 0; e < E; ++e)
        deinterleave_gate_up_bias(src.data() + e * 2 * F, F, GateUpHalf(half), out.data() + e * F);
      return out;
    };
    b.dtype = DType::kF32;
    out_.push_back(std::move(b));
  }
  Planned w;
  w.name = bl + "ffn_down_exps.weight";
  w.shape = {E, D, F};
  w.layer = l;
  w.read = [s, dn, E, D, F] {
    const std::vector<float> src = s->read_f32(dn);          // [E, F, D]
    std::vector<float> out(static_cast<size_t>(E * D * F));  // [E, D, F]
    transpose_experts(src.data(), static_cast<int>(E), F, D, out.data());
    return out;
  };
  push(std::move(w), Role2::kExperts);
  add(bl + "ffn_down_exps.bias", dn + "_bias", l, Role2::kOther);
}

void set_u32(GgufWriter& w, const std::string& k, int64_t v) { w.set(k, GgufValue::u32(static_cast<uint32_t>(v))); }
void set_f32(GgufWriter& w, const std::string& k, double v) { w.set(k, GgufValue::f32(static_cast<float>(v))); }

// Layers before the first MoE layer (llama.cpp's leading_dense_block_count).
int64_t leading_dense(const ModelSpec& s) {
  return std::find_if(s.layers.begin(), s.layers.end(), [](auto& l) { return l.is_moe; }) - s.layers.begin();
}

// The DeepSeek MoE keys (deepseek2, glm4moe, dots1). Groups only when they limit anything: llama.cpp requires
// expert_group_used_count < expert_group_count once there is more than one group.
void write_deepseek_moe(GgufWriter& w, const ModelSpec& s, const std::string& a) {
  set_u32(w, a + "leading_dense_block_count", leading_dense(s));
  set_u32(w, a + "expert_shared_count", s.n_expert_shared);
  set_f32(w, a + "expert_weights_scale", s.router.routed_scaling_factor);
  w.set(a + "expert_weights_norm", GgufValue::boolean(s.router.norm_topk_prob));
  set_u32(w, a + "expert_gating_func", s.router.scoring == ScoringFunc::kSigmoid ? 2 : 1);
  if (s.router.n_group > 1 && s.router.topk_group < s.router.n_group) {
    set_u32(w, a + "expert_group_count", s.router.n_group);
    set_u32(w, a + "expert_group_used_count", s.router.topk_group);
  }
}

// ERNIE's MoE layers as llama.cpp places them: i >= leading_dense_block_count and (i + 1) % step == 0.
int64_t ernie_step(const ModelSpec& s) {
  const int64_t lead = leading_dense(s);
  for (int64_t step = 1; step <= s.n_layer; ++step) {
    bool same = true;
    for (int64_t i = 0; i < s.n_layer; ++i)
      same = same && s.layers[size_t(i)].is_moe == (i >= lead && (i + 1) % step == 0);
    if (same) return step;
  }
  fail("quantize",
       "{}: moe_layer_end_index: llama.cpp's ernie4_5-moe places MoE layers from the first one on, every "
       "interleave_moe_layer_step-th, up to the last layer; this model's do not follow that pattern",
       s.source);
}

// Llama 4 as llama.cpp runs it: 8192-token chunks, NoPE on every 4th layer, temperature tuning (floor 8192,
// scale 0.1), QK-norm unless 128 experts, MoE layers every interleave_moe_layer_step-th.
void check_llama4(const ModelSpec& s) {
  const auto bad = [&](const char* key, const std::string& what) {
    fail("quantize", "{}: {}: {}; llama.cpp's llama4 graph cannot express it", s.source, key, what);
  };
  if (s.attention_chunk_size != 8192)
    bad("attention_chunk_size", fmt::format("{} (llama.cpp: 8192)", s.attention_chunk_size));
  if (s.attn_temperature_floor != 8192 || std::fabs(s.attn_temperature_scale - 0.1) > 1e-9)
    bad("floor_scale / attn_scale",
        fmt::format("{} / {} (llama.cpp: 8192 / 0.1)", s.attn_temperature_floor, s.attn_temperature_scale));
  if ((s.qk_norm != QkNorm::kNone) != (s.n_expert != 128))
    bad("use_qk_norm", "llama.cpp uses QK-norm exactly when the model has not 128 experts");
  int64_t moe = 0;
  for (const LayerSpec& l : s.layers) moe += l.is_moe;
  const int64_t step = moe ? s.n_layer / moe : 0;
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const LayerSpec& l = s.layers[size_t(i)];
    if (l.use_rope != ((i + 1) % 4 != 0)) bad("no_rope_layers", fmt::format("layer {} differs from every 4th NoPE", i));
    if (step == 0 || l.is_moe != ((i + 1) % step == 0)) bad("moe_layers", "not every interleave_moe_layer_step-th");
  }
}

// The cos/sin multiplier of Phi-3.5-MoE's LongRoPE as one number (llama.cpp's attn_factor): the two of the
// config must agree (0: the HF formula from the context extension).
double longrope_mscale(const ModelSpec& s) {
  const auto eff = [&](double m) {
    if (m != 0.0) return m;
    const double scale = double(s.max_position) / double(s.rope.original_max_position);
    return scale <= 1.0 ? 1.0 : std::sqrt(1 + std::log(scale) / std::log(double(s.rope.original_max_position)));
  };
  const double sm = eff(s.rope.short_mscale), lm = eff(s.rope.long_mscale);
  if (std::fabs(sm - lm) > 1e-6 * std::max(1.0, std::fabs(lm)))
    fail("quantize", "{}: rope_scaling short_mscale {} and long_mscale {} differ; GGUF holds one attention factor",
         s.source, sm, lm);
  return lm;
}

void write_family_metadata(GgufWriter& w, const ModelSpec& s, const std::string& a) {
  const auto moe_layers = [&] {
    return std::count_if(s.layers.begin(), s.layers.end(), [](auto& l) { return l.is_moe; });
  };
  switch (s.family) {
    case Family::kGlm4Moe:
    case Family::kDots1:
      write_deepseek_moe(w, s, a);
      break;
    case Family::kErnie45Moe:
      set_u32(w, a + "interleave_moe_layer_step", ernie_step(s));
      set_u32(w, a + "leading_dense_block_count", leading_dense(s));
      set_u32(w, a + "expert_shared_count", s.n_expert_shared);
      if (s.n_ff_shared > 0) set_u32(w, a + "expert_shared_feed_forward_length", s.n_ff_shared);
      break;
    case Family::kGraniteMoe:
      set_f32(w, a + "attention.scale", s.multipliers.attention);
      set_f32(w, a + "embedding_scale", s.multipliers.embedding);
      set_f32(w, a + "residual_scale", s.multipliers.residual);
      set_f32(w, a + "logit_scale", s.multipliers.logits_divisor);
      if (s.n_ff_shared > 0) set_u32(w, a + "expert_shared_feed_forward_length", s.n_ff_shared);
      break;
    case Family::kPhiMoe:  // not a llama.cpp key (its graph routes with softmax top-2): moe's own, read back
      set_f32(w, a + "sparsemixer_jitter_eps", s.router.jitter_eps);
      break;
    case Family::kDbrx:
      set_f32(w, a + "attention.clamp_kqv", s.clip_qkv);
      set_f32(w, a + "attention.layer_norm_epsilon", s.norm_eps);
      break;
    case Family::kLlama4:
      set_u32(w, a + "interleave_moe_layer_step", s.n_layer / std::max<int64_t>(1, moe_layers()));
      if (s.attention_chunk_size == 0) set_u32(w, a + "attention.sliding_window", 0);  // no chunks, no NoPE
      break;
    default:
      break;
  }
}

void write_metadata(GgufWriter& w, const ModelSpec& s, const std::string& arch, const Mixture& mx) {
  const std::string a = arch + ".";
  w.set("general.architecture", GgufValue::str(arch));
  w.set("general.name", GgufValue::str(fs::path(s.source).parent_path().filename().string()));
  set_u32(w, "general.file_type", ftype_of(mx.type));
  set_u32(w, "general.quantization_version", 2);
  set_u32(w, a + "block_count", s.n_layer);
  if (s.max_position > 0) set_u32(w, a + "context_length", s.max_position);
  set_u32(w, a + "embedding_length", s.d_model);
  set_u32(w, a + "attention.head_count", s.n_head);
  set_u32(w, a + "attention.head_count_kv", s.n_head_kv);
  set_f32(w, a + "attention.layer_norm_rms_epsilon", s.norm_eps);
  set_f32(w, a + "rope.freq_base", s.rope.theta);
  set_u32(w, a + "vocab_size", s.vocab);
  if (s.n_expert > 0) {
    set_u32(w, a + "expert_count", s.n_expert);
    set_u32(w, a + "expert_used_count", s.n_expert_used);
  }
  const Family f = s.family;
  const bool ff_is_expert = f == Family::kMixtral || f == Family::kOlmoe || f == Family::kGraniteMoe ||
                            f == Family::kPhiMoe || f == Family::kDbrx;
  set_u32(w, a + "feed_forward_length", ff_is_expert ? s.n_ff_expert : s.n_ff);
  if (s.n_expert > 0) set_u32(w, a + "expert_feed_forward_length", s.n_ff_expert);
  if (s.rope.type == RopeType::kYarn) {
    w.set(a + "rope.scaling.type", GgufValue::str("yarn"));
    set_f32(w, a + "rope.scaling.factor", s.rope.factor);
    set_u32(w, a + "rope.scaling.original_context_length", s.rope.original_max_position);
    set_f32(w, a + "rope.scaling.yarn_beta_fast", s.rope.beta_fast);
    set_f32(w, a + "rope.scaling.yarn_beta_slow", s.rope.beta_slow);
  } else if (s.rope.type == RopeType::kLlama3 &&
             (f == Family::kLlama || f == Family::kMixtral || f == Family::kLlama4)) {
    // written as the rope_freqs tensor (the plan's llama3_freq_divisors)
  } else if (s.rope.type == RopeType::kLongrope && f == Family::kPhiMoe) {
    set_u32(w, a + "rope.scaling.original_context_length", s.rope.original_max_position);
    set_f32(w, a + "rope.scaling.attn_factor", longrope_mscale(s));
  } else if (s.rope.type != RopeType::kDefault && s.rope.type != RopeType::kNone) {
    fail("quantize", "{}: rope scaling of this model cannot be written to GGUF by moe yet", s.source);
  }
  if (s.is_mla) {
    const MlaSpec& m = s.mla;
    set_u32(w, a + "attention.q_lora_rank", m.q_lora_rank);
    set_u32(w, a + "attention.kv_lora_rank", m.kv_lora_rank);
    set_u32(w, a + "attention.key_length", m.qk_nope_head_dim + m.qk_rope_head_dim);
    set_u32(w, a + "attention.value_length", m.v_head_dim);
    set_u32(w, a + "rope.dimension_count", m.qk_rope_head_dim);
    write_deepseek_moe(w, s, a);
    if (s.rope.type == RopeType::kYarn) {
      // GGUF keeps only mscale_all_dim; readers (llama.cpp, moe) take mscale = mscale_all_dim when it is not 1.
      const double implied = s.rope.mscale_all_dim != 0.0 && s.rope.mscale_all_dim != 1.0 ? s.rope.mscale_all_dim : 1.0;
      if (std::fabs(s.rope.mscale - implied) > 1e-6) {
        fail("quantize",
             "{}: rope_scaling mscale {} with mscale_all_dim {} cannot be written to GGUF (readers "
             "assume mscale {})",
             s.source, s.rope.mscale, s.rope.mscale_all_dim, implied);
      }
      set_f32(w, a + "rope.scaling.yarn_log_multiplier", 0.1 * s.rope.mscale_all_dim);
    }
  } else {
    set_u32(w, a + "rope.dimension_count", std::llround(double(s.head_dim) * s.rope.partial_rotary_factor));
    set_u32(w, a + "attention.key_length", s.head_dim);
    set_u32(w, a + "attention.value_length", s.head_dim);
  }
  write_family_metadata(w, s, a);
  if (s.family == Family::kQwen2Moe && s.n_ff_shared > 0)
    set_u32(w, a + "expert_shared_feed_forward_length", s.n_ff_shared);
  if (s.family == Family::kGptOss) set_u32(w, a + "attention.sliding_window", s.sliding_window);
}

// The checkpoint's tokenizer (tokenizer.json and its configs) as llama.cpp's converter writes it; without
// one, llama.cpp's "none" model: a vocabulary of vocab_size ids, enough to evaluate ids.
void write_tokenizer(GgufWriter& w, const std::string& dir) {
  if (!fs::exists(fs::path(dir) / "tokenizer.json")) {
    w.set("tokenizer.ggml.model", GgufValue::str("none"));
    return;
  }
  for (auto& [key, value] : gguf_tokenizer_metadata(dir)) w.set(key, std::move(value));
}

void check_supported(const ModelSpec& s) {
  if (!gguf_names::gguf_architecture(s)) {
    fail("quantize",
         "{}: model_type {} cannot be written to GGUF by moe (supported: llama, mixtral, qwen2_moe, "
         "qwen3_moe, olmoe, deepseek_v2, deepseek_v3, gpt_oss, glm4_moe, dots1, ernie4_5_moe, granitemoe, "
         "granitemoeshared, phimoe, dbrx, llama4_text)",
         s.source, s.model_type);
  }
  const bool router_ok = s.family != Family::kQwen3Moe || s.router.norm_topk_prob;
  const bool router_ok2 = (s.family != Family::kQwen2Moe && s.family != Family::kOlmoe) || !s.router.norm_topk_prob;
  if (!router_ok || !router_ok2) {
    fail("quantize",
         "{}: norm_topk_prob = {} differs from what llama.cpp's {} graph does; the GGUF would not "
         "mean the same model",
         s.source, s.router.norm_topk_prob, gguf_names::gguf_architecture(s));
  }
  if (s.family == Family::kErnie45Moe && (s.mlp_bias || s.lm_head_bias))
    fail("quantize", "{}: use_bias: llama.cpp's ernie4_5-moe graph has no MLP or head biases", s.source);
  if (s.family == Family::kErnie45Moe) ernie_step(s);
  if (s.family == Family::kDbrx && !s.router.norm_topk_prob)
    fail("quantize", "{}: moe_normalize_expert_weights null: llama.cpp's dbrx graph always normalises", s.source);
  if (s.family == Family::kLlama4) check_llama4(s);
  if (s.family == Family::kDots1 && s.n_head_kv != s.n_head)
    fail("quantize", "{}: num_key_value_heads {}: llama.cpp's dots1 loader needs as many as num_attention_heads ({})",
         s.source, s.n_head_kv, s.n_head);
  for (const LayerSpec& l : s.layers) {
    if (s.family != Family::kGptOss && l.attention == AttentionKind::kSliding)
      fail("quantize", "{}: sliding-window attention of {} cannot be written to GGUF by moe yet", s.source,
           s.model_type);
  }
}

}  // namespace

const char* quantize_types() { return "Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K_M Q5_K_M Q6_K IQ4_XS MXFP4 BF16 F32"; }

QuantizeSummary quantize_to_gguf(const std::string& in, const std::string& out, const QuantizeOptions& o) {
  const Mixture mx = parse_mixture(o.type);
  const ModelSpec spec = load_model_spec(in);
  check_supported(spec);
  if (spec.quant.method == QuantMethod::kMxfp4) fail("quantize", "{}: MXFP4 checkpoints are not read yet", in);
  WeightStore store(in, spec);
  std::vector<Planned> plan = Planner(spec, store, mx).plan();
  GgufWriter w;
  write_metadata(w, spec, gguf_names::gguf_architecture(spec), mx);
  write_tokenizer(w, fs::is_directory(in) ? in : fs::path(in).parent_path().string());
  QuantizeSummary sum;
  for (const Planned& p : plan) {
    w.add_tensor(p.name, p.shape, p.dtype);
    const std::string tn(dtype_name(p.dtype));
    sum.tensors_by_type[tn] += 1;
    sum.params_by_type[tn] += p.numel();
    sum.tensors += 1;
    sum.params += p.numel();
  }
  w.write(
      out,
      [&](size_t i, std::vector<uint8_t>& bytes) {
        const Planned& p = plan[i];
        const std::vector<float> x = p.read();
        if (static_cast<int64_t>(x.size()) != p.numel()) fail("quantize", "{}: internal size mismatch", p.name);
        for (float v : x)
          if (!std::isfinite(v)) fail("quantize", "{}: tensor {} holds a NaN or infinite value", in, p.name);
        const int64_t cols = p.shape.back(), rows = p.numel() / cols, rb = dtype_row_bytes(p.dtype, cols);
        bytes.resize(static_cast<size_t>(rows * rb));
        thread_pool().parallel_for(rows, [&](int64_t r0, int64_t r1, int) {
          for (int64_t r = r0; r < r1; ++r) {
            if (dtype_is_block(p.dtype)) {
              quantize_row(p.dtype, x.data() + r * cols, bytes.data() + r * rb, cols);
            } else {
              convert_from_f32(p.dtype, x.data() + r * cols, bytes.data() + r * rb, static_cast<size_t>(cols));
            }
          }
        });
      },
      o.progress);
  sum.file_bytes = fs::file_size(out);
  return sum;
}

}  // namespace moe
