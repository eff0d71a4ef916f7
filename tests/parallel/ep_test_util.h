// Shared by the in-process and the mpirun EP tests: deterministic per-rank tokens, a naive
// reference exchange (every rank gathers everything and picks its rows by brute force), and
// exact comparison of exchange results.
#pragma once

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "parallel/comm.h"
#include "parallel/ep_exchange.h"
#include "parallel/placement.h"

namespace moe::parallel::testing {

constexpr int64_t kD = 5;

struct RankTokens {
  int64_t n_tokens = 0;
  int top_k = 0;
  std::vector<int32_t> ids;    // [T, K]
  std::vector<float> weights;  // [T, K]
  std::vector<float> x;        // [T, D]
};

inline uint32_t mix(uint32_t a) {
  a ^= a >> 16;
  a *= 0x7feb352dU;
  a ^= a >> 15;
  a *= 0x846ca68bU;
  return a ^ (a >> 16);
}

// Deterministic tokens of `rank`; expert `unused` is never chosen.
inline RankTokens make_tokens(int rank, int64_t n_tokens, int top_k, int n_expert, int unused) {
  RankTokens t;
  t.n_tokens = n_tokens;
  t.top_k = top_k;
  for (int64_t i = 0; i < n_tokens; ++i) {
    std::vector<int32_t> chosen;
    for (uint32_t salt = 0; int(chosen.size()) < top_k; ++salt) {
      const int32_t e = int32_t(mix(uint32_t(rank * 7919 + i * 131 + salt)) % uint32_t(n_expert));
      if (e == unused || std::find(chosen.begin(), chosen.end(), e) != chosen.end()) continue;
      chosen.push_back(e);
    }
    for (int k = 0; k < top_k; ++k) {
      t.ids.push_back(chosen[size_t(k)]);
      t.weights.push_back(float(mix(uint32_t(rank * 31 + i * 17 + k)) % 1000) / 997.0f);
    }
    for (int64_t d = 0; d < kD; ++d) t.x.push_back(float(rank) * 100.0f + float(i) + 0.125f * float(d));
  }
  return t;
}

inline float expert_fn(float x, int32_t e, float w) { return x * float(e + 1) + w; }

template <typename T>
inline std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}
template <typename T>
inline std::vector<T> from_bytes(const std::string& s) {
  std::vector<T> v(s.size() / sizeof(T));
  if (!s.empty()) std::memcpy(v.data(), s.data(), s.size());  // memcpy from/to null is UB even for 0 bytes
  return v;
}

// Naive reference: every rank gathers everyone's tokens and plans, then lists its rows in the
// documented order (local expert, source rank, token, choice) by brute force.
inline EpLocalBatch naive_exchange(Comm& comm, const ExpertPlacement& placement, const RankTokens& mine,
                                   const RoutingPlan& plan) {
  std::vector<int32_t> kept(plan.slot_to_row.size());
  for (size_t s = 0; s < kept.size(); ++s) kept[s] = plan.slot_to_row[s] >= 0;
  const auto all_ids = comm.all_gather_strings(bytes_of(mine.ids));
  const auto all_w = comm.all_gather_strings(bytes_of(mine.weights));
  const auto all_x = comm.all_gather_strings(bytes_of(mine.x));
  const auto all_kept = comm.all_gather_strings(bytes_of(kept));
  EpLocalBatch b;
  b.d_model = kD;
  b.experts = placement.experts_of(comm.rank());
  b.offsets.push_back(0);
  for (int e : b.experts) {
    for (int s = 0; s < comm.size(); ++s) {
      const auto ids = from_bytes<int32_t>(all_ids[size_t(s)]);
      const auto w = from_bytes<float>(all_w[size_t(s)]);
      const auto x = from_bytes<float>(all_x[size_t(s)]);
      const auto k = from_bytes<int32_t>(all_kept[size_t(s)]);
      for (size_t slot = 0; slot < ids.size(); ++slot) {
        if (ids[slot] != e || !k[slot]) continue;
        const size_t token = slot / size_t(mine.top_k);
        b.expert_ids.push_back(e);
        b.weights.push_back(w[slot]);
        b.source_rank.push_back(s);
        b.x.insert(b.x.end(), x.begin() + long(token * kD), x.begin() + long((token + 1) * kD));
      }
    }
    b.offsets.push_back(int64_t(b.expert_ids.size()));
  }
  return b;
}

// "" when equal bit for bit, else what differs first.
inline std::string batch_difference(const EpLocalBatch& got, const EpLocalBatch& want) {
  if (got.experts != want.experts) return "local experts differ";
  if (got.offsets != want.offsets) return "per-expert row offsets differ";
  if (got.expert_ids != want.expert_ids) return "expert ids differ";
  if (got.source_rank != want.source_rank) return "source ranks differ";
  // Bitwise comparison; memcmp of empty vectors is skipped (null pointers are UB even for 0 bytes).
  auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), 4 * a.size()) == 0);
  };
  if (!same_bits(got.weights, want.weights)) return "weights differ";
  if (!same_bits(got.x, want.x)) return "rows differ";
  return "";
}

// Runs the exchange on this rank's tokens with expert_fn as the experts; returns "" when the
// received batch equals the naive reference and every result came back to its plan row.
inline std::string check_exchange(Comm& comm, const ExpertPlacement& placement, const RankTokens& mine, int n_expert,
                                  const DispatchOptions& dispatch, EpExchangeStats* stats) {
  const RoutingPlan plan =
      make_routing_plan(mine.ids.data(), mine.weights.data(), mine.n_tokens, mine.top_k, n_expert, dispatch);
  EpLocalBatch got;
  std::vector<float> y_rows(static_cast<size_t>(plan.n_rows() * kD), -1.0f);  // [n_rows, D]
  EpExchangeArgs args;
  args.plan = &plan;
  args.x = mine.x.data();
  args.d_model = kD;
  args.y_rows = y_rows.data();
  args.compute = [&](const EpLocalBatch& batch, float* y) {
    got = batch;
    for (int64_t r = 0; r < batch.n_rows(); ++r)
      for (int64_t d = 0; d < kD; ++d)
        y[r * kD + d] = expert_fn(batch.x[size_t(r * kD + d)], batch.expert_ids[size_t(r)], batch.weights[size_t(r)]);
  };
  ep_exchange(comm, placement, args, stats);
  std::string diff = batch_difference(got, naive_exchange(comm, placement, mine, plan));
  if (!diff.empty()) return diff;
  for (int64_t r = 0; r < plan.n_rows(); ++r) {
    const int32_t slot = plan.row_to_slot[size_t(r)];
    for (int64_t d = 0; d < kD; ++d) {
      const float want =
          expert_fn(mine.x[size_t(slot / mine.top_k * kD + d)], mine.ids[size_t(slot)], mine.weights[size_t(slot)]);
      if (y_rows[size_t(r * kD + d)] != want) return "result of plan row " + std::to_string(r) + " differs";
    }
  }
  return "";
}

}  // namespace moe::parallel::testing
