// Conversions from Hugging Face fused expert layouts to the per-expert PyTorch Linear layout
// the MoE layer reads (gate, up [F, D], down [D, F]): gpt-oss's interleaved, transposed gate_up
// and its transposed down projection. f32 in, f32 out; the loader converts other dtypes first.
// Every reader of gpt-oss's gate_up (the safetensors loader, its MXFP4 path, the GGUF writer, the
// tests) takes the interleave from here.
#pragma once

#include <cstdint>

namespace moe {

enum class GateUpHalf { kGate = 0, kUp = 1 };

// gpt-oss interleaves the two halves: column (of the bf16 [D, 2F] layout; row of the MXFP4 [2F, D] one)
// 2f is the gate's f-th output, 2f + 1 the up projection's.
constexpr int64_t interleaved_gate_up_index(int64_t f, GateUpHalf half) { return 2 * f + static_cast<int64_t>(half); }

// One expert's gate_up [D, 2F] (used as x @ W) -> the half's Linear weight [F, D].
void deinterleave_gate_up(const float* gate_up, int64_t d_model, int64_t d_ff, GateUpHalf half, float* out);
// One expert's gate_up_bias [2F] -> the half's bias [F].
void deinterleave_gate_up_bias(const float* gate_up_bias, int64_t d_ff, GateUpHalf half, float* out);

// All E experts: gate_up_proj [E, D, 2F] and gate_up_proj_bias [E, 2F] (may be null) -> gate, up [E, F, D]
// and gate_bias, up_bias [E, F].
void split_interleaved_gate_up(const float* gate_up, const float* gate_up_bias, int n_expert, int64_t d_model,
                               int64_t d_ff, float* gate, float* up, float* gate_bias, float* up_bias);

// Per-expert transpose: src [E, R, C] -> dst [E, C, R] (gpt-oss down_proj [E, F, D] -> [E, D, F]).
void transpose_experts(const float* src, int n_expert, int64_t rows, int64_t cols, float* dst);

}  // namespace moe
