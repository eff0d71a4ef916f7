// MoE block forward/backward for training (see moe_block.h). Work is split by expert for the
// expert FFNs and by token for routing, combine and the scatter of dx, so every output has a
// single writer and the results do not depend on thread scheduling.
#include "train/moe_block.h"

#include <algorithm>
#include <cmath>

#include "moe/router_math.h"
#include "runtime/thread_pool.h"
#include "train/linalg.h"
#include "train/ops.h"
#include "util/check.h"

namespace moe::train {
namespace {

// Per-thread buffers that keep their memory between steps and are not zeroed (a std::vector
// sized afresh zero-fills megabytes per step): every element is written before it is read.
// kSlot tells apart the buffers that are alive at the same time.
template <typename T, int kSlot>
T* scratch(int64_t n) {
  thread_local std::vector<T> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

// Experts as dynamic work items (a hot expert does not hold up the others), inline when small.
template <typename Fn>
void for_experts(int64_t cost, int n_expert, Fn&& fn) {
  if (cost < 65536 || thread_pool().size() == 1) return fn(int64_t{0}, int64_t{n_expert});
  thread_pool().parallel_for_dynamic(n_expert, 1, [&](int64_t b, int64_t e, int) { fn(b, e); });
}

// Scores, top-k and weights by the family's rule from moe/ (router_math.h: the inference router's own
// code, here in T). The aux-loss-free bias takes part in the selection of any family when given.
template <typename T>
void route(MoeActs<T>& a, const float* bias, int64_t n) {
  RouterOptions o = a.router;
  o.use_correction_bias = bias != nullptr;
  const int E = o.n_expert, K = o.top_k;
  parallel_items(n, 8 * E, [&](int64_t b, int64_t e) {
    std::vector<T> scratch(static_cast<size_t>(2 * E + o.n_group));
    std::vector<int32_t> groups(static_cast<size_t>(o.topk_group));
    for (int64_t t = b; t < e; ++t) {
      int32_t* ids = a.ids.data() + t * K;
      router_math::select_top_k(o, a.logits.data() + t * E, bias, K, ids, a.weights.data() + t * K, scratch.data(),
                                groups.data());
      std::copy_n(scratch.data(), E, a.scores.data() + t * E);  // select_top_k leaves the scores there
      for (int k = 0; k < K; ++k) a.raw[t * K + k] = scratch[ids[k]];
    }
  });
}

// Scores that are not a softmax (sigmoid): the aux losses' P is them normalized per token.
inline bool normalized_aux_probs(const RouterOptions& o) { return o.scoring != ScoringFunc::kSoftmax; }

// The probabilities P of the aux losses: the softmax scores, or (DeepSeek-V3) the sigmoid scores
// normalized per token.
template <typename T>
const std::vector<T>& aux_probs(const MoeActs<T>& a) {
  return normalized_aux_probs(a.router) ? a.aux_probs : a.scores;
}

// aux = E * sum_e f_e P_e over [t0, t1): f_e = routed slot fraction, P_e = mean probability.
template <typename T>
double switch_aux(const MoeActs<T>& a, const ModelConfig& c, int64_t t0, int64_t t1) {
  const int E = c.n_expert, K = c.top_k;
  const std::vector<T>& probs = aux_probs(a);
  std::vector<double> f(E, 0.0), pm(E, 0.0);
  for (int64_t t = t0; t < t1; ++t) {
    for (int k = 0; k < K; ++k) f[a.ids[t * K + k]] += 1.0;
    for (int j = 0; j < E; ++j) pm[j] += probs[t * E + j];
  }
  const double n = static_cast<double>(t1 - t0);
  double aux = 0;
  for (int j = 0; j < E; ++j) aux += (f[j] / (n * K)) * (pm[j] / n);
  return aux * E;
}

template <typename T>
void expert_forward(MoeActs<T>& a, const T* p, const LayerOffsets& o, const ModelConfig& c) {
  const int64_t D = c.d_model, F = c.d_ff_expert;
  for_experts(a.plan.n_rows() * D * F, c.n_expert, [&](int64_t e0, int64_t e1) {
    // silu(gate) * up lives only while down_proj reads it (cache-hot); backward recomputes it.
    for (int64_t e = e0; e < e1; ++e) {
      const int64_t r0 = a.plan.expert_offsets[e], rows = a.plan.expert_offsets[e + 1] - r0;
      if (rows == 0) continue;
      T* act = scratch<T, 0>(rows * F);  // [Te, F]
      T* h = a.h.data() + r0 * 2 * F;    // [Te, 2F]
      // gate_proj and up_proj are adjacent [F, D] blocks (ParamLayout order): one [2F, D] product.
      MOE_CHECK(o.expert_up[e] == o.expert_gate[e] + F * D);
      mm_nt<T>(a.xg.data() + r0 * D, p + o.expert_gate[e], h, rows, 2 * F, D, false);  // [Te, 2F]
      for (int64_t r = 0; r < rows; ++r) swiglu_forward<T>(act + r * F, h + r * 2 * F, h + r * 2 * F + F, F);
      mm_nt<T>(act, p + o.expert_down[e], a.y.data() + r0 * D, rows, D, F, false);  // [Te, D]
    }
  });
}

}  // namespace

template <typename T>
void moe_forward(MoeActs<T>& a, T* out, const T* x, const T* p, const LayerOffsets& o, const ModelConfig& c,
                 const BalanceOptions& bal, const float* bias, MoeShape s) {
  const int64_t n = s.batch * s.seq, D = c.d_model, F = c.d_ff_expert;
  const int E = c.n_expert, K = c.top_k;
  a.logits.resize(n * E);   // [N, E]
  a.scores.resize(n * E);   // [N, E]
  a.ids.resize(n * K);      // [N, K]
  a.raw.resize(n * K);      // [N, K]
  a.weights.resize(n * K);  // [N, K]
  par_mm_nt<T>(x, p + o.gate, a.logits.data(), n, E, D, false);
  if (a.router.n_expert != c.n_expert || a.router.top_k != c.top_k) a.router = c.router();  // once per layer
  MOE_CHECK(a.router.scoring == ScoringFunc::kSoftmax || a.router.scoring == ScoringFunc::kSigmoid);
  MOE_CHECK(a.router.selection != Selection::kSparseMixer);
  route(a, bias, n);
  if (normalized_aux_probs(a.router)) {
    a.aux_probs.resize(n * E);  // [N, E]
    for (int64_t t = 0; t < n; ++t) {
      const T* st = a.scores.data() + t * E;
      T sum = 0;
      for (int j = 0; j < E; ++j) sum += st[j];
      for (int j = 0; j < E; ++j) a.aux_probs[t * E + j] = st[j] / sum;
    }
  }

  DispatchOptions dopt;
  if (bal.capacity_factor > 0) {
    dopt.mode = CapacityMode::kCapacity;
    dopt.capacity_factor = bal.capacity_factor;
    dopt.drop_policy = bal.drop_policy;
  }
  std::vector<float> wf(a.weights.begin(), a.weights.end());  // the plan keeps f32 weights
  a.plan = make_routing_plan(a.ids.data(), wf.data(), n, K, E, dopt);
  const int64_t R = a.plan.n_rows();
  a.xg.resize(R * D);     // [R, D]
  a.h.resize(R * 2 * F);  // [R, 2F]
  a.y.resize(R * D);      // [R, D]
  parallel_items(R, D, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) std::copy_n(x + a.plan.token_of_row(r) * D, D, a.xg.data() + r * D);
  });
  expert_forward(a, p, o, c);
  parallel_items(n, K * D, [&](int64_t b, int64_t e) {  // combine
    for (int64_t t = b; t < e; ++t) {
      T* ot = out + t * D;
      std::fill(ot, ot + D, T(0));
      for (int k = 0; k < K; ++k) {
        const int32_t r = a.plan.slot_to_row[t * K + k];
        if (r < 0) continue;
        const T w = a.weights[t * K + k];
        const T* yr = a.y.data() + static_cast<int64_t>(r) * D;
        for (int64_t d = 0; d < D; ++d) ot[d] += w * yr[d];
      }
    }
  });

