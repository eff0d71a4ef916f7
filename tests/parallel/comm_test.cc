// Comm: the in-process communicator with 2, 3 and 4 ranks and the single-rank stub, checked
// collective by collective with exact values; a failing rank stops the others instead of hanging.
#include <gtest/gtest.h>

#include <atomic>
#include <numeric>

#include "parallel/comm.h"
#include "util/error.h"

namespace moe::parallel {
namespace {

// Rank s sends (s + 1) * (d + 1) - 1 elements to rank d: rank 0 sends nothing to rank 0.
int64_t count_between(int s, int d) { return int64_t(s + 1) * (d + 1) - 1; }
float value_of(int s, int d, int64_t i, int64_t j) { return float(s * 1000 + d * 100 + i) + 0.25f * float(j); }

void check_all_to_all_v(Comm& comm) {
  const int R = comm.size(), me = comm.rank();
  const int64_t row = 3;  // elements per row
  std::vector<int64_t> send_counts(R), recv_counts(R);
  for (int d = 0; d < R; ++d) send_counts[d] = count_between(me, d);
  comm.all_to_all_counts(send_counts.data(), recv_counts.data());
  for (int s = 0; s < R; ++s) ASSERT_EQ(recv_counts[s], count_between(s, me));
  const VLayout sl = VLayout::packed(send_counts), rl = VLayout::packed(recv_counts);
  std::vector<float> send(size_t(sl.total() * row)), recv(size_t(rl.total() * row), -1.0f);
  for (int d = 0; d < R; ++d)
    for (int64_t i = 0; i < send_counts[d]; ++i)
      for (int64_t j = 0; j < row; ++j) send[size_t((sl.displs[d] + i) * row + j)] = value_of(me, d, i, j);
  comm.all_to_all_v_f32(send.data(), sl, recv.data(), rl, row);
  for (int s = 0; s < R; ++s)
    for (int64_t i = 0; i < recv_counts[s]; ++i)
      for (int64_t j = 0; j < row; ++j)
        ASSERT_EQ(recv[size_t((rl.displs[s] + i) * row + j)], value_of(s, me, i, j)) << "from " << s << " row " << i;

  std::vector<int32_t> isend(size_t(sl.total() * 2)), irecv(size_t(rl.total() * 2));
  for (size_t i = 0; i < isend.size(); ++i) isend[i] = int32_t(me * 100000 + int(i));
  comm.all_to_all_v_i32(isend.data(), sl, irecv.data(), rl, 2);
  for (int s = 0; s < R; ++s)
    for (int64_t i = 0; i < recv_counts[s] * 2; ++i) {
      int64_t displ = 0;
      for (int d = 0; d < me; ++d) displ += count_between(s, d);
      ASSERT_EQ(irecv[size_t(rl.displs[s] * 2 + i)], int32_t(s * 100000 + int(displ * 2 + i)));
    }
}

void check_reductions(Comm& comm) {
  const int R = comm.size(), me = comm.rank();
  std::vector<double> d = {double(me), 0.5 * me, -1.0};
  comm.all_reduce_sum(d);
  EXPECT_EQ(d[0], R * (R - 1) / 2.0);
  EXPECT_EQ(d[1], 0.25 * R * (R - 1));
  EXPECT_EQ(d[2], -double(R));
  EXPECT_EQ(comm.all_reduce_sum(int64_t(me + 1)), int64_t(R) * (R + 1) / 2);
  EXPECT_EQ(comm.all_reduce_max(double(me == 1 ? 7.5 : -3.0)), R > 1 ? 7.5 : -3.0);
  std::vector<float> f = {float(me), 1.0f};
  comm.all_reduce(f.data(), 2, ReduceType::kF32, ReduceOp::kMax);
  EXPECT_EQ(f[0], float(R - 1));
  EXPECT_EQ(f[1], 1.0f);
  const auto strings = comm.all_gather_strings(std::string(size_t(me), char('a' + me)));
  ASSERT_EQ(int(strings.size()), R);
  for (int r = 0; r < R; ++r) EXPECT_EQ(strings[r], std::string(size_t(r), char('a' + r)));
  comm.barrier();
}

class LocalComm : public ::testing::TestWithParam<int> {};

TEST_P(LocalComm, CollectivesGiveExactValues) {
  std::atomic<int> done{0};
  run_local_ranks(GetParam(), [&](Comm& comm) {
    EXPECT_EQ(comm.size(), GetParam());
    EXPECT_STREQ(comm.kind(), "local");
    for (int rep = 0; rep < 3; ++rep) {  // reuse of the rendezvous
      check_all_to_all_v(comm);
      check_reductions(comm);
    }
    ++done;
  });
  EXPECT_EQ(done.load(), GetParam());
}

TEST_P(LocalComm, ThrowingRankStopsTheOthers) {
  // Rank 1 throws before the first collective; the others must wake from it and fail too.
  std::atomic<int> woken{0};
  try {
    run_local_ranks(GetParam(), [&](Comm& comm) {
      if (comm.rank() == 1) throw Error("load", "rank 1 cannot read its experts");
      try {
        comm.barrier();
      } catch (const Error&) {
        ++woken;
        throw;
      }
    });
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 cannot read its experts"), std::string::npos) << e.what();
  }
  EXPECT_EQ(woken.load(), GetParam() - 1);
}

TEST_P(LocalComm, RunCollectivelyReportsEveryFailedRank) {
  std::atomic<int> errors{0};
  run_local_ranks(GetParam(), [&](Comm& comm) {
    try {
      run_collectively(comm, "loading weights", [&] {
        if (comm.rank() % 2 == 1) fail("io", "rank {} has a truncated shard", comm.rank());
      });
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("loading weights failed on rank 1 ([io] rank 1 has a truncated shard)"), std::string::npos)
          << what;
      ++errors;
    }
    comm.barrier();  // the group is still usable afterwards
  });
  EXPECT_EQ(errors.load(), GetParam());
}

TEST_P(LocalComm, AbortWakesEveryRank) {
  EXPECT_THROW(run_local_ranks(GetParam(),
                               [&](Comm& comm) {
                                 if (comm.rank() == comm.size() - 1) comm.abort("out of memory");
                                 std::vector<double> v(4, 1.0);
                                 comm.all_reduce_sum(v);
                               }),
               Error);
}

INSTANTIATE_TEST_SUITE_P(Ranks, LocalComm, ::testing::Values(2, 3, 4));

TEST(SingleComm, CollectivesAreIdentity) {
  auto comm = make_single_comm();
  EXPECT_EQ(comm->size(), 1);
  check_all_to_all_v(*comm);
  check_reductions(*comm);
  EXPECT_THROW(comm->abort("stop"), Error);
}

TEST(WorldComm, SingleOutsideMpirun) {
  if (launched_by_mpirun()) GTEST_SKIP() << "running under mpirun";
  EXPECT_STREQ(make_world_comm()->kind(), "single");
}

}  // namespace
}  // namespace moe::parallel
