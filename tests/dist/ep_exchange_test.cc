// The EP exchange against a naive reference exchange (every rank gathers every rank's tokens and
// picks its rows by brute force), with exact equality of ids, weights, source ranks and rows on
// the way out and of the results on the way back. Covers experts no token chooses, ranks that
// own no expert, ranks with no tokens, capacity drops, and 1 to 4 in-process ranks.
#include <gtest/gtest.h>

#include <cstring>

#include "dist/comm.h"
#include "dist/ep_exchange.h"
#include "dist/placement.h"

namespace moe::dist {
namespace {

constexpr int64_t kD = 5;

struct RankTokens {
  int64_t n_tokens = 0;
  int top_k = 0;
  std::vector<int32_t> ids;    // [T, K]
  std::vector<float> weights;  // [T, K]
  std::vector<float> x;        // [T, D]
};

uint32_t mix(uint32_t a) {
  a ^= a >> 16;
  a *= 0x7feb352dU;
  a ^= a >> 15;
  a *= 0x846ca68bU;
  return a ^ (a >> 16);
}

// Deterministic tokens of `rank`; expert `unused` is never chosen.
RankTokens make_tokens(int rank, int64_t n_tokens, int top_k, int n_expert, int unused) {
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

float expert_fn(float x, int32_t e, float w) { return x * float(e + 1) + w; }

template <typename T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}
template <typename T>
std::vector<T> from_bytes(const std::string& s) {
  std::vector<T> v(s.size() / sizeof(T));
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}

// Naive reference: every rank gathers everyone's tokens and plans, then lists its rows in the
// documented order (local expert, source rank, token, choice) by brute force.
EpLocalBatch naive_exchange(Comm& comm, const ExpertPlacement& placement, const RankTokens& mine,
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

void expect_same_batch(const EpLocalBatch& got, const EpLocalBatch& want, int rank) {
  EXPECT_EQ(got.experts, want.experts) << "rank " << rank;
  EXPECT_EQ(got.offsets, want.offsets) << "rank " << rank;
  EXPECT_EQ(got.expert_ids, want.expert_ids) << "rank " << rank;
  EXPECT_EQ(got.source_rank, want.source_rank) << "rank " << rank;
  ASSERT_EQ(got.weights.size(), want.weights.size());
  EXPECT_EQ(0, std::memcmp(got.weights.data(), want.weights.data(), 4 * got.weights.size())) << "rank " << rank;
  ASSERT_EQ(got.x.size(), want.x.size());
  EXPECT_EQ(0, std::memcmp(got.x.data(), want.x.data(), 4 * got.x.size())) << "rank " << rank;
}

struct Case {
  int n_rank;
  int n_expert;
  int top_k;
  std::vector<int64_t> tokens_per_rank;
  std::string placement;  // contiguous, round-robin, or "last-rank-empty"
  bool capacity = false;
};

ExpertPlacement placement_for(const Case& c) {
  if (c.placement == "last-rank-empty") {  // every expert on ranks 0 .. R-2
    std::vector<int> owner(static_cast<size_t>(c.n_expert));
    for (int e = 0; e < c.n_expert; ++e) owner[size_t(e)] = e % std::max(1, c.n_rank - 1);
    return ExpertPlacement(owner, c.n_rank);
  }
  return ExpertPlacement::parse(c.placement, c.n_expert, c.n_rank);
}

void run_case(const Case& c) {
  const ExpertPlacement placement = placement_for(c);
  const int unused = 3 % c.n_expert;
  run_local_ranks(c.n_rank, [&](Comm& comm) {
    const RankTokens mine =
        make_tokens(comm.rank(), c.tokens_per_rank[size_t(comm.rank())], c.top_k, c.n_expert, unused);
    DispatchOptions dispatch;
    if (c.capacity) {
      dispatch.mode = CapacityMode::kCapacity;
      dispatch.capacity_factor = 0.5;
    }
    const RoutingPlan plan =
        make_routing_plan(mine.ids.data(), mine.weights.data(), mine.n_tokens, c.top_k, c.n_expert, dispatch);
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
    EpExchangeStats stats;
    ep_exchange(comm, placement, args, &stats);
    expect_same_batch(got, naive_exchange(comm, placement, mine, plan), comm.rank());
    for (int64_t r = 0; r < plan.n_rows(); ++r) {
      const int32_t slot = plan.row_to_slot[size_t(r)];
      for (int64_t d = 0; d < kD; ++d) {
        const float want =
            expert_fn(mine.x[size_t(slot / c.top_k * kD + d)], mine.ids[size_t(slot)], mine.weights[size_t(slot)]);
        ASSERT_EQ(y_rows[size_t(r * kD + d)], want) << "rank " << comm.rank() << " row " << r;
      }
    }
    // The unused expert computed nothing; bytes agree with the formula and balance across ranks.
    if (placement.owner(unused) == comm.rank())
      EXPECT_EQ(got.offsets[size_t(placement.local_index(unused)) + 1],
                got.offsets[size_t(placement.local_index(unused))]);
    EXPECT_EQ(stats.bytes_sent, ep_bytes_sent(comm.size(), kD, stats.rows_sent, stats.rows_received));
    EXPECT_EQ(stats.bytes_received, ep_bytes_sent(comm.size(), kD, stats.rows_received, stats.rows_sent));
    EXPECT_EQ(stats.rows_sent + stats.rows_local, plan.n_rows());
    EXPECT_EQ(comm.all_reduce_sum(stats.bytes_sent), comm.all_reduce_sum(stats.bytes_received));
    EXPECT_EQ(comm.all_reduce_sum(stats.rows_sent), comm.all_reduce_sum(stats.rows_received));
  });
}

TEST(EpExchange, MatchesNaiveReference) {
  const std::vector<Case> cases = {
      {1, 4, 2, {9}, "contiguous"},
      {2, 7, 2, {11, 6}, "contiguous"},
      {2, 7, 3, {0, 13}, "round-robin"},  // rank 0 sends nothing
      {3, 8, 2, {5, 0, 17}, "contiguous"},
      {3, 5, 2, {4, 9, 3}, "last-rank-empty"},  // rank 2 owns no expert
      {4, 10, 2, {7, 1, 0, 12}, "round-robin"},
      {4, 3, 1, {6, 6, 6, 6}, "contiguous"},        // E < R: rank 3 owns nothing
      {3, 6, 2, {20, 9, 14}, "round-robin", true},  // capacity drops
      {2, 4, 2, {0, 0}, "contiguous"},              // no tokens anywhere
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.n_rank << " ranks, " << c.n_expert << " experts, " << c.placement
                                      << (c.capacity ? " capacity" : ""));
    run_case(c);
  }
}

}  // namespace
}  // namespace moe::dist