  a.aux = switch_aux(a, c, 0, n);
  a.seq_aux = 0;
  for (int64_t b = 0; b < s.batch; ++b) a.seq_aux += switch_aux(a, c, b * s.seq, (b + 1) * s.seq);
  a.seq_aux /= static_cast<double>(s.batch);
  double z = 0;
  for (int64_t t = 0; t < n; ++t) {
    const T* l = a.logits.data() + t * E;
    const double mx = *std::max_element(l, l + E);
    double sum = 0;
    for (int j = 0; j < E; ++j) sum += std::exp(l[j] - mx);
    const double lse = mx + std::log(sum);
    z += lse * lse;
  }
  a.z = z / static_cast<double>(n);
}

namespace {

// d(loss)/d(scores) [N, E] from the chosen weights' gradients dw [N, K] and the aux losses.
template <typename T>
void router_score_grad(std::vector<double>& ds, const std::vector<double>& dw, const MoeActs<T>& a,
                       const ModelConfig& c, MoeLossScale scale, MoeShape s) {
  const int E = c.n_expert, K = c.top_k;
  const int64_t n = s.batch * s.seq;
  const bool renorm = router_math::renormalizes(a.router);
  const double wscale = a.router.routed_scaling_factor, eps = 1e-20;
  for (int64_t t = 0; t < n; ++t) {
    double norm = 0, dot = 0;
    for (int k = 0; k < K; ++k) norm += a.raw[t * K + k];
    for (int k = 0; k < K; ++k) dot += dw[t * K + k] * a.weights[t * K + k];
    for (int k = 0; k < K; ++k) {
      // w_k = c r_k / (sum r + eps)  =>  dr_k = (c dw_k - sum_j dw_j w_j) / (sum r + eps)
      const double dr = renorm ? (wscale * dw[t * K + k] - dot) / (norm + eps) : wscale * dw[t * K + k];
      ds[t * E + a.ids[t * K + k]] += dr;
    }
  }
  // Sigmoid scores: the aux losses see P = s / sum(s); their gradient goes through that division.
  const bool normalized = normalized_aux_probs(a.router);
  std::vector<double> dprob_normalized(normalized ? n * E : 0, 0.0);  // [N, E]
  std::vector<double>& dprob = normalized ? dprob_normalized : ds;
  // Aux losses: only P_e = mean score is differentiable; f_e (counts) is not.
  auto add_aux = [&](int64_t t0, int64_t t1, double coef) {
    if (coef == 0) return;
    std::vector<double> f(E, 0.0);
    for (int64_t t = t0; t < t1; ++t)
      for (int k = 0; k < K; ++k) f[a.ids[t * K + k]] += 1.0;
    const double m = static_cast<double>(t1 - t0);
    for (int64_t t = t0; t < t1; ++t)
      for (int j = 0; j < E; ++j) dprob[t * E + j] += coef * E * (f[j] / (m * K)) / m;
  };
  add_aux(0, n, scale.aux);
  for (int64_t b = 0; b < s.batch; ++b) add_aux(b * s.seq, (b + 1) * s.seq, scale.seq_aux / s.batch);
  if (!normalized || (scale.aux == 0 && scale.seq_aux == 0)) return;
  for (int64_t t = 0; t < n; ++t) {  // p_j = s_j / S: ds_j += (dp_j - sum_i dp_i p_i) / S
    double sum = 0, dot = 0;
    for (int j = 0; j < E; ++j) sum += a.scores[t * E + j];
    for (int j = 0; j < E; ++j) dot += dprob[t * E + j] * a.aux_probs[t * E + j];
    for (int j = 0; j < E; ++j) ds[t * E + j] += (dprob[t * E + j] - dot) / sum;
  }
}

// One token's logit gradient under sigmoid scores: s' = s (1 - s); the z-loss term (zcoef =
// its coefficient / N) is 2 lse(l) softmax(l).
template <typename T>
void sigmoid_logit_grad(T* dl, const double* ds, const T* s, const T* l, int E, double zcoef) {
  double zg = 0, mx = 0, sum = 0;
  if (zcoef != 0) {
    mx = *std::max_element(l, l + E);
    for (int j = 0; j < E; ++j) sum += std::exp(l[j] - mx);
    zg = zcoef * 2.0 * (mx + std::log(sum));
  }
  for (int j = 0; j < E; ++j) {
    const double soft = zcoef != 0 ? std::exp(l[j] - mx) / sum : 0.0;
    dl[j] = static_cast<T>(ds[j] * s[j] * (1.0 - s[j]) + zg * soft);
  }
}

template <typename T>
void expert_backward(T* dxg, const T* dy, T* dp, const MoeActs<T>& a, const T* p, const LayerOffsets& o,
                     const ModelConfig& c) {
  const int64_t D = c.d_model, F = c.d_ff_expert;
  for_experts(a.plan.n_rows() * D * F, c.n_expert, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) {
      const int64_t r0 = a.plan.expert_offsets[e], rows = a.plan.expert_offsets[e + 1] - r0;
      MOE_CHECK(o.expert_up[e] == o.expert_gate[e] + F * D);
      if (rows == 0) {  // the weight gradients are written, not accumulated (moe_block.h)
        std::fill_n(dp + o.expert_gate[e], 2 * F * D, T(0));
        std::fill_n(dp + o.expert_down[e], D * F, T(0));
        continue;
      }
      T* dact = scratch<T, 1>(rows * F);    // [Te, F]
      T* act = scratch<T, 2>(rows * F);     // [Te, F] silu(gate) * up, recomputed by the SwiGLU backward
      T* dh = scratch<T, 3>(rows * 2 * F);  // [Te, 2F]: d(gate) | d(up) of each row
      const T* dye = dy + r0 * D;
      mm_nn<T>(dye, p + o.expert_down[e], dact, rows, F, D, false);
      for (int64_t r = 0; r < rows; ++r) {
        const T* h = a.h.data() + (r0 + r) * 2 * F;
        swiglu_backward<T>(dh + r * 2 * F, dh + r * 2 * F + F, dact + r * F, h, h + F, F, act + r * F);
      }
      mm_tn<T>(dye, act, dp + o.expert_down[e], D, F, rows, false);  // [D, F]
      // gate_proj and up_proj of an expert are adjacent [F, D] blocks (ParamLayout order), one [2F, D]
      // matrix: dx = dh . [Wg; Wu] and [dWg; dWu] += dh^T . xg are one product each (one pass, one pack).
      mm_nn<T>(dh, p + o.expert_gate[e], dxg + r0 * D, rows, D, 2 * F, false);           // [Te, D]
      mm_tn<T>(dh, a.xg.data() + r0 * D, dp + o.expert_gate[e], 2 * F, D, rows, false);  // [2F, D]
    }
  });
}

}  // namespace

