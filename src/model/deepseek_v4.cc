// DeepSeek-V4 model: loading (either checkpoint layout, checked against the TensorRegistry), the
// hyper-connection mixers, the MoE block and the head. The attention lives in deepseek_v4_attention.cc.
#include "model/deepseek_v4.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "io/safetensors.h"
#include "kernels/half_rows.h"
#include "kernels/quant_blocks.h"
#include "model/deepseek_v4_layer.h"
#include "model/norm.h"
#include "moe/layer_config.h"
#include "moe/telemetry.h"
#include "spec/deepseek_v4_names.h"
#include "util/dtype.h"
#include "util/error.h"

namespace moe {
namespace {

ModelSpec load_spec(const std::string& path) {
  ModelSpec s = load_model_spec(path);
  if (s.family != Family::kDeepseekV4) fail("model", "{}: model_type {} is not deepseek_v4", path, s.model_type);
  if (s.quant.method != QuantMethod::kNone && s.quant.method != QuantMethod::kFp8)
    fail("model", "{}: quantization_config.quant_method {}: DeepSeek-V4 reads fp8 (E4M3, 128x128 block scales) only",
         path, quant_method_name(s.quant.method));
  if (s.n_expert_shared != 1)
    fail("model", "{}: n_shared_experts {}: DeepSeek-V4 has exactly one shared expert", path, s.n_expert_shared);
  if (s.mla.qk_rope_head_dim <= 0 || s.mla.qk_rope_head_dim % 2 != 0 || s.mla.qk_rope_head_dim > s.head_dim ||
      s.mla.qk_rope_head_dim > s.dsv4.index_head_dim)
    fail("model", "{}: qk_rope_head_dim {} must be even, positive and at most head_dim {} and index_head_dim {}", path,
         s.mla.qk_rope_head_dim, s.head_dim, s.dsv4.index_head_dim);
  const Checkpoint ck = Checkpoint::open(path, true);
  s.dsv4.hf_layout = ck.has("model.embed_tokens.weight");  // the transformers layout
  if (dsv4_hf_layout(s) && (s.quant.method != QuantMethod::kNone || s.quant.experts_fp4))
    fail("model", "{}: FP8 / FP4 weights are read in the official layout (layers.N.*.scale) only", path);
  for (int64_t li = 0; li < s.n_layer && li < s.dsv4.num_hash_layers; ++li) {
    const std::string t = dsv4_hf_layout(s) ? fmt::format("model.layers.{}.mlp.gate.tid2eid", li)
                                            : fmt::format("layers.{}.ffn.gate.tid2eid", li);
    if (ck.has(t) && ck.info(t).dtype != DType::kI64 && ck.info(t).dtype != DType::kI32)
      fail("model", "{}: {} is stored as {}, expected I64 or I32 expert ids", path, t, dtype_name(ck.info(t).dtype));
  }
  return s;
}

float sigmoid(double x) { return static_cast<float>(1.0 / (1.0 + std::exp(-x))); }

}  // namespace

DeepseekV4Model::~DeepseekV4Model() = default;

DeepseekV4Model::DeepseekV4Model(const std::string& path, Dsv4Options options)
    : spec_(load_spec(path)), path_(path), options_(options) {
  store_ = std::make_unique<WeightStore>(path, spec_);
  embed_ = f32("embed.weight");
  head_ = matrix("head.weight");
  final_norm_ = f32("norm.weight");
  hc_head_ = Mixer{matrix("hc_head_fn"), f32("hc_head_base"), f32("hc_head_scale")};
  for (int64_t li = 0; li < spec_.n_layer; ++li) load_layer(li);
}

std::string DeepseekV4Model::name(const std::string& official) const {
  return dsv4_hf_layout(spec_) ? dsv4_hf_name(official) : official;
}
WeightView DeepseekV4Model::matrix(const std::string& official) { return store_->matrix(name(official)); }
const float* DeepseekV4Model::f32(const std::string& official) { return store_->f32(name(official)); }

// Layer li's routed experts: fused gate_up_proj / down_proj rows (transformers), per-expert FP4 (official,
// expert_dtype fp4) or per-expert f32 / bf16 matrices.
void DeepseekV4Model::load_experts(Layer& L, int64_t li) {
  const ModelSpec& s = spec_;
  const int64_t E = s.n_expert, I = s.n_ff_expert, D = s.d_model;
  const std::string f = fmt::format("layers.{}.ffn.", li);
  for (int64_t e = 0; e < E; ++e) {
    if (dsv4_hf_layout(s)) {
      const std::string x = fmt::format("model.layers.{}.mlp.experts.", li);
      L.w1.push_back(store_->rows(x + "gate_up_proj", e * 2 * I, I));
      L.w3.push_back(store_->rows(x + "gate_up_proj", e * 2 * I + I, I));
      L.w2.push_back(store_->rows(x + "down_proj", e * D, D));
    } else if (s.quant.experts_fp4) {
      const std::string x = fmt::format("{}experts.{}.", f, e);
      L.w1.push_back(fp4_matrix(x + "w1", I, D));
      L.w2.push_back(fp4_matrix(x + "w2", D, I));
      L.w3.push_back(fp4_matrix(x + "w3", I, D));
    } else {
      const std::string x = fmt::format("{}experts.{}.", f, e);
      L.w1.push_back(store_->matrix(x + "w1.weight"));
      L.w2.push_back(store_->matrix(x + "w2.weight"));
      L.w3.push_back(store_->matrix(x + "w3.weight"));
    }
  }
}

void DeepseekV4Model::load_layer(int64_t li) {
  const ModelSpec& s = spec_;
  auto layer = std::make_unique<Layer>();
  Layer& L = *layer;
  const std::string p = fmt::format("layers.{}.", li), a = p + "attn.", f = p + "ffn.";
  L.ratio = s.layers[li].compress_ratio;
  L.hash = s.layers[li].hash_routed;
  L.attn_norm = f32(p + "attn_norm.weight");
  L.ffn_norm = f32(p + "ffn_norm.weight");
  L.hc_attn = Mixer{matrix(p + "hc_attn_fn"), f32(p + "hc_attn_base"), f32(p + "hc_attn_scale")};
  L.hc_ffn = Mixer{matrix(p + "hc_ffn_fn"), f32(p + "hc_ffn_base"), f32(p + "hc_ffn_scale")};
  L.sink = f32(a + "attn_sink");
  L.wq_a = matrix(a + "wq_a.weight");
  L.q_norm = f32(a + "q_norm.weight");
  L.wq_b = matrix(a + "wq_b.weight");
  L.wkv = matrix(a + "wkv.weight");
  L.kv_norm = f32(a + "kv_norm.weight");
  const int64_t G = s.dsv4.o_groups, ro = s.dsv4.o_lora_rank;
  for (int64_t g = 0; g < G; ++g) L.wo_a.push_back(store_->rows(name(a + "wo_a.weight"), g * ro, ro));
  L.wo_b = matrix(a + "wo_b.weight");
  const auto compressor = [&](const std::string& c, int64_t ratio, int64_t width) {
    const int64_t cols = (ratio == 4 ? 2 : 1) * width;
    return Dsv4CompressorWeights{ratio,
                                 width,
                                 cols,
                                 matrix(c + "wkv.weight"),
                                 matrix(c + "wgate.weight"),
                                 f32(c + "ape"),
                                 f32(c + "norm.weight")};
  };
  if (L.ratio > 0) L.comp = compressor(a + "compressor.", L.ratio, s.head_dim);
  if (L.ratio == 4) {
    L.index_comp = compressor(a + "indexer.compressor.", 4, s.dsv4.index_head_dim);
    L.index_wq_b = matrix(a + "indexer.wq_b.weight");
    L.index_weights = matrix(a + "indexer.weights_proj.weight");
  }
  L.inv_freq = dsv4::rope_inv_freq(s, L.ratio > 0);
  L.gate = matrix(f + "gate.weight");
  const int64_t E = s.n_expert, K = s.n_expert_used;
  if (L.hash) {
    const std::string t = name(f + "gate.tid2eid");
    const bool i64 = Checkpoint::open(path_, true).info(t).dtype == DType::kI64;  // else I32 (load_spec checked)
    const uint8_t* raw = store_->raw_bytes(t);
    L.tid2eid.resize(static_cast<size_t>(s.vocab * K));
    for (size_t i = 0; i < L.tid2eid.size(); ++i) {
      int64_t id = 0;
      if (i64) {
        std::memcpy(&id, raw + i * 8, 8);
      } else {
        int32_t v = 0;
        std::memcpy(&v, raw + i * 4, 4);
        id = v;
      }
      if (id < 0 || id >= E)
        fail("model", "{}: {} row {} holds expert {}, expected 0..{}", s.source, t, static_cast<int64_t>(i) / K, id,
             E - 1);
      L.tid2eid[i] = static_cast<int32_t>(id);
    }
  } else {
    L.gate_bias = f32(f + "gate.bias");
  }
  load_experts(L, li);
  L.s1 = matrix(f + "shared_experts.w1.weight");
  L.s2 = matrix(f + "shared_experts.w2.weight");
  L.s3 = matrix(f + "shared_experts.w3.weight");
  L.block = make_moe_block(L);
  layers_.push_back(std::move(layer));
}

// The layer's MoE as the engine's MoeLayer: moe_layer_config's router (sqrt-softplus scores, top-k of score +
// selection bias, renormalized and scaled) and clamped SwiGLU, the routed experts (w1 gate, w3 up, w2 down)
// and the one shared expert. A hash layer routes by the ids it is given (its tid2eid rows): no bias.
std::unique_ptr<MoeLayer> DeepseekV4Model::make_moe_block(const Layer& L) const {
  MoeLayerConfig c = moe_layer_config(spec_);
  if (L.hash) c.router.use_correction_bias = false;
  MoeLayerWeights w;
  w.router = RouterWeights{L.gate, nullptr, L.gate_bias};
  const auto experts = [&](int64_t n, const WeightView* gate, const WeightView* up, const WeightView* down) {
    ExpertWeights x;
    x.d_model = spec_.d_model;
    x.d_ff = spec_.n_ff_expert;
    for (int64_t e = 0; e < n; ++e) x.experts.push_back(ExpertMatrices{gate[e], up[e], down[e]});
    return x;
  };
  w.experts = experts(spec_.n_expert, L.w1.data(), L.w3.data(), L.w2.data());
  w.shared = experts(1, &L.s1, &L.s3, &L.s2);
  return std::make_unique<MoeLayer>(c, w);
}

// A routed expert stored as FP4: `.weight` I8 [rows, cols / 2] (element 2i in byte i's low nibble, E2M1 codes)
// and `.scale` E8M0 [rows, cols / 32]: the same codes and scales as MXFP4 blocks (the scale byte, then element j
// in the low nibble of byte j and j + 16 in the high one), kept in the kernels' panels when they have them.
WeightView DeepseekV4Model::fp4_matrix(const std::string& base, int64_t rows, int64_t cols) {
  const uint8_t* codes = store_->raw_bytes(base + ".weight");
  const uint8_t* scales = store_->raw_bytes(base + ".scale");
  const int64_t nb = cols / 32, row_bytes = dtype_row_bytes(DType::kMXFP4, cols);
  std::vector<uint8_t> out(static_cast<size_t>(rows * row_bytes));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* src = codes + r * (cols / 2) + b * 16;
      uint8_t* dst = out.data() + r * row_bytes + b * 17;
      dst[0] = scales[r * nb + b];
      const auto nibble = [src](int i) { return (src[i / 2] >> (4 * (i & 1))) & 15; };
      for (int j = 0; j < 16; ++j) dst[1 + j] = static_cast<uint8_t>(nibble(j) | (nibble(j + 16) << 4));
    }
  store_->release(WeightView{codes, DType::kI8, cols / 2}, rows);  // the file's pages: resident once
  if (options_.fp4_as_f32) {
    std::vector<float>& f = store_->own(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
      dequantize_row(DType::kMXFP4, out.data() + r * row_bytes, f.data() + r * cols, cols);
    return WeightView{f.data(), DType::kF32, cols};
  }
  return store_->keep_matrix(out.data(), DType::kMXFP4, rows, cols);
}

void Dsv4Rows::resize(int64_t rows) {
  rows_ = rows;
  if (dtype_ == DType::kF32)
    f32_.resize(static_cast<size_t>(rows * width_), 0.0f);
  else
    half_.resize(static_cast<size_t>(rows * width_), 0);
}

void Dsv4Rows::set(int64_t i, const float* row) {
  if (dtype_ == DType::kF32)
    std::copy_n(row, width_, f32_.data() + i * width_);
  else
    narrow_half(dtype_, row, half_.data() + i * width_, width_);
}

void Dsv4Rows::push(const float* row) {
  resize(rows_ + 1);
  set(rows_ - 1, row);
}

const float* Dsv4Rows::f32_rows(int64_t i0, int64_t n, std::vector<float>& scratch) const {
  if (dtype_ == DType::kF32) return f32_.data() + i0 * width_;
  if (scratch.size() < static_cast<size_t>(n * width_)) scratch.resize(static_cast<size_t>(n * width_));
  widen_half(dtype_, half_.data() + i0 * width_, scratch.data(), n * width_);
  return scratch.data();
}

void Dsv4Rows::widen_row(int64_t i, float* dst) const { widen_rows(i, 1, dst); }

void Dsv4Rows::widen_rows(int64_t i0, int64_t n, float* dst) const {
  if (dtype_ == DType::kF32)
    std::copy_n(f32_.data() + i0 * width_, n * width_, dst);
  else
    widen_half(dtype_, half_.data() + i0 * width_, dst, n * width_);
}

Dsv4Cache DeepseekV4Model::make_cache(DType kv_type) const {
  if (kv_type != DType::kF32 && !is_half_float(kv_type))
    fail("model", "{}: a DeepSeek-V4 cache keeps its K=V rows as f32, f16 or bf16, not {}", spec_.source,
         dtype_name(kv_type));
  Dsv4Cache c;
  c.kv_type_ = kv_type;
  c.layers_.resize(static_cast<size_t>(spec_.n_layer));
  for (int64_t li = 0; li < spec_.n_layer; ++li) {
    const Layer& L = *layers_[li];
    Dsv4Cache::Layer& cl = c.layers_[li];
    cl.window = Dsv4Rows(kv_type, spec_.head_dim);
    cl.window.resize(spec_.sliding_window);
    const auto init = [kv_type](Dsv4Cache::Compressor& st, const Dsv4CompressorWeights& w) {
      st.ratio = w.ratio;
      st.width = w.width;
      st.cols = w.cols;
      st.kv.assign(static_cast<size_t>(2 * w.ratio * w.cols), 0.0f);
      st.score.assign(st.kv.size(), 0.0f);
      st.entries = Dsv4Rows(kv_type, w.width);
    };
    if (L.ratio > 0) init(cl.attn, L.comp);
    if (L.ratio == 4) init(cl.index, L.index_comp);
  }
  return c;
}

uint64_t Dsv4Cache::kv_bytes() const {
  uint64_t bytes = 0;
  for (const Layer& l : layers_) {
    const int64_t held = std::min(length_, l.window.rows());
    bytes += static_cast<uint64_t>(held * l.window.width()) * dtype_size(kv_type_) + l.attn.entries.bytes() +
             l.index.entries.bytes();
  }
  return bytes;
}

uint64_t Dsv4Cache::pending_bytes() const {
  uint64_t floats = 0;
  for (const Layer& l : layers_)
    floats += l.attn.kv.size() + l.attn.score.size() + l.index.kv.size() + l.index.score.size();
  return floats * sizeof(float);
}

void DeepseekV4Model::hc_pre(const Mixer& mix, const float* X, int64_t T, float* y, float* post, float* comb) const {
  const int64_t n = spec_.dsv4.hc_mult, D = spec_.d_model, m = (2 + n) * n;
  const double eps = spec_.dsv4.hc_eps;
  std::vector<float> mixes(static_cast<size_t>(T * m));  // [T, m]
  dsv4::linear(X, mix.fn, mixes.data(), T, m, n * D);
  std::vector<double> c(static_cast<size_t>(n * n));
  for (int64_t t = 0; t < T; ++t) {
    const float* x = X + t * n * D;
    double ss = 0;
    for (int64_t i = 0; i < n * D; ++i) ss += static_cast<double>(x[i]) * x[i];
    const double rs = 1.0 / std::sqrt(ss / static_cast<double>(n * D) + spec_.norm_eps);
    const float* mx = mixes.data() + t * m;
    std::vector<double> pre(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      pre[i] = sigmoid(mx[i] * rs * mix.scale[0] + mix.base[i]) + eps;
      post[t * n + i] = 2.0f * sigmoid(mx[n + i] * rs * mix.scale[1] + mix.base[n + i]);
    }
    for (int64_t i = 0; i < n; ++i) {  // row softmax of the comb logits, then Sinkhorn
      double mxv = -INFINITY, sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        c[i * n + j] = mx[2 * n + i * n + j] * rs * mix.scale[2] + mix.base[2 * n + i * n + j];
        mxv = std::max(mxv, c[i * n + j]);
      }
      for (int64_t j = 0; j < n; ++j) sum += (c[i * n + j] = std::exp(c[i * n + j] - mxv));
      for (int64_t j = 0; j < n; ++j) c[i * n + j] = c[i * n + j] / sum + eps;
    }
    const auto normalize_columns = [&] {
      for (int64_t j = 0; j < n; ++j) {
        double sum = 0;
        for (int64_t i = 0; i < n; ++i) sum += c[i * n + j];
        for (int64_t i = 0; i < n; ++i) c[i * n + j] /= sum + eps;
      }
    };
    normalize_columns();
    for (int64_t it = 1; it < spec_.dsv4.hc_sinkhorn_iters; ++it) {
      for (int64_t i = 0; i < n; ++i) {
        double sum = 0;
        for (int64_t j = 0; j < n; ++j) sum += c[i * n + j];
        for (int64_t j = 0; j < n; ++j) c[i * n + j] /= sum + eps;
      }
      normalize_columns();
    }
    for (int64_t k = 0; k < n * n; ++k) comb[t * n * n + k] = static_cast<float>(c[k]);
    float* yt = y + t * D;
    for (int64_t d = 0; d < D; ++d) {
      double acc = 0;
      for (int64_t i = 0; i < n; ++i) acc += pre[i] * x[i * D + d];
      yt[d] = static_cast<float>(acc);
    }
  }
}

