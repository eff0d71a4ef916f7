// Expert FFN: GLU activations (SwiGLU, GELU-GLU, gpt-oss clamped SwiGLU), per-expert weight
// views, and the grouped executor that runs many experts' FFNs as (expert, row block, column
// block) work items on the thread pool: gate and up fused in one pass (matmul_nt_dual), then down.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/packed_weights.h"
#include "runtime/aligned.h"

namespace moe {

enum class GluKind {
  kSwiGLU,     // silu(gate) * up; with limit > 0: gate clamped above, up clamped to +-limit (DeepSeek-V4)
  kGeGLU,      // gelu(gate) * up, exact erf GELU (HF "gelu")
  kGeGLUTanh,  // gelu_tanh(gate) * up (HF "gelu_pytorch_tanh")
  kSwiGLUOai,  // gpt-oss: g = min(gate, limit), u = clamp(up, -limit, limit), (u + 1) * g * sigmoid(alpha * g)
};

struct ActivationOptions {
  GluKind kind = GluKind::kSwiGLU;
  float alpha = 1.702f;   // kSwiGLUOai
  float limit = 0.0f;     // clamp limit (kSwiGLUOai: required > 0; kSwiGLU: 0 = no clamp)
  void validate() const;  // throws moe::Error("expert", ...)
};

// h[i] = act(gate[i], up[i]) for n elements (h may alias gate).
void apply_glu(const ActivationOptions& act, const float* gate, const float* up, float* h, int64_t n);

// One expert's matrices (PyTorch Linear layout, non-owning): gate and up [F, D], down [D, F].
struct ExpertMatrices {
  WeightView gate;                   // [F, D]
  WeightView up;                     // [F, D]
  WeightView down;                   // [D, F]
  const float* gate_bias = nullptr;  // [F] (gpt-oss)
  const float* up_bias = nullptr;    // [F]
  const float* down_bias = nullptr;  // [D]
};

// A set of experts of the same shape: routed experts, or shared experts (each sees every token).
struct ExpertWeights {
  int64_t d_model = 0;  // D
  int64_t d_ff = 0;     // F
  std::vector<ExpertMatrices> experts;
  int n_expert() const { return static_cast<int>(experts.size()); }
  // Of the first expert whose weights are here (under expert parallelism or offloading the others'
  // views are null; all experts of a set have the same shapes, dtypes and biases), else of experts[0]:
  int64_t bytes_per_expert() const;             // weight bytes of one expert (3 * F * D * dtype size + f32 biases)
  int64_t params_per_expert() const;            // 3 * F * D (+ biases)
  const ExpertMatrices* first_present() const;  // the first expert with a gate view; null when none

