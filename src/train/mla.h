// DeepSeek-V3 multi-head latent attention for training, forward and backward side by side:
// q = q_proj(x) (or q_b(rmsnorm(q_a(x))) with q-LoRA); [c | k_pe] = kv_a_proj_with_mqa(x);
// [k_nope | v] = kv_b(rmsnorm(c)); decoupled RoPE on q_pe and the shared k_pe in DeepSeek's
// interleaved-pair layout; causal softmax attention with scale 1/sqrt(nope + rope); o_proj.
// Templated on float (training) and double (finite-difference gradient checks).
#pragma once

#include <cstdint>
#include <vector>

#include "train/model_config.h"

namespace moe::train {

// Everything the MLA forward keeps for its backward. N = batch * seq tokens.
template <typename T>
struct MlaActs {
  std::vector<T> x;                 // [N, D] input (the normed residual)
  std::vector<T> qa, qa_rstd, qan;  // q-LoRA: [N, qr], [N], [N, qr]
  std::vector<T> q;                 // [N, H, nope + rope], the rope part rotated
  std::vector<T> c, c_rstd, cn;     // [N, r] latent, [N], [N, r] normed latent
  std::vector<T> kpe;               // [N, rope] shared rotated key part
  std::vector<T> kv;                // [N, H, nope + v]
  std::vector<T> probs;             // [B, H, S, S]
  std::vector<T> att;               // [N, H * v]
};

// One layer's weights and the batch shape.
struct MlaContext {
  const ModelConfig& c;
  const LayerOffsets& o;
  int64_t batch = 0, seq = 0;
};

// out[N, D] = o_proj(attention(x)) (overwritten); p: the flat parameters.
template <typename T>
void mla_forward(MlaActs<T>& a, T* out, const T* x, const T* p, const MlaContext& ctx);

// dx[N, D] += and dp (flat gradients) += given dout[N, D], for the last forward.
template <typename T>
void mla_backward(T* dx, T* dp, const T* dout, const MlaActs<T>& a, const T* p, const MlaContext& ctx);

// Rows of n_vec vectors of `stride` elements whose first `dim` get RoPE; row r is at position r % seq.
struct RopeRows {
  int64_t n = 0, n_vec = 1, stride = 0, dim = 0, seq = 1;
};
// In place: pairs (2i, 2i + 1) rotated by pos * theta^(-2i / dim), DeepSeek's interleaved layout
// (HF de-interleaves, then rotates halves: the same dot products). sign -1: the inverse rotation.
template <typename T>
void rope_interleaved(T* x, const RopeRows& rows, double theta, double sign);

}  // namespace moe::train
