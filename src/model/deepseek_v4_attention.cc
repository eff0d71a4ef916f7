// DeepSeek-V4 attention: low-rank q with a weightless per-head RMSNorm, one shared K=V head, interleaved RoPE
// on the last qk_rope_head_dim dims, a sliding window plus compressed entries (CSA: overlapping windows of 4
// and the lightning indexer's top index_topk; HCA: non-overlapping windows, all entries), per-head sinks,
// the inverse rotation of the output, then the grouped low-rank output (wo_a per group, wo_b).
// Tokens of a forward first all enter the compressors (entries a token completes become visible to the
// queries at or after it), then every query attends; prefill and decode run this same code.
#include <algorithm>
#include <cmath>
#include <functional>

#include "kernels/attention_pv.h"
#include "kernels/half_rows.h"
#include "kernels/vmath.h"
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

void rope_rows(float* rows, int64_t n, int64_t stride, int64_t dim, const std::vector<double>& inv_freq, int64_t pos,
               bool inverse) {
  const int64_t half = static_cast<int64_t>(inv_freq.size());
  thread_local std::vector<double> cs;  // [half, 2]: cos, sin
  cs.resize(static_cast<size_t>(2 * half));
  for (int64_t i = 0; i < half; ++i) {
    const double ang = static_cast<double>(pos) * inv_freq[i];
    cs[2 * i] = std::cos(ang);
    cs[2 * i + 1] = inverse ? -std::sin(ang) : std::sin(ang);
  }
  for (int64_t k = 0; k < n; ++k) {
    float* r = rows + k * stride + dim - 2 * half;
    for (int64_t i = 0; i < half; ++i) {
      const double c = cs[2 * i], sn = cs[2 * i + 1], a = r[2 * i], b = r[2 * i + 1];
      r[2 * i] = static_cast<float>(a * c - b * sn);
      r[2 * i + 1] = static_cast<float>(a * sn + b * c);
    }
  }
}

void rope_row(float* row, int64_t dim, const std::vector<double>& inv_freq, int64_t pos, bool inverse) {
  rope_rows(row, 1, dim, dim, inv_freq, pos, inverse);
}

// The k highest of score [n] (ties: the lower entry), ascending: the k-th highest value by a selection over the
// values themselves (no indirection; over long rows only among the values above a bar drawn from a sample), then
// one pass that keeps what is above it and, of what equals it, the lowest entries. The same entries as a sort by
// (score descending, entry ascending).
void top_entries(const float* score, int64_t n, int64_t k, std::vector<float>& values, std::vector<int32_t>& out) {
  values.clear();
  if (n > 16 * k) {  // a threshold from a strided sample keeps about 2k candidates; too few: select over all
    constexpr int64_t m = 1024;
    for (int64_t i = 0; i < m; ++i) values.push_back(score[i * n / m]);
    const int64_t r = std::max<int64_t>(1, 2 * k * m / n);
    std::nth_element(values.begin(), values.begin() + (r - 1), values.end(), std::greater<float>());
    const float bar = values[r - 1];
    values.clear();
    for (int64_t j = 0; j < n; ++j)
      if (score[j] >= bar) values.push_back(score[j]);
    if (static_cast<int64_t>(values.size()) < k) values.clear();
  }
  if (values.empty()) values.assign(score, score + n);
  // Every score above the k-th highest is a candidate (there are at least k candidates, all >= bar).
  std::nth_element(values.begin(), values.begin() + (k - 1), values.end(), std::greater<float>());
  const float kth = values[k - 1];
  int64_t ties = k;
  for (int64_t j = 0; j < n; ++j) ties -= score[j] > kth;
  out.clear();
  for (int64_t j = 0; j < n; ++j)
    if (score[j] > kth || (score[j] == kth && ties-- > 0)) out.push_back(static_cast<int32_t>(j));
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
  st.entries.push(e.data());
}

