// The DeepSeek-V3 layer of the training model (see model.h): pre-norm MLA attention, then
// either a dense SwiGLU MLP (the first first_k_dense_replace layers) or the MoE block with
// sigmoid scores + e_score_correction_bias for selection, plus the shared experts.
#include "train/model.h"

#include "train/ops.h"

namespace moe::train {

template <typename T>
void TrainModel<T>::layer_forward_v3(int l, const T* x, T* out) {
  const ModelConfig& c = config_;
  const LayerOffsets& o = layout_.layers[l];
  LayerActs& a = acts_[l];
  const int64_t N = batch_ * seq_, D = c.d_model;
  const T* p = params.data();
  a.x.assign(x, x + N * D);  // [N, D]
  a.ln1.resize(N * D);       // [N, D]
  a.rstd1.resize(N);         // [N]
  rmsnorm_forward<T>(a.ln1.data(), a.rstd1.data(), x, p + o.ln1, N, D, c.rms_eps);
  a.mid.resize(N * D);  // [N, D] residual + attention
  mla_forward<T>(a.mla, a.mid.data(), a.ln1.data(), p, MlaContext{c, o, batch_, seq_});
  for (int64_t i = 0; i < N * D; ++i) a.mid[i] += x[i];
  a.ln2.resize(N * D);  // [N, D]
  a.rstd2.resize(N);    // [N]
  rmsnorm_forward<T>(a.ln2.data(), a.rstd2.data(), a.mid.data(), p + o.ln2, N, D, c.rms_eps);
  a.moe_out.resize(N * D);  // [N, D]
  if (!o.moe) {
    const MlpSpec dense{o.dense_gate, o.dense_up, o.dense_down, N, D, c.d_ff_dense};
    mlp_forward<T>(a.mlp, a.moe_out.data(), a.ln2.data(), p, dense, false);
  } else {
    // The correction bias always takes part in the selection (zero until the bias update moves it).
    moe_forward<T>(a.moe, a.moe_out.data(), a.ln2.data(), p, o, c, balance_, router_bias[l].data(),
                   MoeShape{batch_, seq_});
    if (c.n_shared_expert > 0) {
      const MlpSpec shared{
          o.shared_gate, o.shared_up, o.shared_down, N, D, static_cast<int64_t>(c.d_ff_expert) * c.n_shared_expert};
      mlp_forward<T>(a.mlp, a.moe_out.data(), a.ln2.data(), p, shared, true);
    }
  }
  for (int64_t i = 0; i < N * D; ++i) out[i] = a.mid[i] + a.moe_out[i];
}

template <typename T>
void TrainModel<T>::layer_backward_v3(int l, T* dres) {
  const ModelConfig& c = config_;
  const LayerOffsets& o = layout_.layers[l];
  const LayerActs& a = acts_[l];
  const int64_t N = batch_ * seq_, D = c.d_model;
  const T* p = params.data();
  T* dp = grads.data();
  // out = mid + ffn(ln2(mid)): dmid = dres + ln2'(ffn'(dres)).
  std::vector<T> dln2(N * D, T(0));  // [N, D]
  if (!o.moe) {
    const MlpSpec dense{o.dense_gate, o.dense_up, o.dense_down, N, D, c.d_ff_dense};
    mlp_backward<T>(dln2.data(), dp, dres, a.mlp, p, dense);
  } else {
    const double m = c.n_moe_layers();
    const MoeLossScale scale{balance_.aux_coef / m, balance_.seq_aux_coef / m, balance_.z_coef / m};
    moe_backward<T>(dln2.data(), dp, dres, a.ln2.data(), a.moe, p, o, c, scale, MoeShape{batch_, seq_});
    if (c.n_shared_expert > 0) {
      const MlpSpec shared{
          o.shared_gate, o.shared_up, o.shared_down, N, D, static_cast<int64_t>(c.d_ff_expert) * c.n_shared_expert};
      mlp_backward<T>(dln2.data(), dp, dres, a.mlp, p, shared);
    }
  }
  rmsnorm_backward<T>(dres, dp + o.ln2, dln2.data(), a.mid.data(), p + o.ln2, a.rstd2.data(), N, D);
  // mid = x + mla(ln1(x))
  std::vector<T> dln1(N * D, T(0));  // [N, D]
  mla_backward<T>(dln1.data(), dp, dres, a.mla, p, MlaContext{c, o, batch_, seq_});
  rmsnorm_backward<T>(dres, dp + o.ln1, dln1.data(), a.x.data(), p + o.ln1, a.rstd1.data(), N, D);
}

template void TrainModel<float>::layer_forward_v3(int, const float*, float*);
template void TrainModel<double>::layer_forward_v3(int, const double*, double*);
template void TrainModel<float>::layer_backward_v3(int, float*);
template void TrainModel<double>::layer_backward_v3(int, double*);

}  // namespace moe::train
