// Fused-layout conversions for expert weights (see weight_layout.h).
#include "moe/weight_layout.h"

namespace moe {

void deinterleave_gate_up(const float* gate_up, int64_t d_model, int64_t d_ff, GateUpHalf half, float* out) {
  for (int64_t i = 0; i < d_model; ++i) {       // the source's rows in order (a checkpoint's pages read once)
    const float* row = gate_up + i * 2 * d_ff;  // [2F]
    for (int64_t f = 0; f < d_ff; ++f) out[f * d_model + i] = row[interleaved_gate_up_index(f, half)];
  }
}

void deinterleave_gate_up_bias(const float* gate_up_bias, int64_t d_ff, GateUpHalf half, float* out) {
  for (int64_t f = 0; f < d_ff; ++f) out[f] = gate_up_bias[interleaved_gate_up_index(f, half)];
}

void split_interleaved_gate_up(const float* gate_up, const float* gate_up_bias, int n_expert, int64_t d_model,
                               int64_t d_ff, float* gate, float* up, float* gate_bias, float* up_bias) {
  for (int e = 0; e < n_expert; ++e) {
    const float* src = gate_up + e * d_model * 2 * d_ff;  // [D, 2F]
    deinterleave_gate_up(src, d_model, d_ff, GateUpHalf::kGate, gate + e * d_ff * d_model);
    deinterleave_gate_up(src, d_model, d_ff, GateUpHalf::kUp, up + e * d_ff * d_model);
    if (!gate_up_bias) continue;
    deinterleave_gate_up_bias(gate_up_bias + e * 2 * d_ff, d_ff, GateUpHalf::kGate, gate_bias + e * d_ff);
    deinterleave_gate_up_bias(gate_up_bias + e * 2 * d_ff, d_ff, GateUpHalf::kUp, up_bias + e * d_ff);
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
