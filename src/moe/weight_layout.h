// Conversions from Hugging Face fused expert layouts to the per-expert PyTorch Linear layout
// the MoE layer reads (gate, up [F, D], down [D, F]): gpt-oss's interleaved, transposed gate_up
// and its transposed down projection. f32 in, f32 out; the loader converts other dtypes first.
#pragma once

#include <cstdint>

namespace moe {

// gpt-oss experts.gate_up_proj [E, D, 2F] (used as x @ W; gate = columns 0, 2, 4.., up = 1, 3, 5..)
// and gate_up_proj_bias [E, 2F] (may be null) -> gate, up [E, F, D] and gate_bias, up_bias [E, F].
void split_interleaved_gate_up(const float* gate_up, const float* gate_up_bias, int n_expert, int64_t d_model,
                               int64_t d_ff, float* gate, float* up, float* gate_bias, float* up_bias);

// Per-expert transpose: src [E, R, C] -> dst [E, C, R] (gpt-oss down_proj [E, F, D] -> [E, D, F]).
void transpose_experts(const float* src, int n_expert, int64_t rows, int64_t cols, float* dst);

}  // namespace moe