  // Views into stacked buffers: gate, up [E, F, D], down [E, D, F]; biases [E, F], [E, F], [E, D] or null.
  static ExpertWeights stacked(int n_expert, int64_t d_model, int64_t d_ff, DType dtype, const void* gate,
                               const void* up, const void* down, const float* gate_bias = nullptr,
                               const float* up_bias = nullptr, const float* down_bias = nullptr);
  // Throws moe::Error("expert", ...) when a view is missing, has the wrong leading dimension, or dtype.
  void validate(const char* what) const;
};

// Experts with their matrices packed into the kernels' panel layout (owned here); `weights` views them.
struct PackedExpertWeights {
  ExpertWeights weights;
  AlignedBuffer<uint8_t> arena;  // every packed matrix, one allocation (2 MiB pages: few faults at load)
  bool packed = false;           // false: the ISA has no panel kernel for the dtype, views are the input's
};

// Packs every expert's gate, up and down once (load time) when panel_layout_supported(dtype): afterwards no
// matmul packs B per call, and decode and prefill read the same panels. Biases stay the input's pointers.
// The input's matrices are not read afterwards (biases still point into the input). Results differ from the row layout's kernels by
// f32 rounding (another summation order), so compare packed and unpacked layers with a tolerance.
// release (optional) is called with each input matrix (rows view, row count) once it is packed, from the
// packing threads: a loader drops the file's pages of it there, so no more than a few experts are ever
// resident twice.
using ReleaseRows = std::function<void(const WeightView& rows, int64_t n)>;
// prepacked: the arena's bytes as an earlier pack_expert_weights of the same experts wrote them (a pack
// cache, model/pack_cache.h): the views point into it and nothing is packed or released.
PackedExpertWeights pack_expert_weights(const ExpertWeights& weights, const ReleaseRows& release = {},
                                        const uint8_t* prepacked = nullptr);
// The size of the arena pack_expert_weights fills for these experts (0: they stay rows).
size_t packed_expert_bytes(const ExpertWeights& weights);

// One expert applied to `rows` contiguous input rows: y = down(act(gate x + bg, up x + bu)) + bd.
struct ExpertTask {
  const ExpertMatrices* w = nullptr;
  const float* x = nullptr;  // [rows, D] with row stride ldx (or gathered, see x_rows)
  int64_t ldx = 0;
  int64_t rows = 0;
  int64_t d_ff = 0;    // F of this expert (shared and routed experts may differ)
  float* h = nullptr;  // [rows, F] scratch (activations)
  float* y = nullptr;  // [rows, D] output (row stride D)
  // Gathered input (the MoE layer's dispatch without a copy): row r is x[x_rows[r]] times x_scale[r].
  const int32_t* x_rows = nullptr;  // [rows] or null: rows r of x itself
  const float* x_scale = nullptr;   // [rows] or null: unscaled
  // Optional [rows, ldhb] bf16 copy of h (ldhb = F rounded up to even). Used when the down weights'
  // kernels round their A to bf16 anyway (matmul_rounds_a_to_bf16): phase 1 rounds each h row once into
  // it and phase 2 reads it, instead of every down call rounding h again. The same bits either way.
  uint16_t* hb = nullptr;
  int64_t ldhb = 0;
  // Block-quantized weights (kernels/quant_matmul.h): the caller quantizes x once for the gate/up weights'
  // format: row r's codes are xq + x_rows[r] * xq_bytes (x_rows null: + r * xq_bytes), x_scale still scaling
  // the results. hq (rows of hq_bytes) receives h quantized for the down weights' format by phase 1, which then
  // splits F at that format's block boundaries; phase 2 reads it.
  const uint8_t* xq = nullptr;
  int64_t xq_bytes = 0;
  uint8_t* hq = nullptr;
  int64_t hq_bytes = 0;
  // run_expert_down_combine only (y unused): output row r adds out_scale[r] * y_r into out[out_rows[r]].
  const int32_t* out_rows = nullptr;  // [rows]
  const float* out_scale = nullptr;   // [rows] or null: 1
};

enum class KernelPath {
  kAuto,     // per expert: decode blocking for few rows, prefill blocking for many
  kDecode,   // each item covers all of an expert's rows: its weights stream once for all its tokens
  kPrefill,  // items also split rows into blocks (a hot expert spreads over threads)
};

struct ExpertRunOptions {
  KernelPath path = KernelPath::kAuto;
  bool reference_kernels = false;   // matmul_nt_ref (double accumulation) instead of matmul_nt
  int64_t decode_max_rows = 64;     // kAuto: experts with at most this many rows use decode blocking
  int64_t prefill_row_block = 128;  // rows per item on the prefill path
};

struct ExpertRunStats {
  int64_t weight_bytes_streamed = 0;  // sum over items' row blocks of the weight bytes they read
  int64_t flops = 0;                  // 2 * rows * (3 * F * D)
  int64_t work_items = 0;
};

// Runs every task (all share d_model) on thread_pool(): phase 1 gate+up+activation into h,
// phase 2 down into y. Deterministic: each output element is computed by exactly one item.
void run_expert_tasks(const std::vector<ExpertTask>& tasks, int64_t d_model, const ActivationOptions& act,
                      const ExpertRunOptions& options, ExpertRunStats* stats);

// The two phases of run_expert_tasks on their own (phase 1 writes h; phase 2 reads h, writes y).
void run_expert_up_phase(const std::vector<ExpertTask>& tasks, int64_t d_model, const ActivationOptions& act,
                         const ExpertRunOptions& options, ExpertRunStats* stats);
void run_expert_down_phase(const std::vector<ExpertTask>& tasks, int64_t d_model, const ExpertRunOptions& options,
                           ExpertRunStats* stats);

// Phase 2 with the combine fused into it: out [n_out, D] = the sum, over tasks in order and their rows in
// order, of out_scale[r] * (h_r . down^T + down_bias) into row out_rows[r] (out rows that no task reaches
// are 0). Work items are column blocks of out across all tasks, so each out element is summed by one
// item, from 0, in that order, one product and one addition per term (combine.h's rule): with the routed
// experts as tasks in expert order, that is combine_tokens's sum, and no [rows, D] expert output is ever
// written to memory and read back.
void run_expert_down_combine(const std::vector<ExpertTask>& tasks, int64_t d_model, int64_t n_out, float* out,
                             const ExpertRunOptions& options, ExpertRunStats* stats);

}  // namespace moe
