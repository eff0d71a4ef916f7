// Causal attention forward and backward in float on the training GEMM (kernels/gemm_f32.h): per (sequence,
// head), blocks of 32 query rows compute only the key columns the causal mask keeps, so the
// score, softmax-weighted sum and gradient products run as small dense GEMMs.
#pragma once

#include "train/ops.h"

namespace moe::train {

// Same contracts as attention_forward / attention_backward (ops.h), at every ISA level.
void attention_forward_f32(float* out, float* probs, const float* q, const float* k, const float* v,
                           const AttentionShape& s);
void attention_backward_f32(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                            const float* v, const float* probs, const AttentionShape& s);

}  // namespace moe::train