template <typename T>
void moe_backward(T* dx, T* dp, const T* dout, const T* x, const MoeActs<T>& a, const T* p, const LayerOffsets& o,
                  const ModelConfig& c, MoeLossScale scale, MoeShape s) {
  const int64_t n = s.batch * s.seq, D = c.d_model, R = a.plan.n_rows();
  const int E = c.n_expert, K = c.top_k;
  // Combine backward: dy[r] = w[slot(r)] * dout[token(r)] (a dispatch), dw[slot] = <dout, y>.
  T* dy = scratch<T, 4>(R * D);        // [R, D], every row written below
  std::vector<double> dw(n * K, 0.0);  // [N, K]
  parallel_items(n, 2 * K * D, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      for (int k = 0; k < K; ++k) {
        const int32_t r = a.plan.slot_to_row[t * K + k];
        if (r < 0) continue;
        const T w = a.weights[t * K + k];
        double acc = 0;
        for (int64_t d = 0; d < D; ++d) {
          acc += static_cast<double>(dout[t * D + d]) * a.y[r * D + d];
          dy[r * D + d] = w * dout[t * D + d];
        }
        dw[t * K + k] = acc;
      }
    }
  });
  T* dxg = scratch<T, 5>(R * D);  // [R, D], every expert's rows written by expert_backward
  expert_backward(dxg, dy, dp, a, p, o, c);
  // Dispatch backward: a combine without weights, by token.
  parallel_items(n, K * D, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t)
      for (int k = 0; k < K; ++k) {
        const int32_t r = a.plan.slot_to_row[t * K + k];
        if (r < 0) continue;
        for (int64_t d = 0; d < D; ++d) dx[t * D + d] += dxg[static_cast<int64_t>(r) * D + d];
      }
  });
  // Router: scores -> logits through the softmax, plus the z-loss, then the gate Linear.
  std::vector<double> ds(n * E, 0.0);  // [N, E]
  router_score_grad(ds, dw, a, c, scale, s);
  std::vector<T> dl(n * E);  // [N, E]
  for (int64_t t = 0; t < n; ++t) {
    const T* st = a.scores.data() + t * E;
    if (a.router.scoring == ScoringFunc::kSigmoid) {
      sigmoid_logit_grad(dl.data() + t * E, ds.data() + t * E, st, a.logits.data() + t * E, E, scale.z / n);
      continue;
    }
    double dot = 0;
    for (int j = 0; j < E; ++j) dot += ds[t * E + j] * st[j];
    double zg = 0;
    if (scale.z != 0) {
      const T* l = a.logits.data() + t * E;
      const double mx = *std::max_element(l, l + E);
      double sum = 0;
      for (int j = 0; j < E; ++j) sum += std::exp(l[j] - mx);
      zg = scale.z * 2.0 * (mx + std::log(sum)) / static_cast<double>(n);
    }
    for (int j = 0; j < E; ++j) dl[t * E + j] = static_cast<T>(st[j] * (ds[t * E + j] - dot) + zg * st[j]);
  }
  par_mm_tn<T>(dl.data(), x, dp + o.gate, E, D, n, true);  // dWgate [E, D]
  par_mm_nn<T>(dl.data(), p + o.gate, dx, n, D, E, true);  // dx [N, D]
}

template void moe_forward<float>(MoeActs<float>&, float*, const float*, const float*, const LayerOffsets&,
                                 const ModelConfig&, const BalanceOptions&, const float*, MoeShape);
template void moe_forward<double>(MoeActs<double>&, double*, const double*, const double*, const LayerOffsets&,
                                  const ModelConfig&, const BalanceOptions&, const float*, MoeShape);
template void moe_backward<float>(float*, float*, const float*, const float*, const MoeActs<float>&, const float*,
                                  const LayerOffsets&, const ModelConfig&, MoeLossScale, MoeShape);
template void moe_backward<double>(double*, double*, const double*, const double*, const MoeActs<double>&,
                                   const double*, const LayerOffsets&, const ModelConfig&, MoeLossScale, MoeShape);

}  // namespace moe::train
