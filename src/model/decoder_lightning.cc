// MiniMax lightning attention (transformers' MiniMaxLightningAttention) in its recurrent form.
// Per head h with decay lambda_h = exp(-slope_h): S_t = lambda_h S_{t-1} + k_t^T v_t and o_t = q_t S_t
// (no softmax, no score scaling), q, k, v = act(qkv_proj(x)) split per head as [q | k | v]. The
// outputs of all heads are RMS-normalized together (eps 1e-6: the class builds the norm without
// rms_norm_eps), gated by sigmoid(output_gate(x)) and projected by out_proj. transformers' prefill
// evaluates the same sums block by block (intra-block decayed scores plus the decayed state of the
// earlier blocks); both equal sum_{s <= t} lambda^(t - s) (q_t . k_s) v_s, so prefill and decode
// here share the recurrence. slope_h = (2^(-8 / H))^(h + 1) x (1 - layer / (L - 1 + 1e-5) + 1e-5).
#include <algorithm>
#include <cmath>

#include "model/decoder.h"
#include "model/decoder_layer.h"
#include "model/linear.h"
#include "model/norm.h"
#include "runtime/thread_pool.h"
#include "util/error.h"

namespace moe {

void Decoder::load_lightning(Layer& L, const std::string& a, int64_t li) {
  WeightStore& s = *store_;
  const int64_t H = spec_.n_head, W = H * spec_.head_dim;
  L.lightning = true;
  L.qkv = panels(a + "qkv_proj.weight", s.matrix(a + "qkv_proj.weight"), 3 * W);
  L.gate_attn = panels(a + "output_gate.weight", s.matrix(a + "output_gate.weight"), W);
  L.o = panels(a + "out_proj.weight", s.matrix(a + "out_proj.weight"), spec_.d_model);
  L.attn_norm = s.f32(a + "norm.weight");
  const double base = 1.0 / std::pow(2.0, 8.0 / static_cast<double>(H));
  const double factor = 1.0 - static_cast<double>(li) / (static_cast<double>(spec_.n_layer) - 1.0 + 1e-5) + 1e-5;
  L.decay.resize(static_cast<size_t>(H));
  for (int64_t h = 0; h < H; ++h)
    L.decay[size_t(h)] = static_cast<float>(std::exp(-std::pow(base, static_cast<double>(h + 1)) * factor));
}

void Decoder::attention_lightning(Layer& L, int64_t li, const float* x, const SequenceChunk* chunks, int64_t n_chunks,
                                  const int64_t* rows, float* out) {
  const int64_t D = spec_.d_model, H = spec_.n_head, Dh = spec_.head_dim, W = H * Dh, T = rows[n_chunks];
  scratch_q_.resize(T * 3 * W);  // [T, H, 3 Dh]: each head's q, k, v
  scratch_o_.resize(T * W);      // [T, H, Dh]
  scratch_g_.resize(T * W);      // [T, H Dh] output gate
  float *qkv = scratch_q_.data(), *o = scratch_o_.data(), *g = scratch_g_.data();
  linear_forward(x, L.qkv, nullptr, qkv, LinearShape{T, 3 * W, L.qkv.ld});
  const Activation act = spec_.activation;  // hidden_act on q, k and v alike
  for (int64_t i = 0; i < T * 3 * W; ++i) {
    const float z = qkv[i];
    if (act == Activation::kSilu) {
      qkv[i] = z / (1.0f + std::exp(-z));
    } else if (act == Activation::kGelu) {
      qkv[i] = 0.5f * z * (1.0f + std::erf(z * 0.70710678f));
    } else {  // gelu_pytorch_tanh
      qkv[i] = 0.5f * z * (1.0f + std::tanh(0.7978845608f * (z + 0.044715f * z * z * z)));
    }
  }
  for (int64_t c = 0; c < n_chunks; ++c) {  // each sequence runs its own recurrence over its rows
    KvCache& cache = *chunks[c].cache;
    float* state = cache.state(li);  // [H, Dh (key), Dh (value)]
    if (cache.length() == 0) std::fill_n(state, H * Dh * Dh, 0.0f);
    const int64_t r0 = rows[c], r1 = rows[c + 1];
    thread_pool().parallel_for(H, [&](int64_t h0, int64_t h1, int64_t) {
      for (int64_t h = h0; h < h1; ++h) {
        float* S = state + h * Dh * Dh;
        const float lambda = L.decay[size_t(h)];
        for (int64_t t = r0; t < r1; ++t) {
          const float *q = qkv + (t * H + h) * 3 * Dh, *k = q + Dh, *v = q + 2 * Dh;
          float* y = o + (t * H + h) * Dh;
          std::fill_n(y, Dh, 0.0f);
          for (int64_t i = 0; i < Dh; ++i) {
            float* Si = S + i * Dh;
            for (int64_t j = 0; j < Dh; ++j) Si[j] = lambda * Si[j] + k[i] * v[j];
            for (int64_t j = 0; j < Dh; ++j) y[j] += q[i] * Si[j];
          }
        }
      }
    });
  }
  rms_norm(o, L.attn_norm, o, T, W, 1e-6f);
  linear_forward(x, L.gate_attn, nullptr, g, LinearShape{T, W, L.gate_attn.ld});
  for (int64_t i = 0; i < T * W; ++i) o[i] *= 1.0f / (1.0f + std::exp(-g[i]));
  linear_forward(o, L.o, nullptr, out, LinearShape{T, D, L.o.ld});
}

}  // namespace moe