// x [n] rounded to the 16-bit type t in place: the K=V rows of a forward as the cache will hold them, so that
// a query sees the same keys whether they came in its own forward or an earlier one.
void round_rows(DType t, float* x, int64_t n) {
  std::vector<uint16_t> h(static_cast<size_t>(n));
  narrow_half(t, x, h.data(), n);
  widen_half(t, h.data(), x, n);
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

// The attention's inputs for the queries of one forward: q [T, H, d], kv [T, d] (already rounded to the cache's
// type), the indexer's q [T, nh, hd] and weights [T, nh] (ratio 4), the cache with the window rows before p0
// and every compressed entry.
struct DeepseekV4Model::QueryInputs {
  const Layer& layer;
  const Dsv4Cache::Layer& cache;
  const float *q, *kv, *index_q, *index_w;
  int64_t p0;
};

namespace {

constexpr int64_t kHeadBlock = 16;         // query heads of one attention work item
constexpr int64_t kIndexBlock = 512;       // indexer entries of one scoring work item
constexpr int64_t kIndexRows = 512;        // indexer query rows (queries x index heads) of one scoring work item
constexpr int64_t kIndexScores = 1 << 25;  // indexer scores held at once (128 MiB): queries go in groups

// A thread's buffers, kept between work items and forwards.
struct Dsv4Scratch {
  std::vector<float> keys, scores, widened;
};
Dsv4Scratch& scratch() {
  thread_local Dsv4Scratch s;
  return s;
}

// Entries query p0 + t sees at compression ratio r: those complete at its position.
int64_t visible_entries(int64_t p0, int64_t t, int64_t r) { return (p0 + t + 1) / r; }

}  // namespace

// The compressed entries a query t of a CSA layer (ratio 4) attends when it sees more than index_topk: the top
// index_topk of sum_h w_h relu(q_h . k_j) over the indexer's entries, ascending (ties: the lower entry); picks[t]
// stays empty for the other queries, which attend every visible entry. The scores are items of (kIndexRows / index_n_heads queries, block of kIndexBlock entries) on the
// thread pool: one matmul of those queries' heads against the block's keys, widened once. A group of queries at a
// time, so that at most kIndexScores scores are held.
void DeepseekV4Model::index_picks(const QueryInputs& in, int64_t T, std::vector<std::vector<int32_t>>& picks) const {
  const Layer& L = in.layer;
  const int64_t nh = spec_.dsv4.index_n_heads, hd = spec_.dsv4.index_head_dim, topk = spec_.dsv4.index_topk;
  picks.assign(static_cast<size_t>(T), {});
  if (L.ratio != 4) return;
  const int64_t tq = std::max<int64_t>(1, kIndexRows / nh);  // queries of one scoring item
  const auto vis = [&](int64_t t) { return visible_entries(in.p0, t, 4); };
  std::vector<float> score;
  std::vector<int64_t> first, item_query, item_block;  // per query of a group: offset of its scores
  for (int64_t g0 = 0; g0 < T;) {
    first.assign(1, 0);
    int64_t g1 = g0;
    for (; g1 < T && (g1 == g0 || first.back() + vis(g1) <= kIndexScores); ++g1)
      first.push_back(first.back() + (vis(g1) > topk ? vis(g1) : 0));
    // Items: tq queries (rows of A: their nh heads each) x kIndexBlock entries, each block of keys widened once.
    item_query.clear();
    item_block.clear();
    int64_t s0 = g0;
    while (s0 < g1 && vis(s0) <= topk) ++s0;  // visible counts grow with t: the scored queries are a suffix
    for (int64_t q0 = s0; q0 < g1; q0 += tq)
      for (int64_t b = 0; b * kIndexBlock < vis(std::min(q0 + tq, g1) - 1); ++b) {
        item_query.push_back(q0);
        item_block.push_back(b);
      }
    score.resize(static_cast<size_t>(first.back()));
    thread_pool().parallel_for_dynamic(static_cast<int64_t>(item_query.size()), 1, [&](int64_t i0, int64_t i1, int) {
      Dsv4Scratch& sc = scratch();
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t q0 = item_query[i], q1 = std::min(q0 + tq, g1), j0 = item_block[i] * kIndexBlock;
        const int64_t nb = std::min(kIndexBlock, vis(q1 - 1) - j0), rows = (q1 - q0) * nh;
        const float* k = in.cache.index.entries.f32_rows(j0, nb, sc.widened);
        sc.scores.resize(static_cast<size_t>(rows * nb));  // [q1 - q0, nh, nb]
        matmul_nt(in.index_q + q0 * nh * hd, hd, WeightView{k, DType::kF32, hd}, sc.scores.data(), nb,
                  MatmulShape{rows, nb, hd}, false);
        for (int64_t t = q0; t < q1; ++t) {
          const int64_t n = std::min(nb, vis(t) - j0);
          float* out = score.data() + first[t - g0] + j0;
          for (int64_t j = 0; j < n; ++j) out[j] = 0;
          for (int64_t h = 0; h < nh; ++h) {
            const float w = in.index_w[t * nh + h], *sr = sc.scores.data() + ((t - q0) * nh + h) * nb;
            for (int64_t j = 0; j < n; ++j) out[j] += w * std::max(sr[j], 0.0f);
          }
        }
      }
    });
    thread_pool().parallel_for(g1 - g0, [&](int64_t b, int64_t e, int) {
      std::vector<float> values;
      for (int64_t t = g0 + b; t < g0 + e; ++t)
        if (vis(t) > topk) dsv4::top_entries(score.data() + first[t - g0], vis(t), topk, values, picks[t]);
    });
    g0 = g1;
  }
}