namespace {

// X'_j = post_j f + sum_i comb[i, j] X_i, in place over X [T, n, D].
void hc_post(float* X, const float* f, const float* post, const float* comb, int64_t T, int64_t n, int64_t D) {
  std::vector<float> old(static_cast<size_t>(n * D));
  for (int64_t t = 0; t < T; ++t) {
    float* x = X + t * n * D;
    std::copy(x, x + n * D, old.begin());
    for (int64_t j = 0; j < n; ++j)
      for (int64_t d = 0; d < D; ++d) {
        double acc = static_cast<double>(post[t * n + j]) * f[t * D + d];
        for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(comb[t * n * n + i * n + j]) * old[i * D + d];
        x[j * D + d] = static_cast<float>(acc);
      }
  }
}

}  // namespace

// The MoE of a layer through its MoeLayer (hash layers: the tokens' tid2eid rows as the given choices,
// weighted by their router scores); stats get the routing and the call's telemetry.
void DeepseekV4Model::moe(Layer& L, const float* x, const int32_t* ids, int64_t T, float* out, ForwardStats* stats,
                          int64_t li) {
  const int64_t K = spec_.n_expert_used;
  RunOptions o;
  if (L.hash) {
    L.ids.resize(static_cast<size_t>(T * K));
    for (int64_t t = 0; t < T; ++t) std::copy_n(L.tid2eid.data() + static_cast<int64_t>(ids[t]) * K, K, &L.ids[t * K]);
    o.expert_ids = L.ids.data();
  }
  L.block->forward(x, T, out, o, stats ? &stats->moe_layers[li] : nullptr);
  if (!stats) return;
  const RouterOutput& r = L.block->last_router_output();
  stats->expert_ids[li].assign(r.expert_ids.begin(), r.expert_ids.begin() + T * K);
  stats->expert_weights[li].assign(r.weights.begin(), r.weights.begin() + T * K);
}

