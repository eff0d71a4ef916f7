// Fused-layout conversions for expert weights (see weight_layout.h).
#include "moe/weight_layout.h"

namespace moe {

void split_interleaved_gate_up(const float* gate_up, const float* gate_up_bias, int n_expert, int64_t d_model,
                               int64_t d_ff, float* gate, float* up, float* gate_bias, float* up_bias) {
  for (int e = 0; e < n_expert; ++e) {
    const float* src = gate_up + e * d_model * 2 * d_ff;  // [D, 2F]
    float* g = gate + e * d_ff * d_model;                 // [F, D]
    float* u = up + e * d_ff * d_model;                   // [F, D]
    for (int64_t i = 0; i < d_model; ++i) {
      for (int64_t f = 0; f < d_ff; ++f) {
        g[f * d_model + i] = src[i * 2 * d_ff + 2 * f];
        u[f * d_model + i] = src[i * 2 * d_ff + 2 * f + 1];
      }
    }
    if (!gate_up_bias) continue;
    for (int64_t f = 0; f < d_ff; ++f) {
      gate_bias[e * d_ff + f] = gate_up_bias[e * 2 * d_ff + 2 * f];
      up_bias[e * d_ff + f] = gate_up_bias[e * 2 * d_ff + 2 * f + 1];
    }
  }
}

void transpose_experts(const float* src, int n_expert, int64_t rows, int64_t cols, float* dst) {
  for (int e = 0; e < n_expert; ++e) {
    const float* s = src + e * rows * cols;  // [R, C]
    float* d = dst + e * rows * cols;        // [C, R]
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) d[c * rows + r] = s[r * cols + c];
    }
  }
}

}  // namespace moe
