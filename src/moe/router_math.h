// The router's per-token arithmetic as templates over the number type: scoring, group limiting,
// top-k selection with lower-index ties, and the weights of the chosen experts. The inference router
// (router.cc) runs it in float; the trainer (train/moe_block.cc) runs the same code in float, and in
// double for its finite-difference gradient checks, so training and inference select alike.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "moe/router.h"

namespace moe::router_math {

template <typename T>
constexpr T neg_inf() {
  return -std::numeric_limits<T>::infinity();
}

// The k best of v[0, n), larger first and, between equal values, the lower index first (deterministic
// ties), written to out[0, k): one pass in index order keeping a sorted list of the best so far. An
// entry enters only when strictly larger than the current k-th, and goes after every kept one it does
// not beat, so equal values keep their index order. About one compare per entry (a partial sort's heap
// took most of the router's per-token time at E = 128). Used for experts and for groups alike.
template <typename T>
void top_k_select(const T* v, int n, int k, int32_t* out) {
  int len = 0;
  for (int e = 0; e < n; ++e) {
    const T x = v[e];
    if (len == k && !(x > v[out[k - 1]])) continue;
    int i = len < k ? len++ : k - 1;
    for (; i > 0 && x > v[out[i - 1]]; --i) out[i] = out[i - 1];
    out[i] = e;
  }
}

template <typename T>
void score_logits(ScoringFunc f, const T* logits, int n, T* scores) {
  switch (f) {
    case ScoringFunc::kSoftmax: {
      T mx = neg_inf<T>();
      for (int e = 0; e < n; ++e) mx = std::max(mx, logits[e]);
      double sum = 0.0;
      for (int e = 0; e < n; ++e) {
        scores[e] = std::exp(logits[e] - mx);
        sum += scores[e];
      }
      const T inv = static_cast<T>(1.0 / sum);
      for (int e = 0; e < n; ++e) scores[e] *= inv;
      return;
    }
    case ScoringFunc::kSigmoid:
      for (int e = 0; e < n; ++e) scores[e] = T(1) / (T(1) + std::exp(-logits[e]));
      return;
    case ScoringFunc::kSqrtSoftplus:
      for (int e = 0; e < n; ++e) {
        const T x = logits[e];
        // softplus(x) = log1p(exp(x)), written to stay finite for large |x| (torch uses x above 20).
        const T sp = x > T(20) ? x : std::log1p(std::exp(x));
        scores[e] = std::sqrt(sp);
      }
      return;
  }
}

// Masks (sets to -inf) every expert outside the topk_group best groups of `sel` [E]. group_scores:
// [n_group] scratch; order: [topk_group] scratch for the chosen groups.
template <typename T>
void apply_group_limit(const RouterOptions& o, T* sel, T* group_scores, int32_t* order) {
  const int group_size = o.n_expert / o.n_group;
  for (int g = 0; g < o.n_group; ++g) {
    const T* s = sel + g * group_size;
    if (o.group_score == GroupScore::kMax) {
      T mx = neg_inf<T>();
      for (int i = 0; i < group_size; ++i) mx = std::max(mx, s[i]);
      group_scores[g] = mx;
    } else {
      T a = neg_inf<T>(), b = neg_inf<T>();  // two largest
      for (int i = 0; i < group_size; ++i) {
        if (s[i] > a) {
          b = a;
          a = s[i];
        } else if (s[i] > b) {
          b = s[i];
        }
      }
      group_scores[g] = a + b;
    }
  }
  top_k_select(group_scores, o.n_group, o.topk_group, order);
  // Reuse group_scores as a keep flag per group.
  for (int g = 0; g < o.n_group; ++g) group_scores[g] = T(0);
  for (int i = 0; i < o.topk_group; ++i) group_scores[order[i]] = T(1);
  for (int g = 0; g < o.n_group; ++g) {
    if (group_scores[g] != T(0)) continue;
    std::fill(sel + g * group_size, sel + (g + 1) * group_size, neg_inf<T>());
  }
}

// Whether the chosen weights are divided by their sum: norm_topk_prob, or the softmax over the chosen
// logits (Mixtral), which is the same number as the renormalized softmax scores.
inline bool renormalizes(const RouterOptions& o) {
  return o.norm_topk_prob || o.selection == Selection::kSoftmaxOverTopK;
}

// Final weights from the chosen ids: unbiased scores (or softmax over the chosen logits),
// renormalized when asked (sum + 1e-20, as Hugging Face's DeepSeek code), then scaled.
template <typename T>
void finish_weights(const RouterOptions& o, const T* logits, const T* scores, int k, const int32_t* ids, T* w) {
  if (o.selection == Selection::kSoftmaxOverTopK) {
    T mx = neg_inf<T>();
    for (int i = 0; i < k; ++i) mx = std::max(mx, logits[ids[i]]);
    double sum = 0.0;
    for (int i = 0; i < k; ++i) {
      w[i] = std::exp(logits[ids[i]] - mx);
      sum += w[i];
    }
    for (int i = 0; i < k; ++i) w[i] = static_cast<T>(w[i] / sum);
  } else {
    for (int i = 0; i < k; ++i) w[i] = scores[ids[i]];
    if (o.norm_topk_prob) {
      double sum = 0.0;
      for (int i = 0; i < k; ++i) sum += w[i];
      // HF adds 1e-20 to the denominator (DeepSeek); it only matters for an all-zero row.
      const double inv = 1.0 / (sum + 1e-20);
      for (int i = 0; i < k; ++i) w[i] = static_cast<T>(w[i] * inv);
    }
  }
  if (o.routed_scaling_factor != 1.0f) {
    for (int i = 0; i < k; ++i) w[i] *= static_cast<T>(o.routed_scaling_factor);
  }
}

// One token's top-k route (any selection but sparsemixer): scores [E] of the logits, selection
// scores (the scores, or the logits for kSoftmaxOverTopK, plus the correction bias when the options
// use one and it is given), the group limit, top-k, weights. scratch: [2 E + n_group] of T;
// group_order: [topk_group] (may be null without a group limit).
template <typename T>
void select_top_k(const RouterOptions& o, const T* logits, const float* correction_bias, int k, int32_t* ids,
                  T* out_weights, T* scratch, int32_t* group_order) {
  const int n = o.n_expert;
  T* scores = scratch;             // [E]
  T* sel = scratch + n;            // [E] selection scores
  T* group_tmp = scratch + 2 * n;  // [n_group]
  score_logits(o.scoring, logits, n, scores);
  const T* base = o.selection == Selection::kSoftmaxOverTopK ? logits : scores;
  for (int e = 0; e < n; ++e) sel[e] = base[e];
  if (o.use_correction_bias && correction_bias != nullptr)
    for (int e = 0; e < n; ++e) sel[e] += correction_bias[e];
  if (o.n_group > 1) apply_group_limit(o, sel, group_tmp, group_order);
  top_k_select(sel, n, k, ids);
  finish_weights(o, logits, scores, k, ids, out_weights);
}

}  // namespace moe::router_math