void DeepseekV4Model::forward(const int32_t* ids, int64_t T, Dsv4Cache& cache, float* logits, const ForwardTap& tap,
                              ForwardStats* stats, bool last_only) {
  const ModelSpec& s = spec_;
  const int64_t D = s.d_model, n = s.dsv4.hc_mult, V = s.vocab;
  if (T <= 0) fail("model", "{}: forward needs at least one token", s.source);
  if (cache.layers_.size() != static_cast<size_t>(s.n_layer))
    fail("model", "{}: the cache was not made by this model (make_cache)", s.source);
  for (int64_t t = 0; t < T; ++t)
    if (ids[t] < 0 || ids[t] >= V)
      fail("model", "{}: token id {} is outside the vocabulary [0, {})", s.source, ids[t], V);
  std::vector<float> X(static_cast<size_t>(T * n * D));  // [T, n, D]
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(embed_ + static_cast<int64_t>(ids[t]) * D, D, X.data() + (t * n + i) * D);
  if (tap) tap(kModelTensor, tap::kEmbed, TapView{X.data(), T, n * D});
  std::vector<float> y(static_cast<size_t>(T * D)), f(y.size()), post(static_cast<size_t>(T * n)),
      comb(static_cast<size_t>(T * n * n));
  const float eps = static_cast<float>(s.norm_eps);
  if (stats) {
    stats->moe_layers.assign(static_cast<size_t>(s.n_layer), MoeTelemetry{});
    stats->expert_ids.assign(static_cast<size_t>(s.n_layer), {});
    stats->expert_weights.assign(static_cast<size_t>(s.n_layer), {});
  }
  for (int64_t li = 0; li < s.n_layer; ++li) {
    Layer& L = *layers_[li];
    hc_pre(L.hc_attn, X.data(), T, y.data(), post.data(), comb.data());
    rms_norm(y.data(), L.attn_norm, y.data(), T, D, eps);
    attention(L, li, y.data(), T, cache.layers_[li], cache.length_, f.data());
    hc_post(X.data(), f.data(), post.data(), comb.data(), T, n, D);
    hc_pre(L.hc_ffn, X.data(), T, y.data(), post.data(), comb.data());
    rms_norm(y.data(), L.ffn_norm, y.data(), T, D, eps);
    moe(L, y.data(), ids, T, f.data(), stats, li);
    hc_post(X.data(), f.data(), post.data(), comb.data(), T, n, D);
    if (tap) tap(li, tap::kHidden, TapView{X.data(), T, n * D});
  }
  // The head's collapse: pre = sigmoid(mixes x scale + base) + hc_eps, no post / comb.
  std::vector<float> mixes(static_cast<size_t>(T * n));  // [T, n]
  dsv4::linear(X.data(), hc_head_.fn, mixes.data(), T, n, n * D);
  for (int64_t t = 0; t < T; ++t) {
    const float* x = X.data() + t * n * D;
    double ss = 0;
    for (int64_t i = 0; i < n * D; ++i) ss += static_cast<double>(x[i]) * x[i];
    const double rs = 1.0 / std::sqrt(ss / static_cast<double>(n * D) + s.norm_eps);
    for (int64_t d = 0; d < D; ++d) y[t * D + d] = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double pre = sigmoid(mixes[t * n + i] * rs * hc_head_.scale[0] + hc_head_.base[i]) + s.dsv4.hc_eps;
      for (int64_t d = 0; d < D; ++d) y[t * D + d] += static_cast<float>(pre * x[i * D + d]);
    }
  }
  rms_norm(y.data(), final_norm_, y.data(), T, D, eps);
  if (tap) tap(kModelTensor, tap::kFinalNorm, TapView{y.data(), T, D});
  const int64_t first = last_only ? T - 1 : 0;
  dsv4::linear(y.data() + first * D, head_, logits, T - first, V, D);
  cache.length_ += T;
}

}  // namespace moe
