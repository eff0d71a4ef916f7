// RoutingPlan: counting sort, permutation both ways, capacity drops by position and by
// probability against a naive reference, and bad capacity settings.
#include <gtest/gtest.h>

#include <random>

#include "moe/routing_plan.h"
#include "naive_moe.h"
#include "util/error.h"

namespace moe {
namespace {

struct Routed {
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

// Random distinct experts per token, skewed towards low ids so capacity drops happen.
Routed random_routing(int64_t T, int K, int E, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  Routed r;
  for (int64_t t = 0; t < T; ++t) {
    std::vector<int> pool(E);
    for (int e = 0; e < E; ++e) pool[e] = e;
    for (int k = 0; k < K; ++k) {
      const int pick = std::min<int>(static_cast<int>(u(rng) * u(rng) * (E - k)), E - k - 1);
      r.ids.push_back(pool[pick]);
      pool.erase(pool.begin() + pick);
      r.weights.push_back(std::round(u(rng) * 8) / 8);  // coarse: many equal weights test the tie rule
    }
  }
  return r;
}

TEST(RoutingPlan, DroplessCountingSort) {
  const int64_t T = 5;
  const int K = 2, E = 3;
  const std::vector<int32_t> ids = {2, 0, 0, 1, 2, 1, 0, 2, 1, 0};
  const std::vector<float> w(10, 0.5f);
  const RoutingPlan p = make_routing_plan(ids.data(), w.data(), T, K, E, {});
  p.check_consistent();
  EXPECT_EQ(p.expert_counts, (std::vector<int64_t>{4, 3, 3}));
  EXPECT_EQ(p.expert_offsets, (std::vector<int64_t>{0, 4, 7, 10}));
  // Expert 0's rows hold slots 1, 2, 6, 9 in slot order; expert 1: 3, 5, 8; expert 2: 0, 4, 7.
  EXPECT_EQ(p.row_to_slot, (std::vector<int32_t>{1, 2, 6, 9, 3, 5, 8, 0, 4, 7}));
  EXPECT_EQ(p.slot_to_row[0], 7);
  EXPECT_EQ(p.token_of_row(3), 4);
  EXPECT_TRUE(p.dropped_slots.empty());
  EXPECT_EQ(p.capacity, 0);
  EXPECT_EQ(p.n_experts_touched(), 3);
}

TEST(RoutingPlan, CapacityMatchesNaiveForBothPolicies) {
  int with_drops = 0;
  for (int E : {3, 5, 7, 12}) {
    for (int K = 1; K <= std::min(E, 8); ++K) {
      for (int64_t T : {1, 3, 17, 64}) {
        const Routed r = random_routing(T, K, E, static_cast<uint32_t>(E * 1000 + K * 10 + T));
        for (double cf : {0.5, 1.0, 1.25, 2.0}) {
          for (DropPolicy pol : {DropPolicy::kPosition, DropPolicy::kProbability}) {
            DispatchOptions d;
            d.mode = CapacityMode::kCapacity;
            d.capacity_factor = cf;
            d.drop_policy = pol;
            const RoutingPlan p = make_routing_plan(r.ids.data(), r.weights.data(), T, K, E, d);
            p.check_consistent();
            EXPECT_EQ(p.capacity, std::max<int64_t>(1, static_cast<int64_t>(std::ceil(cf * T * K / E))));
            const std::vector<bool> keep = testing::naive_keep(d, r.ids, r.weights, T, K, E);
            for (int64_t s = 0; s < T * K; ++s) {
              ASSERT_EQ(p.slot_to_row[s] >= 0, keep[s]) << "E=" << E << " K=" << K << " T=" << T << " cf=" << cf;
            }
            with_drops += !p.dropped_slots.empty();
          }
        }
      }
    }
  }
  EXPECT_GT(with_drops, 50);
}

TEST(RoutingPlan, ProbabilityPolicyKeepsTheHeaviestSlots) {
  // Four tokens all on expert 0 (K = 1, E = 2): capacity ceil(1.0 * 4 / 2) = 2.
  const std::vector<int32_t> ids = {0, 0, 0, 0};
  const std::vector<float> w = {0.1f, 0.9f, 0.5f, 0.9f};
  DispatchOptions d;
  d.mode = CapacityMode::kCapacity;
  d.drop_policy = DropPolicy::kProbability;
  RoutingPlan p = make_routing_plan(ids.data(), w.data(), 4, 1, 2, d);
  EXPECT_EQ(p.dropped_slots, (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(p.row_to_slot, (std::vector<int32_t>{1, 3}));  // kept rows stay in token order
  d.drop_policy = DropPolicy::kPosition;
  p = make_routing_plan(ids.data(), w.data(), 4, 1, 2, d);
  EXPECT_EQ(p.dropped_slots, (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(p.routed_counts, (std::vector<int64_t>{4, 0}));
}

TEST(RoutingPlan, BadSettingsAreClearErrors) {
  const std::vector<int32_t> ids = {0, 3};
  const std::vector<float> w = {1.0f, 1.0f};
  DispatchOptions d;
  d.mode = CapacityMode::kCapacity;
  for (double cf : {0.0, -1.0, std::nan("")}) {
    d.capacity_factor = cf;
    try {
      make_routing_plan(ids.data(), w.data(), 2, 1, 4, d);
      ADD_FAILURE() << "capacity factor " << cf << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("capacity factor"), std::string::npos) << e.what();
    }
  }
  try {
    make_routing_plan(ids.data(), w.data(), 2, 1, 3, {});
    ADD_FAILURE() << "id 3 with 3 experts accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("outside [0, 3)"), std::string::npos) << e.what();
  }
}

TEST(RoutingPlan, EmptyBatch) {
  const RoutingPlan p = make_routing_plan(nullptr, nullptr, 0, 2, 4, {});
  p.check_consistent();
  EXPECT_EQ(p.n_rows(), 0);
  EXPECT_EQ(p.n_experts_touched(), 0);
}

}  // namespace
}  // namespace moe
