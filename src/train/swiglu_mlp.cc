// Dense SwiGLU MLP forward and backward (see swiglu_mlp.h), on the row-split matmuls.
#include "train/swiglu_mlp.h"

#include "train/linalg.h"
#include "train/ops.h"

namespace moe::train {

template <typename T>
void mlp_forward(MlpActs<T>& a, T* out, const T* x, const T* p, const MlpSpec& s, bool accumulate) {
  a.x = x;
  a.hg.resize(s.n * s.f);   // [N, F]
  a.hu.resize(s.n * s.f);   // [N, F]
  a.act.resize(s.n * s.f);  // [N, F]
  par_mm_nt<T>(x, p + s.gate, a.hg.data(), s.n, s.f, s.d, false);
  par_mm_nt<T>(x, p + s.up, a.hu.data(), s.n, s.f, s.d, false);
  swiglu_forward<T>(a.act.data(), a.hg.data(), a.hu.data(), s.n * s.f);
  par_mm_nt<T>(a.act.data(), p + s.down, out, s.n, s.d, s.f, accumulate);
}

template <typename T>
void mlp_backward(T* dx, T* dp, const T* dout, const MlpActs<T>& a, const T* p, const MlpSpec& s) {
  std::vector<T> dact(s.n * s.f), dhg(s.n * s.f), dhu(s.n * s.f);      // [N, F] x3
  par_mm_tn<T>(dout, a.act.data(), dp + s.down, s.d, s.f, s.n, true);  // dWdown [D, F]
  par_mm_nn<T>(dout, p + s.down, dact.data(), s.n, s.f, s.d, false);
  swiglu_backward<T>(dhg.data(), dhu.data(), dact.data(), a.hg.data(), a.hu.data(), s.n * s.f);
  par_mm_tn<T>(dhg.data(), a.x, dp + s.gate, s.f, s.d, s.n, true);  // dWgate [F, D]
  par_mm_tn<T>(dhu.data(), a.x, dp + s.up, s.f, s.d, s.n, true);    // dWup [F, D]
  par_mm_nn<T>(dhg.data(), p + s.gate, dx, s.n, s.d, s.f, true);
  par_mm_nn<T>(dhu.data(), p + s.up, dx, s.n, s.d, s.f, true);
}

template void mlp_forward<float>(MlpActs<float>&, float*, const float*, const float*, const MlpSpec&, bool);
template void mlp_forward<double>(MlpActs<double>&, double*, const double*, const double*, const MlpSpec&, bool);
template void mlp_backward<float>(float*, float*, const float*, const MlpActs<float>&, const float*, const MlpSpec&);
template void mlp_backward<double>(double*, double*, const double*, const MlpActs<double>&, const double*,
                                   const MlpSpec&);

}  // namespace moe::train
