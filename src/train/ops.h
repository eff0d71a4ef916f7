// Forward and backward of every dense op of the MoE language model, side by side (llm.c style):
// embedding, RMSNorm, RoPE (Hugging Face rotate_half layout), causal attention, SwiGLU and
// softmax cross-entropy. Plain functions over row-major arrays, templated on float (training)
// and double (finite-difference gradient checks). Backward functions ACCUMULATE (+=) into
// their gradient outputs, so a tensor used twice simply receives both contributions.
#pragma once

#include <cstdint>

namespace moe::train {

// out[N, D] = wte[tokens[n]].
template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, int64_t n, int64_t d);
// dwte[V, D] += scatter of dout[N, D] by token.
template <typename T>
void embedding_backward(T* dwte, const T* dout, const int32_t* tokens, int64_t n, int64_t d);

// out[N, C] = x * rsqrt(mean(x^2) + eps) * w; rstd[N] saved for backward.
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t n, int64_t c, double eps);
// dx[N, C] += ..., dw[C] += ... (dw may be null: no weight gradient wanted).
template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, int64_t n, int64_t c);

// In place on x[N, n_head, head_dim]: position of row r is r % seq_len. Hugging Face layout:
// pairs (i, i + head_dim / 2), angle pos * theta^(-2i / head_dim).
template <typename T>
void rope_forward(T* x, int64_t n, int64_t n_head, int64_t head_dim, int64_t seq_len, double theta);
// In place on dx: the inverse rotation (a rotation's transpose).
template <typename T>
void rope_backward(T* dx, int64_t n, int64_t n_head, int64_t head_dim, int64_t seq_len, double theta);

struct AttentionShape {
  int64_t batch = 0, seq = 0;         // B sequences of S tokens (N = B * S rows)
  int64_t n_head = 0, n_kv_head = 0;  // H query heads share H / Hkv key/value heads (GQA)
  int64_t head_dim = 0;               // Dh
};
// out[N, H*Dh] = softmax(q k^T / sqrt(Dh), causal) v; q [N, H*Dh], k, v [N, Hkv*Dh];
// probs [B, H, S, S] saved for backward (only the causal part is defined: the float path leaves
// entries right of the diagonal unwritten past each 32-row block's end).
template <typename T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v, const AttentionShape& s);
// dq, dk, dv += gradients given dout [N, H*Dh].
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* probs,
                        const AttentionShape& s);

// out[n] = silu(gate[n]) * up[n] over n elements.
template <typename T>
void swiglu_forward(T* out, const T* gate, const T* up, int64_t n);
// dgate, dup = (overwritten) gradients given dout; out (when not null) = the forward's output again,
// recomputed from the same inputs, so a caller need not keep it.
template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n, T* out = nullptr);

// Mean cross-entropy of logits [N, V] against targets [N]; turns logits into dlogits (already
// divided by N and multiplied by dloss) when dlogits is non-null. Returns the mean loss.
template <typename T>
double cross_entropy_forward_backward(T* dlogits, const T* logits, const int32_t* targets, int64_t n, int64_t v,
                                      double dloss);

}  // namespace moe::train
