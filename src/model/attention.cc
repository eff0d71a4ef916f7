// Attention over a KV cache (see attention.h). Work items are (kv head, block of query tokens,
// chunk of the heads reading that kv head): the item's query rows times its visible keys go
// through the NT matmul kernels (scores = Q . K^T), then a max-subtracted softmax per row (with
// the sink logit when present) and out = P . V. Decode rows over 16-bit keys in tiles (the decoder's
// cache on AVX-512) go through the cache once instead, a chunk of positions at a time with the softmax
// kept online (decode_chunks). The reference twin loops in double.
#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention_kv16.h"
#include "kernels/attention_pv.h"
#include "kernels/half_rows.h"
#include "kernels/matmul.h"
#include "kernels/packed_weights.h"
#include "kernels/vmath.h"
#include "runtime/aligned.h"
#include "runtime/thread_pool.h"
#include "util/check.h"

namespace moe {
namespace {

void check_shapes(const AttentionTensors& t, const AttentionShape& s) {
  MOE_CHECK(s.n_head > 0 && s.n_kv_head > 0 && s.n_head % s.n_kv_head == 0);
  MOE_CHECK(s.qk_dim > 0 && s.v_dim > 0);
  MOE_CHECK(t.n_tokens >= 0 && t.n_keys >= t.n_tokens);
  MOE_CHECK(t.q && t.k && t.v && t.out);
  MOE_CHECK(t.kv_type == DType::kF32 || is_half_float(t.kv_type));
  MOE_CHECK(!t.k_tiled || is_half_float(t.kv_type));
}

// The element `elems` elements past base, in the cache's type.
const void* kv_at(const void* base, DType t, int64_t elems) {
  return static_cast<const uint8_t*>(base) + elems * (t == DType::kF32 ? 4 : 2);
}

float kv_elem(const void* base, DType t, int64_t i) {
  if (t == DType::kF32) return static_cast<const float*>(base)[i];
  const uint16_t h = static_cast<const uint16_t*>(base)[i];
  return t == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
}

// rows 16-bit rows of w elements, ld apart, widened into dst [rows, w].
void widen_rows(DType t, const void* base, int64_t ld, int64_t rows, int64_t w, float* dst) {
  const auto* src = static_cast<const uint16_t*>(base);
  if (ld == w) return widen_half(t, src, dst, rows * w);
  for (int64_t j = 0; j < rows; ++j) widen_half(t, src + j * ld, dst + j * w, w);
}

// Visible key range [first, last] of query position qpos.
void key_range(int64_t qpos, const AttentionOptions& o, int64_t* first, int64_t* last) {
  *last = qpos;
  *first = o.sliding_window > 0 ? std::max<int64_t>(0, qpos - o.sliding_window + 1) : 0;
  if (o.chunk > 0) *first = std::max(*first, qpos - qpos % o.chunk);  // the start of qpos's chunk
}

int64_t key_stride(const AttentionTensors& t, const AttentionShape& s) {
  return t.k_stride ? t.k_stride : s.n_kv_head * s.qk_dim;
}
int64_t value_stride(const AttentionTensors& t, const AttentionShape& s) {
  return t.v_stride ? t.v_stride : s.n_kv_head * s.v_dim;
}
int64_t key_head_stride(const AttentionTensors& t, const AttentionShape& s) {
  return t.k_head_stride ? t.k_head_stride : s.qk_dim;
}
int64_t value_head_stride(const AttentionTensors& t, const AttentionShape& s) {
  return t.v_head_stride ? t.v_head_stride : s.v_dim;
}

// One item: query tokens [i0, i1) and heads [h0, h1) of kv head kvh.
struct Item {
  int64_t kvh, i0, i1, h0, h1;
};

struct Scratch {
  std::vector<float> a, p, vt, o, w, t;  // w: a span of 16-bit keys or values widened; t: scores of a key span
  std::vector<float> mx, sum;            // chunked decode: each row's running maximum and denominator
  AlignedBuffer<float> panels;           // a span of tiled keys widened: f32 panels (64-byte aligned)
};

// 16-bit keys and values are widened this many positions at a time (128 KB of f32 at D 128: the span
// stays in L2 while the kernels read it, so memory sees only the 16-bit bytes).
constexpr int64_t kWidenSpan = 256;

// Rows with at least this many queries multiply P . V as a GEMM over transposed values;
// fewer rows go through attention_pv (value rows read in place: no transpose to pay for).
constexpr int64_t kGemmRows = 16;

// sc.p [m, n] = the query rows sc.a [m, k] times the n key rows at k0 (ks elements apart); v0, vs: the value
// rows the item reads next (16-bit decode: prefetched as the keys are read).
void item_scores(const AttentionTensors& t, MatmulShape sh, const void* k0, int64_t ks, Scratch& sc, const void* v0,
                 int64_t vs) {
  if (t.kv_type == DType::kF32) {
    matmul_nt(sc.a.data(), sh.k, WeightView{k0, DType::kF32, ks}, sc.p.data(), sh.n, sh, false);
    return;
  }
  if (sh.m < kGemmRows && attention_kv16_native()) {  // decode: the 16-bit rows read in place
    attention_qk16(sc.a.data(), sh.k, static_cast<const uint16_t*>(k0), ks, t.kv_type, sc.p.data(), sh.n, sh.m, sh.n,
                   sh.k, static_cast<const uint16_t*>(v0), vs);
    return;
  }
  sc.w.resize(static_cast<size_t>(kWidenSpan * sh.k));
  for (int64_t j0 = 0; j0 < sh.n; j0 += kWidenSpan) {
    const int64_t cn = std::min(kWidenSpan, sh.n - j0);
    widen_rows(t.kv_type, kv_at(k0, t.kv_type, j0 * ks), ks, cn, sh.k, sc.w.data());
    matmul_nt(sc.a.data(), sh.k, WeightView{sc.w.data(), DType::kF32, sh.k}, sc.p.data() + j0, sh.n,
              MatmulShape{sh.m, cn, sh.k}, false);
  }
}

// item_scores over keys in tiles from position `first` (kt: the head's first tile). Decode goes through
// attention_qk16_tiled; more rows widen spans of whole tiles to f32, which is the panel layout the GEMM kernels
// read in place, into sc.t, and copy the item's columns (the first span may start before `first`).
void tiled_scores(const AttentionTensors& t, MatmulShape sh, const uint16_t* kt, int64_t first, Scratch& sc,
                  const void* v0, int64_t vs) {
  const int64_t m = sh.m, n = sh.n, d = sh.k;
  if (m < kGemmRows) {
    attention_qk16_tiled(sc.a.data(), d, kt, first, t.kv_type, sc.p.data(), n, m, n, d,
                         static_cast<const uint16_t*>(v0), vs);
    return;
  }
  static_assert(kWidenSpan % kKeyTile == 0);
  if (sc.panels.size() < static_cast<size_t>(kWidenSpan * d))
    sc.panels = AlignedBuffer<float>(static_cast<size_t>(kWidenSpan * d), kUninitialized);
  sc.t.resize(static_cast<size_t>(m * kWidenSpan));
  for (int64_t a = first / kKeyTile * kKeyTile; a < first + n; a += kWidenSpan) {
    const int64_t cn = std::min(kWidenSpan, first + n - a), b = std::max<int64_t>(0, first - a);
    widen_half(t.kv_type, kt + a * d, sc.panels.data(), (cn + kKeyTile - 1) / kKeyTile * kKeyTile * d);
    matmul_nt(sc.a.data(), d, panel_view(DType::kF32, d, sc.panels.data()), sc.t.data(), cn, MatmulShape{m, cn, d},
              false);
    for (int64_t r = 0; r < m; ++r)
      std::copy(sc.t.data() + r * cn + b, sc.t.data() + r * cn + cn, sc.p.data() + r * n + a + b - first);
  }
}

// sc.o [m, Dv] = the probabilities sc.p [m, n] times the n value rows at v0 (vs elements apart); sh = {m, Dv, n}.
void item_values(const AttentionTensors& t, MatmulShape sh, const void* v0, int64_t vs, Scratch& sc) {
  const int64_t m = sh.m, Dv = sh.n, n = sh.k;
  const bool f32 = t.kv_type == DType::kF32;
  if (m >= kGemmRows) {                         // a GEMM over the values transposed
    sc.vt.resize(static_cast<size_t>(Dv * n));  // [Dv, n]
    if (!f32) sc.w.resize(static_cast<size_t>(kWidenSpan * Dv));
    for (int64_t j0 = 0; j0 < n; j0 += kWidenSpan) {
      const int64_t cn = std::min(kWidenSpan, n - j0);
      const float* rows = f32 ? static_cast<const float*>(kv_at(v0, t.kv_type, j0 * vs)) : sc.w.data();
      const int64_t ld = f32 ? vs : Dv;
      if (!f32) widen_rows(t.kv_type, kv_at(v0, t.kv_type, j0 * vs), vs, cn, Dv, sc.w.data());
      for (int64_t j = 0; j < cn; ++j)
        for (int64_t d = 0; d < Dv; ++d) sc.vt[d * n + j0 + j] = rows[j * ld + d];
    }
    matmul_nt(sc.p.data(), n, WeightView{sc.vt.data(), DType::kF32, n}, sc.o.data(), Dv, sh, false);
  } else if (f32) {  // few rows (decode): the value rows in place, each read once per 4 query rows
    attention_pv(sc.p.data(), static_cast<const float*>(v0), sc.o.data(), PvShape{m, n, Dv, n, vs, Dv});
  } else if (attention_kv16_native()) {  // few rows, 16-bit values read in place
    attention_pv16(sc.p.data(), static_cast<const uint16_t*>(v0), t.kv_type, sc.o.data(), PvShape{m, n, Dv, n, vs, Dv});
  } else {  // few rows, 16-bit values: a span at a time widened, its products added
    sc.w.resize(static_cast<size_t>(kWidenSpan * Dv));
    for (int64_t j0 = 0; j0 < n; j0 += kWidenSpan) {
      const int64_t cn = std::min(kWidenSpan, n - j0);
      widen_rows(t.kv_type, kv_at(v0, t.kv_type, j0 * vs), vs, cn, Dv, sc.w.data());
      attention_pv(sc.p.data() + j0, sc.w.data(), sc.o.data(), PvShape{m, cn, Dv, n, Dv, Dv, j0 > 0});
    }
  }
}

// Decode over tiled keys a chunk of kDecodeChunk positions at a time (one pass, the softmax online): a chunk's
// scores, their exponentials against each row's running maximum (the row's earlier denominator and output
// rescaled when the maximum grows), then the chunk's values added to the output. The chunk's value rows are
// prefetched into L2 as its keys are scored and used right after; scoring all keys first (two passes) had
// them evicted again at long contexts (a 4096-position head's keys and values, 2 MB, fill a core's L2).
constexpr int64_t kDecodeChunk = 256;
static_assert(kDecodeChunk % kKeyTile == 0);

// The chunk's visible scores p[b, e) to exp(scale p - m) against the row's new maximum m (of the scaled
// scores; scale > 0), the row's output and denominator rescaled when m grows; the rest of p zeroed.
void online_softmax_row(float* p, int64_t n, int64_t b, int64_t e, float scale, float* mx, float* sum, float* o,
                        int64_t dv) {
  std::fill(p, p + b, 0.0f);
  std::fill(p + e, p + n, 0.0f);
  if (b >= e) return;
  const float m = std::max(*mx, max_f32(p + b, e - b) * scale);
  for (int64_t j = b; j < e; ++j) p[j] = p[j] * scale - m;
  exp_f32(p + b, p + b, e - b);
  if (m > *mx) {  // exp(-inf) = 0 on the first visible chunk, whose output and sum are still zero
    const float f = std::exp(*mx - m);
    for (int64_t d = 0; d < dv; ++d) o[d] *= f;
    *sum *= f;
    *mx = m;
  }
  *sum += sum_f32(p + b, e - b);
}

// sc.o [m, Dv] for the item's rows (query rows in sc.a), keys [first, last] tiled at kt, values from v0.
void decode_chunks(const AttentionTensors& t, const AttentionShape& s, const AttentionOptions& o, const Item& it,
                   const uint16_t* kt, const void* v0, int64_t first, int64_t last, Scratch& sc) {
  const int64_t nh = it.h1 - it.h0, m = (it.i1 - it.i0) * nh, Dq = s.qk_dim, Dv = s.v_dim;
  const int64_t past = t.n_keys - t.n_tokens, vs = value_stride(t, s);
  sc.mx.assign(static_cast<size_t>(m), -std::numeric_limits<float>::infinity());
  sc.sum.assign(static_cast<size_t>(m), 0.0f);
  std::fill(sc.o.begin(), sc.o.end(), 0.0f);
  sc.p.resize(static_cast<size_t>(m * kDecodeChunk));
  const auto* v16 = static_cast<const uint16_t*>(v0);
  for (int64_t c0 = first; c0 <= last;) {
    const int64_t c1 = std::min(last + 1, (c0 / kDecodeChunk + 1) * kDecodeChunk), cn = c1 - c0;  // [c0, c1)
    const uint16_t* v = v16 + (c0 - first) * vs;
    attention_qk16_tiled(sc.a.data(), Dq, kt, c0, t.kv_type, sc.p.data(), cn, m, cn, Dq,
                         s.v_dim == s.qk_dim ? v : nullptr, vs);
    for (int64_t r = 0; r < m; ++r) {
      int64_t lo = 0, hi = 0;
      key_range(past + it.i0 + r / nh, o, &lo, &hi);
      online_softmax_row(sc.p.data() + r * cn, cn, std::clamp<int64_t>(lo - c0, 0, cn),
                         std::clamp<int64_t>(hi + 1 - c0, 0, cn), o.scale, &sc.mx[size_t(r)], &sc.sum[size_t(r)],
                         sc.o.data() + r * Dv, Dv);
    }
    attention_pv16(sc.p.data(), v, t.kv_type, sc.o.data(), PvShape{m, cn, Dv, cn, vs, Dv, true});
    c0 = c1;
  }
  for (int64_t r = 0; r < m; ++r) {
    float* out = sc.o.data() + r * Dv;
    if (o.sinks) {  // one more logit (already scaled) in the denominator
      const float sink = o.sinks[it.h0 + r % nh], m_new = std::max(sc.mx[size_t(r)], sink);
      const float f = std::exp(sc.mx[size_t(r)] - m_new);
      for (int64_t d = 0; d < Dv; ++d) out[d] *= f;
      sc.sum[size_t(r)] = sc.sum[size_t(r)] * f + std::exp(sink - m_new);
    }
    const float inv = 1.0f / sc.sum[size_t(r)];
    for (int64_t d = 0; d < Dv; ++d) out[d] *= inv;
  }
}

// The item's output rows sc.o [m, Dv] to their tokens and heads in t.out.
void copy_out(const AttentionTensors& t, const AttentionShape& s, const Item& it, const Scratch& sc) {
  const int64_t nh = it.h1 - it.h0, m = (it.i1 - it.i0) * nh, Dv = s.v_dim;
  for (int64_t r = 0; r < m; ++r) {
    const float* src = sc.o.data() + r * Dv;
    std::copy(src, src + Dv, t.out + ((it.i0 + r / nh) * s.n_head + it.h0 + r % nh) * Dv);
  }
}

void run_item(const AttentionTensors& t, const AttentionShape& s, const AttentionOptions& o, const Item& it,
              Scratch& sc) {
  const int64_t nh = it.h1 - it.h0, m = (it.i1 - it.i0) * nh, Dq = s.qk_dim, Dv = s.v_dim;
  const int64_t past = t.n_keys - t.n_tokens, ks = key_stride(t, s), vs = value_stride(t, s);
  int64_t first = 0, last = 0, unused = 0;
  key_range(past + it.i0, o, &first, &unused);
  key_range(past + it.i1 - 1, o, &unused, &last);
  const int64_t n = last - first + 1;
  sc.a.resize(static_cast<size_t>(m * Dq));  // [m, Dq] query rows, row r = (token i0 + r / nh, head h0 + r % nh)
  sc.o.resize(static_cast<size_t>(m * Dv));  // [m, Dv]
  for (int64_t r = 0; r < m; ++r) {
    const float* q = t.q + ((it.i0 + r / nh) * s.n_head + it.h0 + r % nh) * Dq;
    std::copy(q, q + Dq, sc.a.data() + r * Dq);
  }
  const void* v0 = kv_at(t.v, t.kv_type, first * vs + it.kvh * value_head_stride(t, s));
  if (t.k_tiled && m < kGemmRows && attention_kv16_native()) {
    decode_chunks(t, s, o, it, static_cast<const uint16_t*>(t.k) + it.kvh * key_head_stride(t, s), v0, first, last, sc);
    copy_out(t, s, it, sc);
    return;
  }
  sc.p.resize(static_cast<size_t>(m * n));                // [m, n] scores, then probabilities
  const void* hint = s.v_dim == s.qk_dim ? v0 : nullptr;  // value rows to prefetch as the keys are read
  if (t.k_tiled)
    tiled_scores(t, MatmulShape{m, n, Dq}, static_cast<const uint16_t*>(t.k) + it.kvh * key_head_stride(t, s), first,
                 sc, hint, vs);
  else
    item_scores(t, MatmulShape{m, n, Dq}, kv_at(t.k, t.kv_type, first * ks + it.kvh * key_head_stride(t, s)), ks, sc,
                hint, vs);
  for (int64_t r = 0; r < m; ++r) {
    int64_t lo = 0, hi = 0;
    key_range(past + it.i0 + r / nh, o, &lo, &hi);
    float* p = sc.p.data() + r * n;
    const int64_t b = lo - first, e = hi - first + 1;  // visible columns [b, e)
    const float* sink = o.sinks ? o.sinks + it.h0 + r % nh : nullptr;
    softmax_f32(p + b, e - b, o.scale, sink);  // vectorized exp (kernels/vmath.h)
    std::fill(p, p + b, 0.0f);
    std::fill(p + e, p + n, 0.0f);
  }
  item_values(t, MatmulShape{m, Dv, n}, v0, vs, sc);
  copy_out(t, s, it, sc);
}

// Items of about 64 query rows; heads of a kv head are split further when there are too few
// items to keep every thread busy (decode with few kv heads, e.g. MLA's single latent head).
std::vector<Item> make_items(const AttentionTensors& t, const AttentionShape& s, int threads) {
  const int64_t group = s.n_head / s.n_kv_head, T = t.n_tokens;
  const int64_t tb = std::clamp<int64_t>(64 / group, 1, std::max<int64_t>(1, T));
  const int64_t n_tb = (T + tb - 1) / tb;
  // Heads of a kv head are split only while the items are fewer than the threads, or do not share out
  // evenly (up to 4 per thread): each item reads its kv head's keys and values, so a split reads them
  // again (decode, Qwen3's 4 kv heads on 2 threads: 4 items of 8 heads, not 8 of 4).
  int64_t hc = group;
  const auto n_items = [&](int64_t c) { return s.n_kv_head * n_tb * ((group + c - 1) / c); };
  while (hc > 1 && (n_items(hc) < threads || (n_items(hc) % threads != 0 && n_items(hc) < 4 * threads)))
    hc = (hc + 1) / 2;
  std::vector<Item> items;
  for (int64_t kvh = 0; kvh < s.n_kv_head; ++kvh)
    for (int64_t i0 = 0; i0 < T; i0 += tb)
      for (int64_t h0 = kvh * group; h0 < (kvh + 1) * group; h0 += hc)
        items.push_back({kvh, i0, std::min(T, i0 + tb), h0, std::min((kvh + 1) * group, h0 + hc)});
  return items;
}

template <typename Acc>
void one_row_ref(const AttentionTensors& t, const AttentionShape& s, const AttentionOptions& o, int64_t i, int64_t h,
                 std::vector<Acc>& p) {
  const int64_t group = s.n_head / s.n_kv_head, kvh = h / group;
  const int64_t qpos = t.n_keys - t.n_tokens + i;
  int64_t first = 0, last = 0;
  key_range(qpos, o, &first, &last);
  const float* q = t.q + (i * s.n_head + h) * s.qk_dim;
  const int64_t ks = key_stride(t, s), vs = value_stride(t, s);
  p.resize(static_cast<size_t>(last - first + 1));
  Acc mx = -std::numeric_limits<Acc>::infinity();
  for (int64_t j = first; j <= last; ++j) {
    const int64_t head = kvh * key_head_stride(t, s);
    Acc dot = 0;
    for (int64_t d = 0; d < s.qk_dim; ++d) {
      const int64_t k = head + (t.k_tiled ? key_tile_offset(j, d, s.qk_dim) : j * ks + d);
      dot += static_cast<Acc>(q[d]) * static_cast<Acc>(kv_elem(t.k, t.kv_type, k));
    }
    const Acc score = dot * static_cast<Acc>(o.scale);
    p[j - first] = score;
    mx = std::max(mx, score);
  }
  const Acc sink = o.sinks ? static_cast<Acc>(o.sinks[h]) : Acc(0);
  if (o.sinks) mx = std::max(mx, sink);
  Acc sum = o.sinks ? std::exp(sink - mx) : Acc(0);
  for (Acc& v : p) {
    v = std::exp(v - mx);
    sum += v;
  }
  const Acc inv = Acc(1) / sum;
  float* out = t.out + (i * s.n_head + h) * s.v_dim;
  std::vector<Acc> acc(static_cast<size_t>(s.v_dim), Acc(0));
  for (int64_t j = first; j <= last; ++j) {
    const int64_t v = j * vs + kvh * value_head_stride(t, s);
    const Acc w = p[j - first] * inv;
    for (int64_t d = 0; d < s.v_dim; ++d) acc[d] += w * static_cast<Acc>(kv_elem(t.v, t.kv_type, v + d));
  }
  for (int64_t d = 0; d < s.v_dim; ++d) out[d] = static_cast<float>(acc[d]);
}

}  // namespace

void attention_forward(const AttentionTensors& t, const AttentionShape& s, const AttentionOptions& o) {
  check_shapes(t, s);
  if (t.n_tokens == 0) return;
  ThreadPool& pool = thread_pool();
  const std::vector<Item> items = make_items(t, s, pool.size());
  if (t.n_tokens * s.n_head * t.n_keys * (s.qk_dim + s.v_dim) < (1 << 15)) {  // too small to wake the pool
    Scratch sc;
    for (const Item& it : items) run_item(t, s, o, it, sc);
    return;
  }
  pool.parallel_for_dynamic(static_cast<int64_t>(items.size()), 1, [&](int64_t begin, int64_t end, int) {
    thread_local Scratch sc;
    for (int64_t i = begin; i < end; ++i) run_item(t, s, o, items[static_cast<size_t>(i)], sc);
  });
}

void attention_forward_ref(const AttentionTensors& t, const AttentionShape& s, const AttentionOptions& o) {
  check_shapes(t, s);
  std::vector<double> p;
  for (int64_t r = 0; r < t.n_tokens * s.n_head; ++r) one_row_ref<double>(t, s, o, r / s.n_head, r % s.n_head, p);
}

}  // namespace moe
