// DeepSeek-V4 attention: low-rank q with a weightless per-head RMSNorm, one shared K=V head, interleaved RoPE
// on the last qk_rope_head_dim dims, a sliding window plus compressed entries (CSA: overlapping windows of 4
// and the lightning indexer's top index_topk; HCA: non-overlapping windows, all entries), per-head sinks,
// the inverse rotation of the output, then the grouped low-rank output (wo_a per group, wo_b).
// Tokens of a forward first all enter the compressors (entries a token completes become visible to the
// queries at or after it), then every query attends; prefill and decode run this same code.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/deepseek_v4_layer.h"
#include "model/linear.h"
#include "model/norm.h"
#include "runtime/thread_pool.h"

namespace moe {
namespace dsv4 {

void linear(const float* x, const WeightView& w, float* y, int64_t T, int64_t out, int64_t in) {
  linear_forward(x, w, nullptr, y, LinearShape{T, out, in});
}

std::vector<double> rope_inv_freq(const ModelSpec& s, bool compressed) {
  const int64_t rd = s.mla.qk_rope_head_dim;
  const double base = compressed ? s.dsv4.compress_rope_theta : s.rope.theta;
  std::vector<double> f(static_cast<size_t>(rd / 2));
  for (int64_t i = 0; i < rd / 2; ++i)
    f[i] = 1.0 / std::pow(base, static_cast<double>(2 * i) / static_cast<double>(rd));
  const double orig = static_cast<double>(s.rope.original_max_position);
  if (!compressed || s.rope.type != RopeType::kYarn || orig <= 0) return f;
  // YaRN as the official model applies it: interpolate the slow frequencies by 1 / factor, keep the fast ones,
  // a linear ramp between the correction dims of beta_fast and beta_slow rotations.
  const auto corr = [&](double rot) {
    return static_cast<double>(rd) * std::log(orig / (rot * 2 * M_PI)) / (2 * std::log(base));
  };
  const double low = std::max(std::floor(corr(s.rope.beta_fast)), 0.0);
  double high = std::min(std::ceil(corr(s.rope.beta_slow)), static_cast<double>(rd - 1));
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < rd / 2; ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    f[i] = f[i] / s.rope.factor * ramp + f[i] * (1 - ramp);
  }
  return f;
}

void rope_row(float* row, int64_t dim, const std::vector<double>& inv_freq, int64_t pos, bool inverse) {
  const int64_t half = static_cast<int64_t>(inv_freq.size());
  float* r = row + dim - 2 * half;
  for (int64_t i = 0; i < half; ++i) {
    const double ang = static_cast<double>(pos) * inv_freq[i];
    const double c = std::cos(ang), sn = inverse ? -std::sin(ang) : std::sin(ang);
    const double a = r[2 * i], b = r[2 * i + 1];
    r[2 * i] = static_cast<float>(a * c - b * sn);
    r[2 * i + 1] = static_cast<float>(a * sn + b * c);
  }
}

}  // namespace dsv4

namespace {

// Appends token `pos`'s projected rows kv / score [cols] (score without ape) to a compressor; when the token
// closes window j = pos / ratio, emits entry j: per channel, the softmax over the window's scores (ratio 4:
// also the previous window's first-half channels) weights the kv rows; then norm and RoPE at j x ratio.
void compressor_push(Dsv4Cache::Compressor& st, const Dsv4CompressorWeights& w, const float* kv, const float* score,
                     int64_t pos, const std::vector<double>& inv_freq, float eps) {
  const int64_t r = st.ratio, cols = st.cols, width = st.width, slots = 2 * r;
  const int64_t slot = pos % slots;
  std::copy_n(kv, cols, st.kv.data() + slot * cols);
  for (int64_t c = 0; c < cols; ++c) st.score[slot * cols + c] = score[c] + w.ape[(pos % r) * cols + c];
  if ((pos + 1) % r != 0) return;
  const int64_t j = pos / r;
  const bool overlap = r == 4;
  std::vector<float> e(static_cast<size_t>(width));
  std::vector<double> lg, val;
  for (int64_t ch = 0; ch < width; ++ch) {
    lg.clear();
    val.clear();
    if (overlap && j > 0)
      for (int64_t i = 0; i < r; ++i) {
        const int64_t sl = ((j - 1) * r + i) % slots;
        lg.push_back(st.score[sl * cols + ch]);
        val.push_back(st.kv[sl * cols + ch]);
      }
    const int64_t off = overlap ? width : 0;
    for (int64_t i = 0; i < r; ++i) {
      const int64_t sl = (j * r + i) % slots;
      lg.push_back(st.score[sl * cols + off + ch]);
      val.push_back(st.kv[sl * cols + off + ch]);
    }
    const double mx = *std::max_element(lg.begin(), lg.end());
    double sum = 0, acc = 0;
    for (size_t i = 0; i < lg.size(); ++i) {
      const double p = std::exp(lg[i] - mx);
      sum += p;
      acc += p * val[i];
    }
    e[ch] = static_cast<float>(acc / sum);
  }
  rms_norm(e.data(), w.norm, e.data(), 1, width, eps);
  dsv4::rope_row(e.data(), width, inv_freq, j * r, false);
  st.entries.insert(st.entries.end(), e.begin(), e.end());
}

// Projects x [T, D] through a compressor and pushes the T tokens from position p0.
void compress_tokens(Dsv4Cache::Compressor& st, const Dsv4CompressorWeights& w, const float* x, int64_t T, int64_t D,
                     int64_t p0, const std::vector<double>& inv_freq, float eps) {
  std::vector<float> kv(static_cast<size_t>(T * w.cols)), sc(kv.size());  // [T, cols]
  dsv4::linear(x, w.wkv, kv.data(), T, w.cols, D);
  dsv4::linear(x, w.wgate, sc.data(), T, w.cols, D);
  for (int64_t t = 0; t < T; ++t)
    compressor_push(st, w, kv.data() + t * w.cols, sc.data() + t * w.cols, p0 + t, inv_freq, eps);
}

}  // namespace

