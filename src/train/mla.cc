// MLA forward and backward for training (see mla.h). The attention core is parallel over
// (sequence, head) with static splits; the shared k_pe gradient is kept per head and summed
// afterwards, so every output has a single writer and results do not depend on scheduling.
#include "train/mla.h"

#include <algorithm>
#include <cmath>

#include "train/linalg.h"
#include "train/ops.h"

namespace moe::train {

template <typename T>
void rope_interleaved(T* x, const RopeRows& rows, double theta, double sign) {
  const int64_t half = rows.dim / 2, row_len = rows.n_vec * rows.stride;
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv_freq[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(rows.dim));
  parallel_items(rows.n, rows.n_vec * rows.dim * 4, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const double pos = static_cast<double>(r % rows.seq);
      for (int64_t i = 0; i < half; ++i) {
        const double ang = pos * inv_freq[i];
        const T cs = static_cast<T>(std::cos(ang)), sn = static_cast<T>(sign * std::sin(ang));
        for (int64_t h = 0; h < rows.n_vec; ++h) {
          T* v = x + r * row_len + h * rows.stride;
          const T x1 = v[2 * i], x2 = v[2 * i + 1];
          v[2 * i] = x1 * cs - x2 * sn;
          v[2 * i + 1] = x2 * cs + x1 * sn;
        }
      }
    }
  });
}

namespace {

struct Dims {
  int64_t N, D, H, nope, rope, qk, vd, r, kvw;  // kvw = nope + v per head in kv_b's output
  Dims(const MlaContext& x)
      : N(x.batch * x.seq),
        D(x.c.d_model),
        H(x.c.n_head),
        nope(x.c.qk_nope_dim),
        rope(x.c.qk_rope_dim),
        qk(x.c.qk_nope_dim + x.c.qk_rope_dim),
        vd(x.c.v_head_dim),
        r(x.c.kv_lora_rank),
        kvw(x.c.qk_nope_dim + x.c.v_head_dim) {}
};

// Causal softmax attention: score(i, j) = (q_nope.k_nope + q_pe.k_pe) * scale, values from kv.
template <typename T>
void attend_forward(MlaActs<T>& a, const Dims& d, const MlaContext& ctx) {
  const int64_t S = ctx.seq;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d.qk));
  parallel_items(ctx.batch * d.H, S * S * (d.qk + d.vd), [&](int64_t b0, int64_t b1) {
    for (int64_t bh = b0; bh < b1; ++bh) {
      const int64_t b = bh / d.H, h = bh % d.H;
      for (int64_t i = 0; i < S; ++i) {
        const T* qi = a.q.data() + ((b * S + i) * d.H + h) * d.qk;
        T* p = a.probs.data() + (bh * S + i) * S;
        T mx = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) {
          const T* kj = a.kv.data() + ((b * S + j) * d.H + h) * d.kvw;
          const T* pe = a.kpe.data() + (b * S + j) * d.rope;
          T dot = 0;
          for (int64_t e = 0; e < d.nope; ++e) dot += qi[e] * kj[e];
          for (int64_t e = 0; e < d.rope; ++e) dot += qi[d.nope + e] * pe[e];
          p[j] = dot * static_cast<T>(scale);
          mx = std::max(mx, p[j]);
        }
        T sum = 0;
        for (int64_t j = 0; j <= i; ++j) sum += (p[j] = std::exp(p[j] - mx));
        for (int64_t j = 0; j <= i; ++j) p[j] /= sum;
        std::fill(p + i + 1, p + S, T(0));
        T* oi = a.att.data() + ((b * S + i) * d.H + h) * d.vd;
        std::fill(oi, oi + d.vd, T(0));
        for (int64_t j = 0; j <= i; ++j) {
          const T* vj = a.kv.data() + ((b * S + j) * d.H + h) * d.kvw + d.nope;
          for (int64_t e = 0; e < d.vd; ++e) oi[e] += p[j] * vj[e];
        }
      }
    }
  });
}

