// Dense ops of the training model, forward next to backward. Loops are parallel over rows
// (or over (sequence, head) for attention) with static splits, so results are deterministic.
#include "train/ops.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/vmath.h"
#include "train/attention_f32.h"
#include "train/linalg.h"

namespace moe::train {

template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, int64_t n, int64_t d) {
  for (int64_t i = 0; i < n; ++i) std::copy(wte + tokens[i] * d, wte + (tokens[i] + 1) * d, out + i * d);
}

template <typename T>
void embedding_backward(T* dwte, const T* dout, const int32_t* tokens, int64_t n, int64_t d) {
  for (int64_t i = 0; i < n; ++i) {
    T* row = dwte + tokens[i] * d;
    for (int64_t j = 0; j < d; ++j) row[j] += dout[i * d + j];
  }
}

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t n, int64_t c, double eps) {
  parallel_items(n, 2 * c, [&](int64_t b, int64_t e) {
    if constexpr (std::is_same_v<T, float>) {
      rmsnorm_rows_f32(out + b * c, rstd + b, x + b * c, w, e - b, c, eps);
      return;
    }
    for (int64_t i = b; i < e; ++i) {
      const T* xi = x + i * c;
      double ss = 0;
      for (int64_t j = 0; j < c; ++j) ss += static_cast<double>(xi[j]) * xi[j];
      const T r = static_cast<T>(1.0 / std::sqrt(ss / static_cast<double>(c) + eps));
      rstd[i] = r;
      for (int64_t j = 0; j < c; ++j) out[i * c + j] = xi[j] * r * w[j];
    }
  });
}

// dx = rstd * (dxhat - xhat * mean(dxhat * xhat)) with xhat = x * rstd, dxhat = dout * w.
template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, int64_t n, int64_t c) {
  constexpr bool kFloat = std::is_same_v<T, float>;
  parallel_items(n, 3 * c, [&](int64_t b, int64_t e) {
    if constexpr (kFloat) {
      rmsnorm_rows_backward_f32(dx + b * c, dout + b * c, x + b * c, w, rstd + b, e - b, c);
      return;
    }
    for (int64_t i = b; i < e; ++i) {
      const T* xi = x + i * c;
      const T* gi = dout + i * c;
      double dot = 0;
      for (int64_t j = 0; j < c; ++j) dot += static_cast<double>(gi[j]) * w[j] * xi[j] * rstd[i];
      const T m = static_cast<T>(dot / static_cast<double>(c));
      for (int64_t j = 0; j < c; ++j) dx[i * c + j] += rstd[i] * (gi[j] * w[j] - xi[j] * rstd[i] * m);
    }
  });
  if (dw == nullptr) return;
  if constexpr (kFloat) return rmsnorm_rows_dw_f32(dw, dout, x, rstd, n, c);  // serial: every row adds into dw
  for (int64_t i = 0; i < n; ++i) {
    const T r = rstd[i];
    const T* gi = dout + i * c;
    const T* xi = x + i * c;
    for (int64_t j = 0; j < c; ++j) dw[j] += gi[j] * xi[j] * r;
  }
}

namespace {
// cos / sin of each (position, pair) for one (positions, head_dim, theta, sign): made once and kept
// (per thread, per direction) while the shape stays, not once per call (4 calls per layer per step).
template <typename T>
struct RopeTable {
  int64_t positions = -1, head_dim = -1;
  double theta = 0, sign = 0;
  std::vector<T> cs, sn;  // [S, half]

  const RopeTable& make(int64_t p, int64_t hd, double th, double sg) {
    if (p == positions && hd == head_dim && th == theta && sg == sign) return *this;
    positions = p, head_dim = hd, theta = th, sign = sg;
    const int64_t half = hd / 2;
    cs.resize(static_cast<size_t>(p * half));
    sn.resize(cs.size());
    for (int64_t i = 0; i < half; ++i) {
      // As Hugging Face computes it: theta ** (arange(0, dim, 2) / dim), in float.
      const double inv_freq = 1.0 / std::pow(th, static_cast<double>(2 * i) / static_cast<double>(hd));
      for (int64_t pos = 0; pos < p; ++pos) {
        const double a = static_cast<double>(pos) * inv_freq;
        cs[pos * half + i] = static_cast<T>(std::cos(a));
        sn[pos * half + i] = static_cast<T>(sg * std::sin(a));
      }
    }
    return *this;
  }
};

// Rotates pairs (x1, x2) = (x[i], x[i + half]) by +angle (sign 1) or -angle (sign -1).
template <typename T>
void rope_apply(T* x, int64_t n, int64_t n_head, int64_t head_dim, int64_t seq_len, double theta, double sign) {
  const int64_t half = head_dim / 2, positions = std::min(n, seq_len);
  thread_local RopeTable<T> tables[2];  // forward, backward
  const RopeTable<T>& table = tables[sign > 0 ? 0 : 1].make(positions, head_dim, theta, sign);
  const std::vector<T>&cs = table.cs, &sn = table.sn;
  parallel_items(n, n_head * head_dim * 4, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* c = cs.data() + (r % seq_len) * half;
      const T* s = sn.data() + (r % seq_len) * half;
      for (int64_t h = 0; h < n_head; ++h) {
        T* xh = x + (r * n_head + h) * head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const T x1 = xh[i], x2 = xh[i + half];
          xh[i] = x1 * c[i] - x2 * s[i];
          xh[i + half] = x2 * c[i] + x1 * s[i];
        }
      }
    }
  });
}
}  // namespace

