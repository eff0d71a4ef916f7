// The MoE language model's forward and backward, top to bottom (see model.h).
// N = B * S tokens; D model dim; H, Hkv heads of Dh; E experts, K per token; V vocab.
#include "train/model.h"

#include <algorithm>
#include <cmath>

#include "train/linalg.h"
#include "train/ops.h"
#include "train/rng.h"
#include "util/check.h"

namespace moe::train {

namespace {

// QK-norm of q or k [N, heads * dh]: per head (rows of dh, weight [dh]: Qwen3-MoE), over the whole
// projection (rows of heads * dh, weight [heads * dh]: OLMoE), or none (a copy: Mixtral). rstd: [N * heads].
template <typename T>
void qk_norm_forward(QkNorm mode, T* out, T* rstd, const T* x, const T* w, int64_t n, int64_t heads, int64_t dh,
                     double eps) {
  if (mode == QkNorm::kNone) {
    std::copy(x, x + n * heads * dh, out);
    return;
  }
  const bool full = mode == QkNorm::kFullWidth;
  rmsnorm_forward<T>(out, rstd, x, w, full ? n : n * heads, full ? heads * dh : dh, eps);
}

// dx += the gradient through qk_norm_forward given dout; dw += its weight gradient.
template <typename T>
void qk_norm_backward(QkNorm mode, T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, int64_t n,
                      int64_t heads, int64_t dh) {
  if (mode == QkNorm::kNone) {
    for (int64_t i = 0; i < n * heads * dh; ++i) dx[i] += dout[i];
    return;
  }
  const bool full = mode == QkNorm::kFullWidth;
  rmsnorm_backward<T>(dx, dw, dout, x, w, rstd, full ? n : n * heads, full ? heads * dh : dh);
}

}  // namespace

template <typename T>
TrainModel<T>::TrainModel(const ModelConfig& config, const BalanceOptions& balance)
    : config_(config), layout_(ParamLayout::build(config)), balance_(balance) {
  params.assign(layout_.total, T(0));
  grads.assign(layout_.total, T(0));
  router_bias.assign(config_.n_layer, std::vector<float>(config_.n_expert, 0.0f));
  acts_.resize(config_.n_layer);
  std::vector<std::pair<int64_t, int64_t>> written;  // routed expert weights, [offset, end)
  for (const LayerOffsets& o : layout_.layers)
    for (size_t e = 0; e < o.expert_gate.size(); ++e) {
      const int64_t fd = config_.d_ff_expert * config_.d_model;
      written.insert(written.end(), {{o.expert_gate[e], o.expert_gate[e] + fd},
                                     {o.expert_up[e], o.expert_up[e] + fd},
                                     {o.expert_down[e], o.expert_down[e] + fd}});
    }
  std::sort(written.begin(), written.end());
  int64_t at = 0;
  for (const auto& [b, e] : written) {
    if (b > at) accumulated_.emplace_back(at, b);
    at = std::max(at, e);
  }
  if (at < layout_.total) accumulated_.emplace_back(at, layout_.total);
}

template <typename T>
void TrainModel<T>::init_params(uint64_t seed) {
  Rng rng(seed);
  for (const auto& t : layout_.tensors) {
    T* w = params.data() + t.offset;
    if (t.shape.size() == 1) {
      std::fill(w, w + t.numel, T(1));
    } else {
      for (int64_t i = 0; i < t.numel; ++i) w[i] = static_cast<T>(0.02 * rng.normal());
    }
  }
}

template <typename T>
void TrainModel<T>::zero_grad() {
  for (const auto& [b, e] : accumulated_) std::fill(grads.begin() + b, grads.begin() + e, T(0));
}

template <typename T>
void TrainModel<T>::layer_forward(int l, const T* x, T* out) {
  if (config_.is_mla()) return layer_forward_v3(l, x, out);
  const ModelConfig& c = config_;
  const LayerOffsets& o = layout_.layers[l];
  LayerActs& a = acts_[l];
  const int64_t N = batch_ * seq_, D = c.d_model, Dh = c.head_dim;
  const int64_t QD = c.n_head * Dh, KD = c.n_kv_head * Dh;
  const T* p = params.data();
  a.x.assign(x, x + N * D);  // [N, D]
  a.ln1.resize(N * D);       // [N, D]
  a.rstd1.resize(N);         // [N]
  rmsnorm_forward<T>(a.ln1.data(), a.rstd1.data(), x, p + o.ln1, N, D, c.rms_eps);
  a.q.resize(N * QD);  // [N, H*Dh]
  a.k.resize(N * KD);  // [N, Hkv*Dh]
  a.v.resize(N * KD);  // [N, Hkv*Dh]
  par_mm_nt<T>(a.ln1.data(), p + o.q, a.q.data(), N, QD, D, false);
  par_mm_nt<T>(a.ln1.data(), p + o.k, a.k.data(), N, KD, D, false);
  par_mm_nt<T>(a.ln1.data(), p + o.v, a.v.data(), N, KD, D, false);
  a.qn.resize(N * QD);               // [N, H, Dh]
  a.kn.resize(N * KD);               // [N, Hkv, Dh]
  a.q_rstd.resize(N * c.n_head);     // [N, H]
  a.k_rstd.resize(N * c.n_kv_head);  // [N, Hkv]
  qk_norm_forward<T>(c.qk_norm(), a.qn.data(), a.q_rstd.data(), a.q.data(), p + o.q_norm, N, c.n_head, Dh, c.rms_eps);
  qk_norm_forward<T>(c.qk_norm(), a.kn.data(), a.k_rstd.data(), a.k.data(), p + o.k_norm, N, c.n_kv_head, Dh,
                     c.rms_eps);
  rope_forward<T>(a.qn.data(), N, c.n_head, Dh, seq_, c.rope_theta);
  rope_forward<T>(a.kn.data(), N, c.n_kv_head, Dh, seq_, c.rope_theta);
  const AttentionShape as{batch_, seq_, c.n_head, c.n_kv_head, Dh};
  a.probs.resize(batch_ * c.n_head * seq_ * seq_);  // [B, H, S, S]
  a.att.resize(N * QD);                             // [N, H*Dh]
  attention_forward<T>(a.att.data(), a.probs.data(), a.qn.data(), a.kn.data(), a.v.data(), as);
  a.mid.assign(x, x + N * D);  // [N, D] residual + o_proj(att)
  par_mm_nt<T>(a.att.data(), p + o.o, a.mid.data(), N, D, QD, true);
  a.ln2.resize(N * D);  // [N, D]
  a.rstd2.resize(N);    // [N]
  rmsnorm_forward<T>(a.ln2.data(), a.rstd2.data(), a.mid.data(), p + o.ln2, N, D, c.rms_eps);
  a.moe_out.resize(N * D);  // [N, D]
  const float* bias = balance_.bias_rate > 0 ? router_bias[l].data() : nullptr;
  moe_forward<T>(a.moe, a.moe_out.data(), a.ln2.data(), p, o, c, balance_, bias, MoeShape{batch_, seq_});
  for (int64_t i = 0; i < N * D; ++i) out[i] = a.mid[i] + a.moe_out[i];
}

template <typename T>
LossParts TrainModel<T>::forward(const int32_t* tokens, const int32_t* targets, int64_t batch, int64_t seq) {
  const ModelConfig& c = config_;
  MOE_CHECK(seq <= c.max_seq);
  batch_ = batch;
  seq_ = seq;
  const int64_t N = batch * seq, D = c.d_model, V = c.vocab;
  tokens_.assign(tokens, tokens + N);
  targets_.assign(targets, targets + N);
  std::vector<T> x(N * D), y(N * D);  // [N, D] residual stream
  embedding_forward<T>(x.data(), tokens, params.data() + layout_.wte, N, D);
  LossParts loss;
  for (int l = 0; l < c.n_layer; ++l) {
    layer_forward(l, x.data(), y.data());
    std::swap(x, y);
    if (!c.is_moe_layer(l)) continue;
    loss.aux += acts_[l].moe.aux / c.n_moe_layers();
    loss.seq_aux += acts_[l].moe.seq_aux / c.n_moe_layers();
    loss.z += acts_[l].moe.z / c.n_moe_layers();
  }
  resid_out_ = x;      // [N, D]
  lnf_.resize(N * D);  // [N, D]
  rstdf_.resize(N);    // [N]
  rmsnorm_forward<T>(lnf_.data(), rstdf_.data(), x.data(), params.data() + layout_.final_norm, N, D, c.rms_eps);
  logits_.resize(N * V);  // [N, V]
  par_mm_nt<T>(lnf_.data(), params.data() + layout_.lm_head, logits_.data(), N, V, D, false);
  loss.ce = cross_entropy_forward_backward<T>(nullptr, logits_.data(), targets, N, V, 0.0);
  loss.total = loss.ce + balance_.aux_coef * loss.aux + balance_.seq_aux_coef * loss.seq_aux + balance_.z_coef * loss.z;
  return loss;
}

template <typename T>
double TrainModel<T>::eval_loss(const int32_t* tokens, const int32_t* targets, int64_t batch, int64_t seq) {
  return forward(tokens, targets, batch, seq).ce;
}

template <typename T>
void TrainModel<T>::layer_backward(int l, T* dres) {
  if (config_.is_mla()) return layer_backward_v3(l, dres);
  const ModelConfig& c = config_;
  const LayerOffsets& o = layout_.layers[l];
  const LayerActs& a = acts_[l];
  const int64_t N = batch_ * seq_, D = c.d_model, Dh = c.head_dim;
  const int64_t QD = c.n_head * Dh, KD = c.n_kv_head * Dh;
  const T* p = params.data();
  T* dp = grads.data();
  // out = mid + moe(ln2(mid)): dmid = dres + ln2'(moe'(dres)).
  const MoeLossScale scale{balance_.aux_coef / c.n_layer, balance_.seq_aux_coef / c.n_layer,
                           balance_.z_coef / c.n_layer};
  std::vector<T> dln2(N * D, T(0));  // [N, D]
  moe_backward<T>(dln2.data(), dp, dres, a.ln2.data(), a.moe, p, o, c, scale, MoeShape{batch_, seq_});
  rmsnorm_backward<T>(dres, dp + o.ln2, dln2.data(), a.mid.data(), p + o.ln2, a.rstd2.data(), N, D);
  // mid = x + att . Wo^T
  par_mm_tn<T>(dres, a.att.data(), dp + o.o, D, QD, N, true);  // dWo [D, H*Dh]
  std::vector<T> datt(N * QD);                                 // [N, H*Dh]
  par_mm_nn<T>(dres, p + o.o, datt.data(), N, QD, D, false);
  std::vector<T> dqn(N * QD, T(0)), dkn(N * KD, T(0)), dv(N * KD, T(0));  // [N, H*Dh], [N, Hkv*Dh] x2
  const AttentionShape as{batch_, seq_, c.n_head, c.n_kv_head, Dh};
  attention_backward<T>(dqn.data(), dkn.data(), dv.data(), datt.data(), a.qn.data(), a.kn.data(), a.v.data(),
                        a.probs.data(), as);
  rope_backward<T>(dqn.data(), N, c.n_head, Dh, seq_, c.rope_theta);
  rope_backward<T>(dkn.data(), N, c.n_kv_head, Dh, seq_, c.rope_theta);
  std::vector<T> dq(N * QD, T(0)), dk(N * KD, T(0));  // [N, H*Dh], [N, Hkv*Dh]
  qk_norm_backward<T>(c.qk_norm(), dq.data(), dp + o.q_norm, dqn.data(), a.q.data(), p + o.q_norm, a.q_rstd.data(), N,
                      c.n_head, Dh);
  qk_norm_backward<T>(c.qk_norm(), dk.data(), dp + o.k_norm, dkn.data(), a.k.data(), p + o.k_norm, a.k_rstd.data(), N,
                      c.n_kv_head, Dh);
  par_mm_tn<T>(dq.data(), a.ln1.data(), dp + o.q, QD, D, N, true);  // dWq [H*Dh, D]
  par_mm_tn<T>(dk.data(), a.ln1.data(), dp + o.k, KD, D, N, true);  // dWk [Hkv*Dh, D]
  par_mm_tn<T>(dv.data(), a.ln1.data(), dp + o.v, KD, D, N, true);  // dWv [Hkv*Dh, D]
  std::vector<T> dln1(N * D);                                       // [N, D]
  par_mm_nn<T>(dq.data(), p + o.q, dln1.data(), N, D, QD, false);
  par_mm_nn<T>(dk.data(), p + o.k, dln1.data(), N, D, KD, true);
  par_mm_nn<T>(dv.data(), p + o.v, dln1.data(), N, D, KD, true);
  rmsnorm_backward<T>(dres, dp + o.ln1, dln1.data(), a.x.data(), p + o.ln1, a.rstd1.data(), N, D);
}

template <typename T>
void TrainModel<T>::backward() {
  const ModelConfig& c = config_;
  const int64_t N = batch_ * seq_, D = c.d_model, V = c.vocab;
  T* dp = grads.data();
  std::vector<T> dlogits(N * V);  // [N, V]
  cross_entropy_forward_backward<T>(dlogits.data(), logits_.data(), targets_.data(), N, V, 1.0);
  par_mm_tn<T>(dlogits.data(), lnf_.data(), dp + layout_.lm_head, V, D, N, true);  // dWlm [V, D]
  std::vector<T> dlnf(N * D);                                                      // [N, D]
  par_mm_nn<T>(dlogits.data(), params.data() + layout_.lm_head, dlnf.data(), N, D, V, false);
  std::vector<T> dres(N * D, T(0));  // [N, D]
  rmsnorm_backward<T>(dres.data(), dp + layout_.final_norm, dlnf.data(), resid_out_.data(),
                      params.data() + layout_.final_norm, rstdf_.data(), N, D);
  for (int l = c.n_layer - 1; l >= 0; --l) layer_backward(l, dres.data());
  embedding_backward<T>(dp + layout_.wte, dres.data(), tokens_.data(), N, D);
}

template <typename T>
void TrainModel<T>::update_router_bias(double rate) {
  for (int l = 0; l < config_.n_layer; ++l) {
    if (!config_.is_moe_layer(l)) continue;  // a dense layer has no router
    const auto& routed = acts_[l].moe.plan.routed_counts;
    double mean = 0;
    for (int64_t r : routed) mean += static_cast<double>(r) / config_.n_expert;
    for (int e = 0; e < config_.n_expert; ++e) {
      const double diff = mean - static_cast<double>(routed[e]);
      router_bias[l][e] += static_cast<float>(rate * ((diff > 0) - (diff < 0)));
    }
  }
}

template <typename T>
std::vector<LayerLoad> TrainModel<T>::layer_loads() const {
  std::vector<LayerLoad> out;
  for (const auto& a : acts_) {
    LayerLoad l;
    l.routed = a.moe.plan.routed_counts;
    l.dropped = static_cast<int64_t>(a.moe.plan.dropped_slots.size());
    l.slots = a.moe.plan.n_slots();
    out.push_back(std::move(l));
  }
  return out;
}

template class TrainModel<float>;
template class TrainModel<double>;

}  // namespace moe::train