// dq [N, H, qk], dkv [N, H, nope + v] and dkpe_h [N, H, rope] (overwritten) from datt [N, H, v].
template <typename T>
void attend_backward(std::vector<T>& dq, std::vector<T>& dkv, std::vector<T>& dkpe_h, const std::vector<T>& datt,
                     const MlaActs<T>& a, const Dims& d, const MlaContext& ctx) {
  const int64_t S = ctx.seq;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(d.qk)));
  parallel_items(ctx.batch * d.H, 2 * S * S * (d.qk + d.vd), [&](int64_t b0, int64_t b1) {
    std::vector<T> dpr(static_cast<size_t>(S));
    for (int64_t bh = b0; bh < b1; ++bh) {
      const int64_t b = bh / d.H, h = bh % d.H;
      for (int64_t i = 0; i < S; ++i) {
        const int64_t ri = (b * S + i) * d.H + h;
        const T* p = a.probs.data() + (bh * S + i) * S;
        const T* doi = datt.data() + ri * d.vd;
        const T* qi = a.q.data() + ri * d.qk;
        T* dqi = dq.data() + ri * d.qk;
        T dot = 0;
        for (int64_t j = 0; j <= i; ++j) {
          const int64_t rj = (b * S + j) * d.H + h;
          const T* vj = a.kv.data() + rj * d.kvw + d.nope;
          T* dvj = dkv.data() + rj * d.kvw + d.nope;
          T acc = 0;
          for (int64_t e = 0; e < d.vd; ++e) {
            acc += doi[e] * vj[e];
            dvj[e] += p[j] * doi[e];
          }
          dpr[j] = acc;
          dot += acc * p[j];
        }
        for (int64_t j = 0; j <= i; ++j) {
          const int64_t rj = (b * S + j) * d.H + h;
          const T ds = p[j] * (dpr[j] - dot) * scale;
          const T* kj = a.kv.data() + rj * d.kvw;
          const T* pe = a.kpe.data() + (b * S + j) * d.rope;
          T* dkj = dkv.data() + rj * d.kvw;
          T* dpe = dkpe_h.data() + rj * d.rope;
          for (int64_t e = 0; e < d.nope; ++e) {
            dqi[e] += ds * kj[e];
            dkj[e] += ds * qi[e];
          }
          for (int64_t e = 0; e < d.rope; ++e) {
            dqi[d.nope + e] += ds * pe[e];
            dpe[e] += ds * qi[d.nope + e];
          }
        }
      }
    }
  });
}

}  // namespace

template <typename T>
void mla_forward(MlaActs<T>& a, T* out, const T* x, const T* p, const MlaContext& ctx) {
  const ModelConfig& c = ctx.c;
  const LayerOffsets& o = ctx.o;
  const Dims d(ctx);
  const int64_t N = d.N, qr = c.q_lora_rank;
  a.x.assign(x, x + N * d.D);  // [N, D]
  a.q.resize(N * d.H * d.qk);  // [N, H, qk]
  if (qr > 0) {
    a.qa.resize(N * qr);   // [N, qr]
    a.qan.resize(N * qr);  // [N, qr]
    a.qa_rstd.resize(N);   // [N]
    par_mm_nt<T>(x, p + o.q_a, a.qa.data(), N, qr, d.D, false);
    rmsnorm_forward<T>(a.qan.data(), a.qa_rstd.data(), a.qa.data(), p + o.q_a_norm, N, qr, c.rms_eps);
    par_mm_nt<T>(a.qan.data(), p + o.q_b, a.q.data(), N, d.H * d.qk, qr, false);
  } else {
    par_mm_nt<T>(x, p + o.q, a.q.data(), N, d.H * d.qk, d.D, false);
  }
  rope_interleaved<T>(a.q.data() + d.nope, RopeRows{N, d.H, d.qk, d.rope, ctx.seq}, c.rope_theta, 1.0);
  std::vector<T> ckv(N * (d.r + d.rope));  // [N, r + rope]
  par_mm_nt<T>(x, p + o.kv_a, ckv.data(), N, d.r + d.rope, d.D, false);
  a.c.resize(N * d.r);       // [N, r]
  a.kpe.resize(N * d.rope);  // [N, rope]
  for (int64_t t = 0; t < N; ++t) {
    const T* row = ckv.data() + t * (d.r + d.rope);
    std::copy(row, row + d.r, a.c.data() + t * d.r);
    std::copy(row + d.r, row + d.r + d.rope, a.kpe.data() + t * d.rope);
  }
  rope_interleaved<T>(a.kpe.data(), RopeRows{N, 1, d.rope, d.rope, ctx.seq}, c.rope_theta, 1.0);
  a.cn.resize(N * d.r);  // [N, r]
  a.c_rstd.resize(N);    // [N]
  rmsnorm_forward<T>(a.cn.data(), a.c_rstd.data(), a.c.data(), p + o.kv_a_norm, N, d.r, c.rms_eps);
  a.kv.resize(N * d.H * d.kvw);  // [N, H, nope + v]
  par_mm_nt<T>(a.cn.data(), p + o.kv_b, a.kv.data(), N, d.H * d.kvw, d.r, false);
  a.probs.resize(ctx.batch * d.H * ctx.seq * ctx.seq);  // [B, H, S, S]
  a.att.resize(N * d.H * d.vd);                         // [N, H * v]
  attend_forward(a, d, ctx);
  par_mm_nt<T>(a.att.data(), p + o.o, out, N, d.D, d.H * d.vd, false);
}

