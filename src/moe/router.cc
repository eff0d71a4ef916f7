// Router: option validation, logits (matmul_nt), scoring, group-limited top-k selection with
// lower-index tie-breaking, weights from the unbiased scores, renormalization and scaling.
#include "moe/router.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "moe/router_math.h"
#include "runtime/thread_pool.h"
#include "util/check.h"
#include "util/error.h"

namespace moe {
namespace {

// PhiMoE sparsemixer (inference form): ids [2], weights [2] from the logits [n].
void sparse_mixer(const float* logits, int n, float eps, int32_t* ids, float* w) {
  auto best_except = [&](int skip) {
    int b = -1;
    for (int e = 0; e < n; ++e)
      if (e != skip && (b < 0 || logits[e] > logits[b])) b = e;
    return b;
  };
  // softmax at the maximum m over the logits whose relative distance to m is within 2 eps
  auto weight = [&](float m, int skip) {
    double sum = 0.0;
    for (int e = 0; e < n; ++e) {
      if (e == skip) continue;
      const float factor = std::max(std::abs(logits[e]), m);
      if ((m - logits[e]) / factor > 2.0f * eps) continue;  // NaN (0 / 0) keeps the expert, as torch does
      sum += std::exp(static_cast<double>(logits[e]) - m);
    }
    return static_cast<float>(1.0 / sum);
  };
  ids[0] = best_except(-1);
  w[0] = weight(logits[ids[0]], -1);
  ids[1] = best_except(ids[0]);
  w[1] = weight(logits[ids[1]], ids[0]);
}

}  // namespace

void RouterOptions::validate() const {
  if (n_expert < 1) fail("router", "n_expert must be >= 1, got {}", n_expert);
  if (top_k < 1) fail("router", "top_k (num_experts_per_tok) must be >= 1, got {}", top_k);
  if (top_k > n_expert) fail("router", "top_k {} exceeds the number of experts {}", top_k, n_expert);
  if (n_group < 1) fail("router", "n_group must be >= 1, got {}", n_group);
  if (n_expert % n_group != 0) {
    fail("router", "n_group {} does not divide n_expert {} (groups must have equal size)", n_group, n_expert);
  }
  if (topk_group < 1 || topk_group > n_group) {
    fail("router", "topk_group must be in [1, n_group = {}], got {}", n_group, topk_group);
  }
  const int group_size = n_expert / n_group;
  if (n_group > 1 && top_k > topk_group * group_size) {
    fail("router", "top_k {} exceeds the {} experts reachable in topk_group {} groups of {}", top_k,
         topk_group * group_size, topk_group, group_size);
  }
  if (n_group > 1 && group_score == GroupScore::kTop2Sum && group_size < 2) {
    fail("router", "group score top-2 sum needs groups of >= 2 experts, got {} (n_expert {} / n_group {})", group_size,
         n_expert, n_group);
  }
  if (selection == Selection::kSparseMixer && top_k != 2) {
    fail("router", "sparsemixer routing picks exactly 2 experts, num_experts_per_tok is {}", top_k);
  }
  if (!std::isfinite(routed_scaling_factor) || routed_scaling_factor <= 0.0f) {
    fail("router", "routed_scaling_factor must be finite and > 0, got {}", routed_scaling_factor);
  }
}

int RouterOptions::effective_top_k(int top_k_override) const {
  if (top_k_override < 0 || top_k_override > top_k) {
    fail("router", "top-k override {} must be in [0, top_k = {}] (0 keeps top_k)", top_k_override, top_k);
  }
  if (selection == Selection::kSparseMixer && top_k_override != 0 && top_k_override != 2)
    fail("router", "sparsemixer routing always picks 2 experts; a top-k override of {} is not possible",
         top_k_override);
  return top_k_override == 0 ? top_k : top_k_override;
}

void route_one_token(const RouterOptions& o, const RouterWeights& w, const float* logits, int k, int32_t* ids,
                     float* out_weights, float* scratch) {
  const int n = o.n_expert;
  if (o.selection == Selection::kSparseMixer) {
    MOE_CHECK(k == 2);  // a top-k override cannot shrink sparsemixer's pair
    sparse_mixer(logits, n, o.sparsemixer_eps, ids, out_weights);
    return;
  }
  MOE_CHECK(!o.use_correction_bias || w.correction_bias != nullptr);
  int32_t* group_order = nullptr;  // only group-limited routing uses it
  if (o.n_group > 1) {
    thread_local std::vector<int32_t> best_groups;  // per thread, reused across tokens and calls
    best_groups.resize(static_cast<size_t>(o.topk_group));
    group_order = best_groups.data();
  }
  router_math::select_top_k(o, logits, w.correction_bias, k, ids, out_weights, scratch, group_order);
}

void weights_for_ids(const RouterOptions& o, const float* logits, int k, const int32_t* ids, float* out_weights,
                     float* scratch) {
  for (int i = 0; i < k; ++i) {
    if (ids[i] < 0 || ids[i] >= o.n_expert) fail("router", "given expert id {} is outside [0, {})", ids[i], o.n_expert);
  }
  if (o.selection == Selection::kSparseMixer)
    fail("router", "given expert ids cannot be weighted by sparsemixer routing");
  router_math::score_logits(o.scoring, logits, o.n_expert, scratch);
  router_math::finish_weights(o, logits, scratch, k, ids, out_weights);
}

void route_tokens(const RouterOptions& o, const RouterWeights& w, const float* x, int64_t n_tokens, int64_t d_model,
                  int top_k_override, RouterOutput* out) {
  o.validate();
  const int k = o.effective_top_k(top_k_override);
  const int n = o.n_expert;
  out->n_tokens = n_tokens;
  out->top_k = k;
  out->n_expert = n;
  out->logits.resize(static_cast<size_t>(n_tokens) * n);      // [T, E]
  out->expert_ids.resize(static_cast<size_t>(n_tokens) * k);  // [T, K]
  out->weights.resize(static_cast<size_t>(n_tokens) * k);     // [T, K]
  if (n_tokens == 0) return;
  // Logits [T, E]: rows of tokens split across threads (the router weight is small, E x D).
  // Small batches (decode) run inline: a pool round trip costs more than the work. Unless the weight is
  // large enough that reading it from memory (a decode step's other weights push it out of cache) is the
  // work: then its rows (experts) are split across threads, the selection inline (Qwen3-30B-A3B's 1 MB
  // router: its layer +2-3% at 1-4 tokens on 2 threads, moe_layer_bench BM_MoeLayerQ4KM).
  const bool inline_run = n_tokens * n * d_model < (int64_t(1) << 20);
  const bool logits_split =
      inline_run && thread_pool().size() > 1 && n * dtype_row_bytes(w.weight.dtype, d_model) >= (int64_t(256) << 10);
  if (logits_split) {
    const int64_t unit = w.weight.layout == WeightLayout::kPanels ? 32 : 16;  // panels slice at their edges
    thread_pool().parallel_for((n + unit - 1) / unit, [&](int64_t g0, int64_t g1, int) {
      const int64_t e0 = g0 * unit, e1 = std::min<int64_t>(n, g1 * unit);
      matmul_nt(x, d_model, weight_rows(w.weight, e0), out->logits.data() + e0, n, {n_tokens, e1 - e0, d_model}, false);
    });
  }
  auto body = [&](int64_t t0, int64_t t1, int) {
    if (!logits_split)
      matmul_nt(x + t0 * d_model, d_model, w.weight, out->logits.data() + t0 * n, n, {t1 - t0, n, d_model}, false);
    if (w.bias) {
      for (int64_t t = t0; t < t1; ++t) {
        float* l = out->logits.data() + t * n;
        for (int e = 0; e < n; ++e) l[e] += w.bias[e];
      }
    }
    std::vector<float> scratch(3 * static_cast<size_t>(n));
    for (int64_t t = t0; t < t1; ++t) {
      route_one_token(o, w, out->logits.data() + t * n, k, out->expert_ids.data() + t * k, out->weights.data() + t * k,
                      scratch.data());
    }
  };
  if (inline_run) {
    body(0, n_tokens, 0);
  } else {
    thread_pool().parallel_for(n_tokens, body);
  }
}

}  // namespace moe
