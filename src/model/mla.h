// Multi-head latent attention (DeepSeek-V2/V3, Kimi-K2) over a latent KV cache. Each cached
// row is [c_kv (kv_lora_rank, after kv_a_layernorm) | k_rope (rope_dim, after RoPE)]; the
// per-head keys and values come from kv_b_proj [H * (nope + v), r] = per head [W_uk; W_uv].
// Naive (prefill): expand k_nope and v for every cached row, then attention.
// Absorbed (decode): q_lat = W_uk^T q_nope, scores = q_lat . c + q_rope . k_rope, out_lat =
// sum p c, out = W_uv out_lat: no per-head keys are ever built. Both give the same numbers.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/matmul.h"
#include "model/attention.h"

namespace moe {

struct MlaShape {
  int64_t n_head = 0;        // H
  int64_t nope_dim = 0;      // qk_nope_head_dim
  int64_t rope_dim = 0;      // qk_rope_head_dim
  int64_t v_dim = 0;         // v_head_dim
  int64_t kv_lora_rank = 0;  // r
  int64_t latent_row() const { return kv_lora_rank + rope_dim; }
  int64_t q_dim() const { return nope_dim + rope_dim; }
};

struct MlaTensors {
  const float* q = nullptr;         // [T, H, nope + rope], rope part already rotated
  const void* latent = nullptr;     // [S, r + rope]: the cache including the T new tokens last
  float* out = nullptr;             // [T, H, Dv]
  int64_t n_tokens = 0;             // T
  int64_t n_keys = 0;               // S
  DType latent_type = DType::kF32;  // kF32, or a 16-bit cache's kF16 / kBF16
};

// Not thread-safe (reuses its scratch); one object per layer or per thread.
class MlaAttention {
 public:
  // kv_b: [H * (nope + v), r], f32 or bf16. Copies W_uk transposed to f32 for the absorbed path.
  MlaAttention(const MlaShape& shape, const WeightView& kv_b);
  // options.scale: (nope + rope)^-0.5, times mscale^2 under YaRN; no window, no sinks.
  void forward_naive(const MlaTensors& t, const AttentionOptions& options);
  void forward_absorbed(const MlaTensors& t, const AttentionOptions& options);
  const MlaShape& shape() const { return shape_; }

 private:
  MlaShape shape_;
  WeightView kv_b_;
  std::vector<float> w_uk_t_;  // [H, r, nope]
  std::vector<float> kv_, k_, v_, q_cat_, out_lat_, latent_f32_;
};

}  // namespace moe