template <typename T>
void mla_backward(T* dx, T* dp, const T* dout, const MlaActs<T>& a, const T* p, const MlaContext& ctx) {
  const ModelConfig& c = ctx.c;
  const LayerOffsets& o = ctx.o;
  const Dims d(ctx);
  const int64_t N = d.N, qr = c.q_lora_rank, HV = d.H * d.vd;
  par_mm_tn<T>(dout, a.att.data(), dp + o.o, d.D, HV, N, true);  // dWo [D, H*v]
  std::vector<T> datt(N * HV);                                   // [N, H*v]
  par_mm_nn<T>(dout, p + o.o, datt.data(), N, HV, d.D, false);
  std::vector<T> dq(N * d.H * d.qk, T(0)), dkv(N * d.H * d.kvw, T(0));  // [N, H, qk], [N, H, nope + v]
  std::vector<T> dkpe_h(N * d.H * d.rope, T(0));                        // [N, H, rope]
  attend_backward(dq, dkv, dkpe_h, datt, a, d, ctx);
  rope_interleaved<T>(dq.data() + d.nope, RopeRows{N, d.H, d.qk, d.rope, ctx.seq}, c.rope_theta, -1.0);
  // kv_b: dWkvb += dkv^T cn; dcn = dkv Wkvb; then the latent's RMSNorm.
  par_mm_tn<T>(dkv.data(), a.cn.data(), dp + o.kv_b, d.H * d.kvw, d.r, N, true);  // [H*(nope+v), r]
  std::vector<T> dcn(N * d.r), dc(N * d.r, T(0));                                 // [N, r] x2
  par_mm_nn<T>(dkv.data(), p + o.kv_b, dcn.data(), N, d.r, d.H * d.kvw, false);
  rmsnorm_backward<T>(dc.data(), dp + o.kv_a_norm, dcn.data(), a.c.data(), p + o.kv_a_norm, a.c_rstd.data(), N, d.r);
  std::vector<T> dckv(N * (d.r + d.rope));  // [N, r + rope] = [dc | sum_h dk_pe, unrotated]
  for (int64_t t = 0; t < N; ++t) {
    T* row = dckv.data() + t * (d.r + d.rope);
    std::copy(dc.data() + t * d.r, dc.data() + (t + 1) * d.r, row);
    for (int64_t e = 0; e < d.rope; ++e) {
      T s = 0;
      for (int64_t h = 0; h < d.H; ++h) s += dkpe_h[(t * d.H + h) * d.rope + e];
      row[d.r + e] = s;
    }
  }
  rope_interleaved<T>(dckv.data() + d.r, RopeRows{N, 1, d.r + d.rope, d.rope, ctx.seq}, c.rope_theta, -1.0);
  par_mm_tn<T>(dckv.data(), a.x.data(), dp + o.kv_a, d.r + d.rope, d.D, N, true);  // [r + rope, D]
  par_mm_nn<T>(dckv.data(), p + o.kv_a, dx, N, d.D, d.r + d.rope, true);
  if (qr > 0) {
    par_mm_tn<T>(dq.data(), a.qan.data(), dp + o.q_b, d.H * d.qk, qr, N, true);  // [H*qk, qr]
    std::vector<T> dqan(N * qr), dqa(N * qr, T(0));                              // [N, qr] x2
    par_mm_nn<T>(dq.data(), p + o.q_b, dqan.data(), N, qr, d.H * d.qk, false);
    rmsnorm_backward<T>(dqa.data(), dp + o.q_a_norm, dqan.data(), a.qa.data(), p + o.q_a_norm, a.qa_rstd.data(), N, qr);
    par_mm_tn<T>(dqa.data(), a.x.data(), dp + o.q_a, qr, d.D, N, true);  // [qr, D]
    par_mm_nn<T>(dqa.data(), p + o.q_a, dx, N, d.D, qr, true);
  } else {
    par_mm_tn<T>(dq.data(), a.x.data(), dp + o.q, d.H * d.qk, d.D, N, true);  // [H*qk, D]
    par_mm_nn<T>(dq.data(), p + o.q, dx, N, d.D, d.H * d.qk, true);
  }
}

#define MOE_TRAIN_MLA_INSTANTIATE(T)                                                    \
  template void rope_interleaved<T>(T*, const RopeRows&, double, double);               \
  template void mla_forward<T>(MlaActs<T>&, T*, const T*, const T*, const MlaContext&); \
  template void mla_backward<T>(T*, T*, const T*, const MlaActs<T>&, const T*, const MlaContext&);

MOE_TRAIN_MLA_INSTANTIATE(float)
MOE_TRAIN_MLA_INSTANTIATE(double)

}  // namespace moe::train
