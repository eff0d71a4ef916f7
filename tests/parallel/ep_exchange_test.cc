// The EP exchange against a naive reference exchange (every rank gathers every rank's tokens and
// picks its rows by brute force), with exact equality of ids, weights, source ranks and rows on
// the way out and of the results on the way back. Covers experts no token chooses, ranks that
// own no expert, ranks with no tokens, capacity drops, and 1 to 4 in-process ranks.
#include <gtest/gtest.h>

#include <cstring>

#include "ep_test_util.h"
#include "parallel/comm.h"
#include "parallel/ep_exchange.h"
#include "parallel/placement.h"

namespace moe::parallel {
namespace {

using namespace moe::parallel::testing;

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
    EpExchangeStats stats;
    EXPECT_EQ(check_exchange(comm, placement, mine, c.n_expert, dispatch, &stats), "") << "rank " << comm.rank();
    // Bytes agree with the formula and balance across ranks.
    EXPECT_EQ(stats.bytes_sent, ep_bytes_sent(comm.size(), kD, stats.rows_sent, stats.rows_received));
    EXPECT_EQ(stats.bytes_received, ep_bytes_sent(comm.size(), kD, stats.rows_received, stats.rows_sent));
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
}  // namespace moe::parallel
