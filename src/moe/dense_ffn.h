// A dense GLU FFN computed as the sum of column chunks: y = sum_c down_c(act(gate_c x, up_c x)).
// A dense layer of width C * F is C chunks of width F, so the dense baselines of `moe bench layer`
// run on the same kernels, blocking and weight pool as the MoE layer (a fair ratio).
#pragma once

#include <vector>

#include "moe/expert_ffn.h"

namespace moe {

// chunks: C chunks of the same F (ExpertWeights used as column chunks). x, out: [T, D].
// Phase 1 computes h [T, C * F] with (row block, chunk, column block) items; phase 2 sums the chunks'
// down projections into out with (row block, column block) items. h_scratch is resized as needed.
void dense_ffn_forward(const ExpertWeights& chunks, const ActivationOptions& act, const float* x, int64_t n_tokens,
                       float* out, const ExpertRunOptions& options, std::vector<float>* h_scratch);

}  // namespace moe
