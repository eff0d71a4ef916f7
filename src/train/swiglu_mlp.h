// A dense SwiGLU MLP, forward and backward side by side: DeepSeek-V3's shared experts (one MLP
// of width n_shared * F that every token goes through) and its dense first layers.
// out = down(silu(gate(x)) * up(x)); templated on float (training) and double (gradient checks).
#pragma once

#include <cstdint>
#include <vector>

namespace moe::train {

// Offsets of the three weights in the flat parameter array, and the shapes.
struct MlpSpec {
  int64_t gate = 0, up = 0, down = 0;  // gate, up [F, D]; down [D, F]
  int64_t n = 0, d = 0, f = 0;         // N tokens, D model dim, F hidden width
};

template <typename T>
struct MlpActs {
  const T* x = nullptr;        // [N, D] input, owned by the caller and kept until backward
  std::vector<T> hg, hu, act;  // [N, F] gate, up, silu(gate) * up
};

// out[N, D] = (or +=, with accumulate) the MLP of x[N, D].
template <typename T>
void mlp_forward(MlpActs<T>& a, T* out, const T* x, const T* p, const MlpSpec& s, bool accumulate);

// dx[N, D] += and dp (flat gradients) += given dout[N, D], for the last forward.
template <typename T>
void mlp_backward(T* dx, T* dp, const T* dout, const MlpActs<T>& a, const T* p, const MlpSpec& s);

}  // namespace moe::train
