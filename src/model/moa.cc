// JetMoE's mixture of attention heads (see moa.h). Shapes: T tokens, K slots per token, E experts,
// Q = Hkv Dh the width of one expert's queries.
#include "model/moa.h"

#include <algorithm>
#include <utility>

#include "model/linear.h"
#include "util/check.h"
#include "util/error.h"

namespace moe {

MoaAttention::MoaAttention(const MoaShape& shape, MoaWeights weights) : shape_(shape), w_(std::move(weights)) {
  if (shape_.top_k < 1 || shape_.top_k > shape_.n_expert)
    fail("model", "mixture of attention: top-k {} is not in [1, {}]", shape_.top_k, shape_.n_expert);
  if (static_cast<int64_t>(w_.q.size()) != shape_.n_expert || static_cast<int64_t>(w_.o.size()) != shape_.n_expert)
    fail("model", "mixture of attention: {} query / {} output experts for {} experts", w_.q.size(), w_.o.size(),
         shape_.n_expert);
  router_.n_expert = static_cast<int>(shape_.n_expert);
  router_.top_k = static_cast<int>(shape_.top_k);
  router_.scoring = ScoringFunc::kSoftmax;
  router_.selection = Selection::kSoftmaxOverTopK;  // JetMoeTopKGating: softmax over the k best logits
  router_.norm_topk_prob = true;
  router_.validate();
  slots_.resize(static_cast<size_t>(shape_.n_expert));
}

void MoaAttention::group_by_expert(int64_t T) {
  const int64_t K = shape_.top_k;
  for (auto& s : slots_) s.clear();
  for (int64_t i = 0; i < T * K; ++i)
    slots_[static_cast<size_t>(routing_.expert_ids[static_cast<size_t>(i)])].push_back(i);
}

void MoaAttention::project_queries(const float* x, int64_t T, float* q) {
  const int64_t D = shape_.d_model, K = shape_.top_k, Hkv = shape_.n_kv_head, Dh = shape_.head_dim, Q = Hkv * Dh;
  route_tokens(router_, RouterWeights{w_.router}, x, T, D, 0, &routing_);
  group_by_expert(T);
  for (int64_t e = 0; e < shape_.n_expert; ++e) {
    const std::vector<int64_t>& s = slots_[static_cast<size_t>(e)];
    const int64_t n = static_cast<int64_t>(s.size());
    if (n == 0) continue;
    in_.resize(static_cast<size_t>(n * D));   // [n, D] the tokens of these slots
    out_.resize(static_cast<size_t>(n * Q));  // [n, Q] their queries from expert e
    for (int64_t r = 0; r < n; ++r) std::copy_n(x + (s[size_t(r)] / K) * D, D, in_.data() + r * D);
    linear_forward(in_.data(), w_.q[size_t(e)], nullptr, out_.data(), LinearShape{n, Q, D});
    for (int64_t r = 0; r < n; ++r) {
      const int64_t t = s[size_t(r)] / K, j = s[size_t(r)] % K;
      for (int64_t g = 0; g < Hkv; ++g)  // slot j's head g -> query head g K + j of token t
        std::copy_n(out_.data() + r * Q + g * Dh, Dh, q + ((t * Hkv + g) * K + j) * Dh);
    }
  }
}

void MoaAttention::project_output(const float* attn, int64_t T, float* out) {
  const int64_t D = shape_.d_model, K = shape_.top_k, Hkv = shape_.n_kv_head, Dh = shape_.head_dim, Q = Hkv * Dh;
  MOE_CHECK(routing_.n_tokens == T);
  per_slot_.resize(static_cast<size_t>(T * K * D));  // [T K, D]: Wo[e_j] attn_j of every slot
  for (int64_t e = 0; e < shape_.n_expert; ++e) {
    const std::vector<int64_t>& s = slots_[static_cast<size_t>(e)];
    const int64_t n = static_cast<int64_t>(s.size());
    if (n == 0) continue;
    in_.resize(static_cast<size_t>(n * Q));   // [n, Q] slot j's heads, gathered from the grouped order
    out_.resize(static_cast<size_t>(n * D));  // [n, D]
    for (int64_t r = 0; r < n; ++r) {
      const int64_t t = s[size_t(r)] / K, j = s[size_t(r)] % K;
      for (int64_t g = 0; g < Hkv; ++g)
        std::copy_n(attn + ((t * Hkv + g) * K + j) * Dh, Dh, in_.data() + r * Q + g * Dh);
    }
    linear_forward(in_.data(), w_.o[size_t(e)], nullptr, out_.data(), LinearShape{n, D, Q});
    for (int64_t r = 0; r < n; ++r) std::copy_n(out_.data() + r * D, D, per_slot_.data() + s[size_t(r)] * D);
  }
  for (int64_t t = 0; t < T; ++t) {  // slots summed in their order, whatever the batch: a row's result is its own
    float* y = out + t * D;
    for (int64_t d = 0; d < D; ++d) y[d] = w_.bias ? w_.bias[d] : 0.0f;
    for (int64_t j = 0; j < K; ++j) {
      const float wj = routing_.weights[static_cast<size_t>(t * K + j)];
      const float* z = per_slot_.data() + (t * K + j) * D;
      for (int64_t d = 0; d < D; ++d) y[d] += wj * z[d];
    }
  }
}

}  // namespace moe
