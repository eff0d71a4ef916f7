// Attention over a KV cache (see attention.h). One (token, head) row at a time: scores over
// the visible keys, max-subtracted softmax (with the sink logit when present), weighted sum of
// values. The reference twin does the same in double.
#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

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
}

template <typename Acc>
void one_row(const AttentionTensors& t, const AttentionShape& s, const AttentionOptions& o, int64_t i, int64_t h,
             std::vector<Acc>& p) {
  const int64_t group = s.n_head / s.n_kv_head, kvh = h / group;
  const int64_t qpos = t.n_keys - t.n_tokens + i;
  int64_t first = 0, last = 0;
  key_range(qpos, o, &first, &last);
  const float* q = t.q + (i * s.n_head + h) * s.qk_dim;
  const int64_t ks = t.k_stride ? t.k_stride : s.n_kv_head * s.qk_dim;
  const int64_t vs = t.v_stride ? t.v_stride : s.n_kv_head * s.v_dim;
  p.resize(static_cast<size_t>(last - first + 1));
  Acc mx = -std::numeric_limits<Acc>::infinity();
  for (int64_t j = first; j <= last; ++j) {
    const float* k = t.k + j * ks + kvh * s.qk_dim;
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
    const float* v = t.v + j * vs + kvh * s.v_dim;
    const Acc w = p[j - first] * inv;
    for (int64_t d = 0; d < s.v_dim; ++d) acc[d] += w * static_cast<Acc>(v[d]);
  }
  for (int64_t d = 0; d < s.v_dim; ++d) out[d] = static_cast<float>(acc[d]);
}

}  // namespace

void attention_forward(const AttentionTensors& t, const AttentionShape& s, const AttentionOptions& o) {
  check_shapes(t, s);
  if (t.n_tokens * s.n_head * t.n_keys * (s.qk_dim + s.v_dim) < (1 << 15)) {  // too small to wake the pool
    std::vector<float> p;
    for (int64_t r = 0; r < t.n_tokens * s.n_head; ++r) one_row<float>(t, s, o, r / s.n_head, r % s.n_head, p);
    return;
  }
  thread_pool().parallel_for_dynamic(t.n_tokens * s.n_head, 4, [&](int64_t begin, int64_t end, int) {
    std::vector<float> p;
    for (int64_t r = begin; r < end; ++r) one_row<float>(t, s, o, r / s.n_head, r % s.n_head, p);
  });
}

void attention_forward_ref(const AttentionTensors& t, const AttentionShape& s, const AttentionOptions& o) {
  check_shapes(t, s);
  std::vector<double> p;
  for (int64_t r = 0; r < t.n_tokens * s.n_head; ++r) one_row<double>(t, s, o, r / s.n_head, r % s.n_head, p);
}

}  // namespace moe