// The attention's inputs for the queries of one forward: q [T, H, d], kv [T, d], the indexer's q [T, nh, hd] and
// weights [T, nh] (ratio 4), the cache with the window rows before p0 and every compressed entry.
struct DeepseekV4Model::QueryInputs {
  const Layer& layer;
  const Dsv4Cache::Layer& cache;
  const float *q, *kv, *index_q, *index_w;
  int64_t p0;
};

struct DeepseekV4Model::QueryScratch {
  std::vector<const float*> keys;
  std::vector<double> score, index_score;
  std::vector<int64_t> pick;
};

// The compressed entries query t attends (ratio > 0): those complete at its position; with the indexer (ratio 4)
// only the top index_topk of sum_h w_h relu(q_h . k_j) over the indexer's entries (ties: the lower entry).
void DeepseekV4Model::compressed_keys(const QueryInputs& in, int64_t t, QueryScratch& sc) const {
  const Layer& L = in.layer;
  const int64_t nh = spec_.dsv4.index_n_heads, hd = spec_.dsv4.index_head_dim, topk = spec_.dsv4.index_topk;
  const int64_t visible = (in.p0 + t + 1) / L.ratio;
  sc.pick.resize(static_cast<size_t>(visible));
  std::iota(sc.pick.begin(), sc.pick.end(), 0);
  if (L.ratio == 4 && visible > topk) {
    sc.index_score.assign(static_cast<size_t>(visible), 0.0);
    for (int64_t j = 0; j < visible; ++j) {
      const float* k = in.cache.index.entries.data() + j * hd;
      for (int64_t h = 0; h < nh; ++h) {
        const float* qh = in.index_q + (t * nh + h) * hd;
        double dot = 0;
        for (int64_t i = 0; i < hd; ++i) dot += static_cast<double>(qh[i]) * k[i];
        sc.index_score[j] += in.index_w[t * nh + h] * std::max(dot, 0.0);
      }
    }
    const std::vector<double>& is = sc.index_score;
    std::partial_sort(sc.pick.begin(), sc.pick.begin() + topk, sc.pick.end(),
                      [&](int64_t a, int64_t b) { return is[a] > is[b] || (is[a] == is[b] && a < b); });
    sc.pick.resize(static_cast<size_t>(topk));
  }
  for (int64_t j : sc.pick) sc.keys.push_back(in.cache.attn.entries.data() + j * spec_.head_dim);
}

// Query t's output o [H, d]: softmax over its keys (the window, then the compressed entries) with the head's
// sink as one more logit of value zero; the values are the keys; the rope dims rotated back to the query's position.
void DeepseekV4Model::attend_query(const QueryInputs& in, int64_t t, QueryScratch& sc, float* o) const {
  const Layer& L = in.layer;
  const int64_t H = spec_.n_head, d = spec_.head_dim, win = spec_.sliding_window, pos = in.p0 + t;
  sc.keys.clear();
  for (int64_t p = std::max<int64_t>(0, pos - win + 1); p <= pos; ++p)
    sc.keys.push_back(p >= in.p0 ? in.kv + (p - in.p0) * d : in.cache.window.data() + (p % win) * d);
  if (L.ratio > 0) compressed_keys(in, t, sc);
  const int64_t nk = static_cast<int64_t>(sc.keys.size());
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  sc.score.resize(static_cast<size_t>(nk));
  for (int64_t h = 0; h < H; ++h) {
    const float* qh = in.q + (t * H + h) * d;
    double mx = L.sink[h];
    for (int64_t k = 0; k < nk; ++k) {
      double dot = 0;
      for (int64_t i = 0; i < d; ++i) dot += static_cast<double>(qh[i]) * sc.keys[k][i];
      sc.score[k] = dot * scale;
      mx = std::max(mx, sc.score[k]);
    }
    double sum = std::exp(L.sink[h] - mx);
    for (int64_t k = 0; k < nk; ++k) sum += (sc.score[k] = std::exp(sc.score[k] - mx));
    float* oh = o + h * d;
    for (int64_t i = 0; i < d; ++i) {
      double acc = 0;
      for (int64_t k = 0; k < nk; ++k) acc += sc.score[k] * sc.keys[k][i];
      oh[i] = static_cast<float>(acc / sum);
    }
    dsv4::rope_row(oh, d, L.inv_freq, pos, true);
  }
}

