// MoE router: f32 logits from a linear layer, a scoring function, top-k selection (plain,
// softmax over the selected logits, group-limited), a selection-only correction bias,
// renormalization and scaling. Produces expert ids and weights [T, K] for the RoutingPlan.
// Logits and scores are always f32; ties between equal selection scores go to the lower index.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/matmul.h"
#include "spec/model_spec.h"

namespace moe {

// How logits become per-expert scores: ScoringFunc from spec/model_spec.h (softmax over all E
// logits, sigmoid per expert, or sqrt(softplus) per expert as in DeepSeek-V4); the weights are
// taken from these scores.

// Which experts a token keeps and where its weights come from.
enum class Selection {
  kTopK,             // top-k of the (biased) scores; weights = the unbiased scores of the chosen
  kSoftmaxOverTopK,  // top-k of the logits; weights = softmax over those k logits only
  kSparseMixer,      // PhiMoE's sparsemixer at inference, top-2 only (see RouterOptions::sparsemixer_eps)
};

// Group score for group-limited routing (n_group > 1).
enum class GroupScore {
  kMax,      // DeepSeek-V2 group_limited_greedy: the group's best expert score
  kTop2Sum,  // DeepSeek-V3 noaux_tc: sum of the group's two best (biased) scores
};

// Which family uses which options: the table kFamilyRouting in moe/family_routing.h (data that
// moe_layer_config reads). Unset fields keep their defaults: scoring softmax, selection kTopK,
// n_group 1, no bias, norm_topk_prob false, scale 1.
//
// For kTopK, norm_topk_prob divides the chosen weights by their sum; for kSoftmaxOverTopK the weights
// already sum to one. routed_scaling_factor multiplies the final weights.
struct RouterOptions {
  int n_expert = 0;  // E
  int top_k = 0;     // K (num_experts_per_tok)
  ScoringFunc scoring = ScoringFunc::kSoftmax;
  Selection selection = Selection::kTopK;
  int n_group = 1;     // groups of E / n_group consecutive experts; 1 = no group limit
  int topk_group = 1;  // groups a token may pick experts from (n_group > 1)
  GroupScore group_score = GroupScore::kMax;
  bool use_correction_bias = false;  // RouterWeights::correction_bias is added for selection only
  bool norm_topk_prob = false;
  float routed_scaling_factor = 1.0f;
  // kSparseMixer: expert 1 is the best logit, weighted by the softmax over the logits within a relative
  // 2 * eps of it ((best - l) / max(|l|, best) <= 2 eps), taken at the best; expert 2 the same among
  // the others. PhiMoE's router_jitter_noise is this eps.
  float sparsemixer_eps = 0.0f;

  // Throws moe::Error("router", ...) naming the bad field (top-k > experts, groups not dividing
  // experts, topk_group > n_group, top_k * ... not reachable inside the allowed groups, ...).
  void validate() const;
  // K actually used: top_k, or a smaller runtime override (0 = none); throws when override > top_k.
  int effective_top_k(int top_k_override) const;
};

// Router parameters (non-owning views, e.g. into a mmapped checkpoint).
struct RouterWeights {
  WeightView weight;                       // [E, D]
  const float* bias = nullptr;             // [E] logit bias (gpt-oss), or null
  const float* correction_bias = nullptr;  // [E] selection-only bias (DeepSeek-V3 e_score_correction_bias)
};

// Router result: ids and weights [T, K], plus the f32 logits [T, E] (kept for losses and stats).
struct RouterOutput {
  int64_t n_tokens = 0;
  int top_k = 0;
  int n_expert = 0;
  std::vector<float> logits;        // [T, E]
  std::vector<int32_t> expert_ids;  // [T, K], per token in selection order (best first)
  std::vector<float> weights;       // [T, K]
};

// Computes logits = x . W^T (+ bias) and routes every token. top_k_override: 0 or a smaller K.
// x: [T, D] row-major f32. Parallel over tokens on thread_pool().
void route_tokens(const RouterOptions& options, const RouterWeights& weights, const float* x, int64_t n_tokens,
                  int64_t d_model, int top_k_override, RouterOutput* out);

// Routes from precomputed logits [T, E] (the selection half of route_tokens, single token).
// ids/weights: [K] outputs for one token. scratch: at least 3 * E floats.
void route_one_token(const RouterOptions& options, const RouterWeights& weights, const float* logits, int top_k,
                     int32_t* ids, float* out_weights, float* scratch);

// Weights for externally chosen experts (DeepSeek-V4 hash layers, benchmarks): ids [K] are given,
// weights are the token's unbiased scores at those ids, normalized and scaled as options say.
void weights_for_ids(const RouterOptions& options, const float* logits, int top_k, const int32_t* ids,
                     float* out_weights, float* scratch);

}  // namespace moe
