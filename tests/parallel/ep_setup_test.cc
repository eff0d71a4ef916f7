// init_from_args outside mpirun, and the inspect predictions.
#include <gtest/gtest.h>

#include "parallel/ep_exchange.h"
#include "parallel/ep_setup.h"
#include "util/error.h"

namespace moe::parallel {
namespace {

TEST(EpSetup, InitFromArgsOutsideMpirun) {
  if (launched_by_mpirun()) GTEST_SKIP() << "running under mpirun";
  EpContext ctx = init_from_args({});
  EXPECT_EQ(ctx.comm->size(), 1);
  EXPECT_TRUE(ctx.is_root());
  EXPECT_EQ(ctx.placement(8).experts_of(0).size(), 8u);
  EXPECT_THROW(init_from_args({2, "contiguous"}), UsageError);  // needs mpirun -np 2
  EXPECT_THROW(init_from_args({0, "contiguous"}), UsageError);
  EXPECT_THROW(init_from_args({1, "striped"}), UsageError);
}

TEST(EpSetup, Predictions) {
  const auto p = ExpertPlacement::contiguous(10, 4);  // 3 3 2 2 experts
  EXPECT_EQ(ep_weight_bytes_per_rank(p, 100, 2, 7), (std::vector<int64_t>{607, 607, 407, 407}));
  // T 512, K 8, D 2048, R 2: 2048 rows each way.
  EXPECT_EQ(ep_predicted_bytes_per_layer(512, 8, 2048, 2), 8 + 2048 * (4 * 2048 + 8) + 2048 * 4 * 2048);
  EXPECT_EQ(ep_predicted_bytes_per_layer(5, 2, 16, 1), 0);
  EXPECT_EQ(ep_predicted_bytes_per_layer(1, 8, 4, 2), ep_bytes_sent(2, 4, 4, 4));
}

}  // namespace
}  // namespace moe::parallel