template <typename T>
void rope_forward(T* x, int64_t n, int64_t n_head, int64_t head_dim, int64_t seq_len, double theta) {
  rope_apply(x, n, n_head, head_dim, seq_len, theta, 1.0);
}
template <typename T>
void rope_backward(T* dx, int64_t n, int64_t n_head, int64_t head_dim, int64_t seq_len, double theta) {
  rope_apply(dx, n, n_head, head_dim, seq_len, theta, -1.0);
}

template <typename T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v, const AttentionShape& s) {
  // float: blocked GEMMs (attention_f32.cc); double (the gradient checks): the loops below.
  if constexpr (std::is_same_v<T, float>) {
    return attention_forward_f32(out, probs, q, k, v, s);
  }
  const int64_t S = s.seq, H = s.n_head, Dh = s.head_dim, group = s.n_head / s.n_kv_head;
  const int64_t qs = H * Dh, kvs = s.n_kv_head * Dh;
  const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
  parallel_items(s.batch * H, S * S * Dh, [&](int64_t b0, int64_t b1) {
    for (int64_t bh = b0; bh < b1; ++bh) {
      const int64_t b = bh / H, h = bh % H, kh = h / group;
      for (int64_t i = 0; i < S; ++i) {
        const T* qi = q + (b * S + i) * qs + h * Dh;
        T* p = probs + (bh * S + i) * S;  // [S] row, causal: j <= i
        T mx = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) {
          const T* kj = k + (b * S + j) * kvs + kh * Dh;
          T dot = 0;
          for (int64_t d = 0; d < Dh; ++d) dot += qi[d] * kj[d];
          p[j] = dot * static_cast<T>(scale);
          mx = std::max(mx, p[j]);
        }
        T sum = 0;
        for (int64_t j = 0; j <= i; ++j) sum += (p[j] = std::exp(p[j] - mx));
        for (int64_t j = 0; j <= i; ++j) p[j] /= sum;
        std::fill(p + i + 1, p + S, T(0));
        T* oi = out + (b * S + i) * qs + h * Dh;
        std::fill(oi, oi + Dh, T(0));
        for (int64_t j = 0; j <= i; ++j) {
          const T* vj = v + (b * S + j) * kvs + kh * Dh;
          for (int64_t d = 0; d < Dh; ++d) oi[d] += p[j] * vj[d];
        }
      }
    }
  });
}

// dP = dO v^T; dS = P * (dP - sum(dP * P)); dq = dS k * scale; dk = dS^T q * scale; dv = P^T dO.
// Parallel over (sequence, kv head) so that dk and dv rows have a single writer.
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* probs,
                        const AttentionShape& s) {
  if constexpr (std::is_same_v<T, float>) {
    return attention_backward_f32(dq, dk, dv, dout, q, k, v, probs, s);
  }
  const int64_t S = s.seq, H = s.n_head, Hkv = s.n_kv_head, Dh = s.head_dim, group = H / Hkv;
  const int64_t qs = H * Dh, kvs = Hkv * Dh;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(Dh)));
  parallel_items(s.batch * Hkv, 2 * group * S * S * Dh, [&](int64_t b0, int64_t b1) {
    std::vector<T> dp(static_cast<size_t>(S));
    for (int64_t bk = b0; bk < b1; ++bk) {
      const int64_t b = bk / Hkv, kh = bk % Hkv;
      for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
        for (int64_t i = 0; i < S; ++i) {
          const T* p = probs + ((b * H + h) * S + i) * S;
          const T* doi = dout + (b * S + i) * qs + h * Dh;
          const T* qi = q + (b * S + i) * qs + h * Dh;
          T* dqi = dq + (b * S + i) * qs + h * Dh;
          T dot = 0;
          for (int64_t j = 0; j <= i; ++j) {
            const T* vj = v + (b * S + j) * kvs + kh * Dh;
            T* dvj = dv + (b * S + j) * kvs + kh * Dh;
            T acc = 0;
            for (int64_t d = 0; d < Dh; ++d) {
              acc += doi[d] * vj[d];
              dvj[d] += p[j] * doi[d];
            }
            dp[j] = acc;
            dot += acc * p[j];
          }
          for (int64_t j = 0; j <= i; ++j) {
            const T ds = p[j] * (dp[j] - dot) * scale;
            const T* kj = k + (b * S + j) * kvs + kh * Dh;
            T* dkj = dk + (b * S + j) * kvs + kh * Dh;
            for (int64_t d = 0; d < Dh; ++d) {
              dqi[d] += ds * kj[d];
              dkj[d] += ds * qi[d];
            }
          }
        }
      }
    }
  });
}

