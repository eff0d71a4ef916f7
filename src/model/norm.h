// RMSNorm as Hugging Face computes it for the Llama-style families (Llama, Qwen, Mixtral, OLMoE,
// DeepSeek, gpt-oss, ...): y = w * (x * rsqrt(mean(x^2) + eps)), in f32 with a double sum; and the
// LayerNorm of PhiMoE / DBRX.
// Per-head QK-norm (Qwen3) is rows = T * H over head_dim; OLMoE's full-projection QK-norm and
// DeepSeek's latent norms (q_a_layernorm, kv_a_layernorm) are rows = T over their widths.
#pragma once

#include <cstdint>

namespace moe {

// x, y: [rows, dim] with row strides x_stride / y_stride (>= dim); y may alias x.
// weight: [dim], or null for no weight. Thread-safe; runs on the calling thread.
struct RmsNormShape {
  int64_t rows = 0, dim = 0;
  int64_t x_stride = 0, y_stride = 0;  // 0 = dim
};
void rms_norm(const float* x, const float* weight, float* y, const RmsNormShape& shape, float eps);

// Contiguous convenience form: x, y [rows, dim].
inline void rms_norm(const float* x, const float* weight, float* y, int64_t rows, int64_t dim, float eps) {
  rms_norm(x, weight, y, RmsNormShape{rows, dim, dim, dim}, eps);
}

// LayerNorm as PyTorch computes it (PhiMoE with biases, DBRX without): y = (x - mean) / sqrt(var + eps)
// * weight + bias, biased variance, a double sum. x, y: [rows, dim] contiguous (y may alias x);
// weight [dim]; bias [dim] or null.
void layer_norm(const float* x, const float* weight, const float* bias, float* y, int64_t rows, int64_t dim, float eps);

}  // namespace moe
