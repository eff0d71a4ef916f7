// JetMoE's mixture of attention heads (MoA): a router picks K of E attention experts per token; expert
// e owns a query projection Wq[e] [Hkv Dh, D] and an output projection Wo[e] [D, Hkv Dh], while keys
// and values come from one kv_proj shared by all experts. The token's j-th chosen expert yields Hkv
// query heads that attend over the Hkv shared kv heads (head g of slot j reads kv head g: transformers
// repeats the kv heads K times, it does not interleave them), and the layer's output is
// sum_j w_j Wo[e_j] attn_j + bias, w = softmax over the K chosen router logits.
//
// The decoder's attention runs unchanged on the H = K Hkv query heads once they are laid out in its
// grouped order: query head g K + j is slot j's head g, so head h reads kv head h / K.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/matmul.h"
#include "moe/router.h"

namespace moe {

struct MoaShape {
  int64_t d_model = 0;    // D
  int64_t n_expert = 0;   // E
  int64_t top_k = 0;      // K
  int64_t n_kv_head = 0;  // Hkv
  int64_t head_dim = 0;   // Dh
};

struct MoaWeights {
  WeightView router;            // [E, D]
  std::vector<WeightView> q;    // [E] views of [Hkv Dh, D]
  std::vector<WeightView> o;    // [E] views of [D, Hkv Dh]
  const float* bias = nullptr;  // [D], added once per token
};

// Not thread-safe: one call at a time (project_queries then project_output on the same rows).
class MoaAttention {
 public:
  MoaAttention(const MoaShape& shape, MoaWeights weights);

  // Routes the T rows of x [T, D] and writes their queries q [T, K Hkv, Dh] in the grouped order.
  void project_queries(const float* x, int64_t n_tokens, float* q);
  // out [T, D] = bias + sum_j w_j Wo[e_j] (slot j's heads of attn [T, K Hkv, Dh]), with the routing of the
  // last project_queries call.
  void project_output(const float* attn, int64_t n_tokens, float* out);

  // The last call's chosen experts [T, K] (best first).
  const std::vector<int32_t>& last_expert_ids() const { return routing_.expert_ids; }

 private:
  // rows of x routed to expert e: token t's slot j as t K + j, in token order
  void group_by_expert(int64_t n_tokens);

  MoaShape shape_;
  MoaWeights w_;
  RouterOptions router_;
  RouterOutput routing_;
  std::vector<std::vector<int64_t>> slots_;  // [E] -> t K + j
  std::vector<float> in_, out_, per_slot_;   // gathered rows, expert outputs, [T K, D] slot outputs
};

}  // namespace moe