template <typename T>
void swiglu_forward(T* out, const T* gate, const T* up, int64_t n) {
  if constexpr (std::is_same_v<T, float>) return swiglu_f32(out, gate, up, n);
  for (int64_t i = 0; i < n; ++i) {
    const T g = gate[i];
    out[i] = g * (T(1) / (T(1) + std::exp(-g))) * up[i];
  }
}

template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n, T* out) {
  if constexpr (std::is_same_v<T, float>) return swiglu_backward_f32(dgate, dup, dout, gate, up, n, out);
  for (int64_t i = 0; i < n; ++i) {
    const T g = gate[i];
    const T sg = T(1) / (T(1) + std::exp(-g));
    const T silu = g * sg;
    if (out != nullptr) out[i] = silu * up[i];
    dup[i] = dout[i] * silu;
    dgate[i] = dout[i] * up[i] * (sg * (T(1) + g * (T(1) - sg)));
  }
}

namespace {
// One row of cross-entropy: returns logsumexp - logit[target]; writes softmax * g - g * onehot
// into di when di is non-null. Float rows take exp_f32 (sums in double), double rows std::exp.
template <typename T>
double cross_entropy_row(T* di, const T* li, int32_t target, int64_t v, double g) {
  double sum = 0;
  T mx;
  if constexpr (std::is_same_v<T, float>) {
    mx = max_f32(li, v);
    thread_local std::vector<float> e;
    e.resize(static_cast<size_t>(v));
    for (int64_t j = 0; j < v; ++j) e[j] = li[j] - mx;
    exp_f32(e.data(), e.data(), v);
    sum = sum_f32(e.data(), v);
    if (di != nullptr) {
      const float scale = static_cast<float>(g / sum);
      for (int64_t j = 0; j < v; ++j) di[j] = e[j] * scale;
    }
  } else {
    mx = *std::max_element(li, li + v);
    for (int64_t j = 0; j < v; ++j) sum += std::exp(static_cast<double>(li[j] - mx));
    if (di != nullptr) {
      const double lse = std::log(sum) + mx;
      for (int64_t j = 0; j < v; ++j) di[j] = static_cast<T>(std::exp(li[j] - lse) * g);
    }
  }
  if (di != nullptr) di[target] -= static_cast<T>(g);
  return std::log(sum) + mx - li[target];
}
}  // namespace

template <typename T>
double cross_entropy_forward_backward(T* dlogits, const T* logits, const int32_t* targets, int64_t n, int64_t v,
                                      double dloss) {
  std::vector<double> row_loss(static_cast<size_t>(n));
  const double g = dloss / static_cast<double>(n);
  parallel_items(n, 3 * v, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      row_loss[i] = cross_entropy_row(dlogits ? dlogits + i * v : nullptr, logits + i * v, targets[i], v, g);
  });
  double total = 0;
  for (double l : row_loss) total += l;
  return total / static_cast<double>(n);
}

#define MOE_TRAIN_OPS_INSTANTIATE(T)                                                                   \
  template void embedding_forward<T>(T*, const int32_t*, const T*, int64_t, int64_t);                  \
  template void embedding_backward<T>(T*, const T*, const int32_t*, int64_t, int64_t);                 \
  template void rmsnorm_forward<T>(T*, T*, const T*, const T*, int64_t, int64_t, double);              \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t); \
  template void rope_forward<T>(T*, int64_t, int64_t, int64_t, int64_t, double);                       \
  template void rope_backward<T>(T*, int64_t, int64_t, int64_t, int64_t, double);                      \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, const AttentionShape&);     \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,    \
                                      const AttentionShape&);                                          \
  template void swiglu_forward<T>(T*, const T*, const T*, int64_t);                                    \
  template void swiglu_backward<T>(T*, T*, const T*, const T*, const T*, int64_t, T*);                 \
  template double cross_entropy_forward_backward<T>(T*, const T*, const int32_t*, int64_t, int64_t, double);

MOE_TRAIN_OPS_INSTANTIATE(float)
MOE_TRAIN_OPS_INSTANTIATE(double)

}  // namespace moe::train
