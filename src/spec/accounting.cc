// Parameter counts summed from the TensorRegistry by role: totals, the three activated
// conventions, the routed-expert total vs per-token, bytes, and number formatting.
#include "spec/accounting.h"

#include <array>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "util/check.h"

namespace moe {

bool is_matmul_weight(const TensorEntry& t) {
  if (t.n_params == 0 || t.shape.size() < 2) return false;
  if (t.role == Role::kEmbedding || t.role == Role::kNorm) return false;
  const std::string& n = t.name;
  auto ends_with = [&](const char* suffix) {
    const size_t k = std::char_traits<char>::length(suffix);
    return n.size() >= k && n.compare(n.size() - k, k, suffix) == 0;
  };
  return !(ends_with("bias") || ends_with(".ape"));
}

namespace {

// Activated parameters of one routed tensor: K of its packed experts; per-expert tensors
// (packed 1) are summed per layer and scaled by K/E there.
struct RoutedLayerSum {
  int64_t per_expert = 0;  // params of tensors holding one expert
  int64_t fused_active = 0;
};

}  // namespace

ParamCounts count_params(const ModelSpec& spec, const TensorRegistry& reg) {
  ParamCounts c;
  std::array<RoleCount, kNumRoles> roles{};
  for (int r = 0; r < kNumRoles; ++r) roles[r].role = static_cast<Role>(r);
  std::map<std::pair<int, bool>, RoutedLayerSum> routed;  // (layer, mtp) -> sums
  const int64_t K = spec.n_expert_used, E = spec.n_expert;
  for (const TensorEntry& t : reg.tensors) {
    c.bytes_with_mtp += t.nbytes();
    c.checkpoint_elements += t.numel();
    c.total_params_with_mtp += t.n_params;
    if (t.role == Role::kQuantScale) c.quant_scale_bytes += t.nbytes();
    if (t.role == Role::kIndexTable) c.index_table_bytes += t.nbytes();
    if (t.role == Role::kRoutedExpert) {
      MOE_CHECK(t.n_experts_packed >= 1 && E > 0);
      auto& s = routed[{t.layer, t.is_mtp}];
      if (t.n_experts_packed == 1)
        s.per_expert += t.n_params;
      else
        s.fused_active += t.n_params / t.n_experts_packed * K;
    }
    if (t.is_mtp) {
      c.mtp_params += t.n_params;
      if (t.role != Role::kRoutedExpert && t.role != Role::kEmbedding) c.mtp_activated_params += t.n_params;
      continue;
    }
    RoleCount& rc = roles[static_cast<int>(t.role)];
    rc.n_tensors += 1;
    rc.params += t.n_params;
    rc.bytes += t.nbytes();
    if (t.role != Role::kRoutedExpert) rc.activated += t.n_params;
    c.n_tensors += 1;
    c.bytes += t.nbytes();
    c.total_params += t.n_params;
  }
  for (const auto& [key, s] : routed) {
    // Every expert of a layer has the same shape, so the per-expert sum divides by E exactly.
    MOE_CHECK(s.per_expert % E == 0);
    const int64_t active = s.per_expert / E * K + s.fused_active;
    if (key.second)
      c.mtp_activated_params += active;
    else
      roles[static_cast<int>(Role::kRoutedExpert)].activated += active;
  }
  for (const RoleCount& rc : roles) {
    if (rc.n_tensors > 0) c.breakdown.push_back(rc);
  }
  const RoleCount& emb = roles[static_cast<int>(Role::kEmbedding)];
  const RoleCount& head = roles[static_cast<int>(Role::kLmHead)];
  c.embedding_params = emb.params;
  c.lm_head_params = head.params;
  c.routed_params = roles[static_cast<int>(Role::kRoutedExpert)].params;
  c.routed_activated = roles[static_cast<int>(Role::kRoutedExpert)].activated;
  for (const RoleCount& rc : roles) c.activated_params += rc.activated;
  // Tied embeddings: the one matrix is also the head, so it stays in the no-embedding convention.
  const int64_t head_use = spec.tie_word_embeddings ? emb.params : head.params;
  c.activated_params_no_embedding = c.activated_params - emb.params + (spec.tie_word_embeddings ? emb.params : 0);
  c.activated_params_non_embedding = c.activated_params - emb.params - (spec.tie_word_embeddings ? 0 : head.params);
  c.total_params_non_embedding = c.total_params - emb.params - (spec.tie_word_embeddings ? 0 : head_use);
  c.activated_fraction = c.total_params ? static_cast<double>(c.activated_params) / c.total_params : 0;
  c.sparsity_ratio = c.activated_params ? static_cast<double>(c.total_params) / c.activated_params : 0;
  return c;
}

std::string format_count(double n) {
  const double a = std::fabs(n);
  if (a >= 1e12) return fmt::format("{:.3f}T", n / 1e12);
  if (a >= 1e9) return fmt::format("{:.2f}B", n / 1e9);
  if (a >= 1e6) return fmt::format("{:.1f}M", n / 1e6);
  if (a >= 1e3) return fmt::format("{:.1f}K", n / 1e3);
  return fmt::format("{:.0f}", n);
}

std::string format_bytes(double b) {
  const double a = std::fabs(b);
  if (a >= 1e12) return fmt::format("{:.2f} TB", b / 1e12);
  if (a >= 1e9) return fmt::format("{:.2f} GB", b / 1e9);
  if (a >= 1e6) return fmt::format("{:.2f} MB", b / 1e6);
  if (a >= 1e3) return fmt::format("{:.2f} KB", b / 1e3);
  return fmt::format("{:.0f} B", b);
}

}  // namespace moe