void DeepseekV4Model::attention(Layer& L, int64_t li, const float* x, int64_t T, Dsv4Cache::Layer& cache, int64_t p0,
                                float* out) {
  (void)li;
  const ModelSpec& s = spec_;
  const int64_t D = s.d_model, H = s.n_head, d = s.head_dim, rq = s.mla.q_lora_rank, win = s.sliding_window;
  const int64_t nh = s.dsv4.index_n_heads, hd = s.dsv4.index_head_dim;
  const float eps = static_cast<float>(s.norm_eps);
  std::vector<float> qr(static_cast<size_t>(T * rq)), q(static_cast<size_t>(T * H * d)), kv(static_cast<size_t>(T * d));
  dsv4::linear(x, L.wq_a, qr.data(), T, rq, D);  // [T, rq]
  rms_norm(qr.data(), L.q_norm, qr.data(), T, rq, eps);
  dsv4::linear(qr.data(), L.wq_b, q.data(), T, H * d, rq);  // [T, H, d]
  rms_norm(q.data(), nullptr, q.data(), T * H, d, eps);
  dsv4::linear(x, L.wkv, kv.data(), T, d, D);  // [T, d]
  rms_norm(kv.data(), L.kv_norm, kv.data(), T, d, eps);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < H; ++h) dsv4::rope_row(q.data() + (t * H + h) * d, d, L.inv_freq, p0 + t, false);
    dsv4::rope_row(kv.data() + t * d, d, L.inv_freq, p0 + t, false);
  }
  if (L.ratio > 0) compress_tokens(cache.attn, L.comp, x, T, D, p0, L.inv_freq, eps);
  std::vector<float> iq, iw;
  if (L.ratio == 4) {
    compress_tokens(cache.index, L.index_comp, x, T, D, p0, L.inv_freq, eps);
    iq.resize(static_cast<size_t>(T * nh * hd));  // [T, nh, hd]
    iw.resize(static_cast<size_t>(T * nh));       // [T, nh]
    dsv4::linear(qr.data(), L.index_wq_b, iq.data(), T, nh * hd, rq);
    dsv4::linear(x, L.index_weights, iw.data(), T, nh, D);
    const float w_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd * nh)));
    for (float& v : iw) v *= w_scale;
    for (int64_t t = 0; t < T * nh; ++t) dsv4::rope_row(iq.data() + t * hd, hd, L.inv_freq, p0 + t / nh, false);
  }
  std::vector<float> o(static_cast<size_t>(T * H * d));  // [T, H, d]
  const QueryInputs in{L, cache, q.data(), kv.data(), iq.data(), iw.data(), p0};
  thread_pool().parallel_for(T, [&](int64_t begin, int64_t end, int) {
    QueryScratch scratch;
    for (int64_t t = begin; t < end; ++t) attend_query(in, t, scratch, o.data() + t * H * d);
  });
  for (int64_t t = std::max<int64_t>(0, T - win); t < T; ++t)
    std::copy_n(kv.data() + t * d, d, cache.window.data() + ((p0 + t) % win) * d);
  // Grouped low-rank output: group g's H d / G outputs through its o_lora_rank rows of wo_a, then wo_b.
  const int64_t G = s.dsv4.o_groups, ro = s.dsv4.o_lora_rank, gw = H * d / G;
  std::vector<float> og(static_cast<size_t>(T * gw)), low(static_cast<size_t>(T * G * ro)),
      part(static_cast<size_t>(T * ro));
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t t = 0; t < T; ++t) std::copy_n(o.data() + t * H * d + g * gw, gw, og.data() + t * gw);
    dsv4::linear(og.data(), L.wo_a[g], part.data(), T, ro, gw);  // [T, ro]
    for (int64_t t = 0; t < T; ++t) std::copy_n(part.data() + t * ro, ro, low.data() + t * G * ro + g * ro);
  }
  dsv4::linear(low.data(), L.wo_b, out, T, D, G * ro);
}

}  // namespace moe
