// Attention over a KV cache (see attention.h). Work items are (kv head, block of query tokens,
// chunk of the heads reading that kv head): the item's query rows times its visible keys go
// through the NT matmul kernels (scores = Q . K^T), then a max-subtracted softmax per row (with
// the sink logit when present) and out = P . V. The reference twin loops in double.
#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention_pv.h"
#include "kernels/matmul.h"
#include "kernels/vmath.h"
#include "runtime/thread_pool.h"
#include "util/check.h"

namespace moe {
namespace {

void check_shapes(const AttentionTensors& t, const AttentionShape& s) {
  MOE_CHECK(s.n_head > 0 && s.n_kv_head > 0 && s.n_head % s.n_kv_head == 0);
  MOE_CHECK(s.qk_dim > 0 && s.v_dim > 0);
  MOE_CHECK(t.n_tokens >= 0 && t.n_keys >= t.n_tokens);
  MOE_CHECK(t.q && t.k && t.v && t.out);
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
  std::vector<float> a, p, vt, o;
};

// Rows with at least this many queries multiply P . V as a GEMM over transposed values;
// fewer rows go through attention_pv (value rows read in place: no transpose to pay for).
constexpr int64_t kGemmRows = 16;

void run_item(const AttentionTensors& t, const AttentionShape& s, const AttentionOptions& o, const Item& it,
              Scratch& sc) {
  const int64_t nh = it.h1 - it.h0, m = (it.i1 - it.i0) * nh, Dq = s.qk_dim, Dv = s.v_dim;
  const int64_t past = t.n_keys - t.n_tokens, ks = key_stride(t, s), vs = value_stride(t, s);
  int64_t first = 0, last = 0, unused = 0;
  key_range(past + it.i0, o, &first, &unused);
  key_range(past + it.i1 - 1, o, &unused, &last);
  const int64_t n = last - first + 1;
  sc.a.resize(static_cast<size_t>(m * Dq));  // [m, Dq] query rows, row r = (token i0 + r / nh, head h0 + r % nh)
  sc.p.resize(static_cast<size_t>(m * n));   // [m, n] scores, then probabilities
  sc.o.resize(static_cast<size_t>(m * Dv));  // [m, Dv]
  for (int64_t r = 0; r < m; ++r) {
    const float* q = t.q + ((it.i0 + r / nh) * s.n_head + it.h0 + r % nh) * Dq;
    std::copy(q, q + Dq, sc.a.data() + r * Dq);
  }
  const WeightView keys{t.k + first * ks + it.kvh * key_head_stride(t, s), DType::kF32, ks};
  matmul_nt(sc.a.data(), Dq, keys, sc.p.data(), n, MatmulShape{m, n, Dq}, false);
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
  const float* v0 = t.v + first * vs + it.kvh * value_head_stride(t, s);
  if (m >= kGemmRows) {
    sc.vt.resize(static_cast<size_t>(Dv * n));  // [Dv, n] values transposed
    for (int64_t j = 0; j < n; ++j)
      for (int64_t d = 0; d < Dv; ++d) sc.vt[d * n + j] = v0[j * vs + d];
    matmul_nt(sc.p.data(), n, WeightView{sc.vt.data(), DType::kF32, n}, sc.o.data(), Dv, MatmulShape{m, Dv, n}, false);
  } else {  // few rows (decode): the value rows in place, each read once per 4 query rows
    attention_pv(sc.p.data(), v0, sc.o.data(), PvShape{m, n, Dv, n, vs, Dv});
  }
  for (int64_t r = 0; r < m; ++r) {
    const float* src = sc.o.data() + r * Dv;
    std::copy(src, src + Dv, t.out + ((it.i0 + r / nh) * s.n_head + it.h0 + r % nh) * Dv);
  }
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
    const float* k = t.k + j * ks + kvh * key_head_stride(t, s);
    Acc dot = 0;
    for (int64_t d = 0; d < s.qk_dim; ++d) dot += static_cast<Acc>(q[d]) * static_cast<Acc>(k[d]);
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
    const float* v = t.v + j * vs + kvh * value_head_stride(t, s);
    const Acc w = p[j - first] * inv;
    for (int64_t d = 0; d < s.v_dim; ++d) acc[d] += w * static_cast<Acc>(v[d]);
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