// Heads [h0, h0 + hn) of query t, o [hn, d]: softmax over its keys (the window, then its compressed entries)
// with the head's sink as one more logit of value zero; the values are the keys; the rope dims rotated back to
// the query's position. The keys are gathered as f32 rows, the scores and the value sum run on the matmul kernels.
void DeepseekV4Model::attend(const QueryInputs& in, int64_t t, int64_t h0, int64_t hn,
                             const std::vector<int32_t>& picks, float* o) const {
  const Layer& L = in.layer;
  const int64_t H = spec_.n_head, d = spec_.head_dim, win = spec_.sliding_window, pos = in.p0 + t;
  const int64_t w0 = std::max<int64_t>(0, pos - win + 1), nw = pos - w0 + 1;
  // Every visible compressed entry (HCA; CSA up to index_topk), or the indexer's picks.
  const int64_t visible = L.ratio > 0 ? visible_entries(in.p0, t, L.ratio) : 0;
  const bool all = picks.empty();
  const int64_t np = all ? visible : static_cast<int64_t>(picks.size()), nk = nw + np;
  Dsv4Scratch& sc = scratch();
  sc.keys.resize(static_cast<size_t>(nk * d));  // [nk, d]
  for (int64_t p = w0; p <= pos; ++p) {
    float* row = sc.keys.data() + (p - w0) * d;
    if (p >= in.p0)
      std::copy_n(in.kv + (p - in.p0) * d, d, row);
    else
      in.cache.window.widen_row(p % win, row);
  }
  if (all)
    in.cache.attn.entries.widen_rows(0, np, sc.keys.data() + nw * d);
  else
    for (int64_t j = 0; j < np; ++j) in.cache.attn.entries.widen_row(picks[j], sc.keys.data() + (nw + j) * d);
  sc.scores.resize(static_cast<size_t>(hn * nk));  // [hn, nk]
  const WeightView keys{sc.keys.data(), DType::kF32, d};
  matmul_nt(in.q + (t * H + h0) * d, d, keys, sc.scores.data(), nk, MatmulShape{hn, nk, d}, false);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  for (int64_t h = 0; h < hn; ++h) softmax_f32(sc.scores.data() + h * nk, nk, scale, L.sink + h0 + h);
  attention_pv(sc.scores.data(), sc.keys.data(), o, PvShape{hn, nk, d, nk, d, d});
  dsv4::rope_rows(o, hn, d, d, L.inv_freq, pos, true);
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
    dsv4::rope_rows(q.data() + t * H * d, H, d, d, L.inv_freq, p0 + t, false);
    dsv4::rope_row(kv.data() + t * d, d, L.inv_freq, p0 + t, false);
  }
  if (cache.window.dtype() != DType::kF32) round_rows(cache.window.dtype(), kv.data(), T * d);  // as cached
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
    for (int64_t t = 0; t < T; ++t) dsv4::rope_rows(iq.data() + t * nh * hd, nh, hd, hd, L.inv_freq, p0 + t, false);
  }
  std::vector<float> o(static_cast<size_t>(T * H * d));  // [T, H, d]
  const QueryInputs in{L, cache, q.data(), kv.data(), iq.data(), iw.data(), p0};
  std::vector<std::vector<int32_t>> picks;
  index_picks(in, T, picks);
  const int64_t blocks = (H + kHeadBlock - 1) / kHeadBlock;
  thread_pool().parallel_for_dynamic(T * blocks, 1, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / blocks, h0 = i % blocks * kHeadBlock, hn = std::min(kHeadBlock, H - h0);
      attend(in, t, h0, hn, picks[t], o.data() + (t * H + h0) * d);
    }
  });
  for (int64_t t = std::max<int64_t>(0, T - win); t < T; ++t) cache.window.set((p0 + t) % win, kv.data() + t * d);
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
