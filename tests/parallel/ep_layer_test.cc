// EpMoeLayer with 1 to 4 in-process ranks, each holding only its experts' weights, against one
// MoeLayer over all the tokens: forward_replicated is bitwise equal with the machine's kernels;
// data-parallel forward (each rank a consecutive block of the tokens) is bitwise equal with the
// scalar kernels (the SIMD matmul picks its kernel by row count, so the router's logits of a
// 5-token block may differ in the last bit from a 23-token call) and close with SIMD. Covers
// shared experts with a gate, weight-before-expert, bf16 experts, ranks owning nothing; a rank
// missing its expert weights fails on every rank.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <mutex>
#include <optional>

#include "ep_test_model.h"
#include "parallel/comm.h"
#include "parallel/ep_layer.h"
#include "runtime/cpu_features.h"
#include "util/error.h"

namespace moe::parallel {
namespace {

using namespace moe::parallel::testing;

struct Case {
  int n_rank;
  std::vector<int64_t> tokens_per_rank;
  std::string placement;
};

enum class Mode { kDataParallelScalar, kDataParallelSimd, kReplicated };

class ScalarKernels {
 public:
  ScalarKernels() : previous_(set_isa_override(Isa::kScalar)) {}
  ~ScalarKernels() { set_isa_override(previous_); }

 private:
  Isa previous_;
};

void expect_equal_to_one_process(const Model& m, const Case& c, Mode mode) {
  std::optional<ScalarKernels> scalar;
  if (mode == Mode::kDataParallelScalar) scalar.emplace();
  int64_t T = 0;
  for (int64_t t : c.tokens_per_rank) T += t;
  const int64_t D = m.config.d_model;
  const std::vector<float> x = random_vec(size_t(T * D), 99, 4.0f);  // [T, D]
  std::vector<float> want(size_t(T * D));                            // [T, D]
  MoeLayer single(m.config, m.weights);
  single.forward(x.data(), T, want.data());

  const ExpertPlacement placement = ExpertPlacement::parse(c.placement, m.config.router.n_expert, c.n_rank);
  std::vector<float> got(size_t(T * D), -7.0f);  // [T, D]
  std::vector<EpTelemetry> tel(size_t(c.n_rank));
  run_local_ranks(c.n_rank, [&](Comm& comm) {
    int64_t t0 = 0;
    for (int r = 0; r < comm.rank(); ++r) t0 += c.tokens_per_rank[size_t(r)];
    EpMoeLayer layer(comm, placement, m.config, weights_of_rank(m, placement, comm.rank()));
    EpTelemetry& t = tel[size_t(comm.rank())];
    if (mode == Mode::kReplicated) {
      std::vector<float> full(size_t(T * D));  // [T, D] this rank's copy of the output
      layer.forward_replicated(x.data(), T, full.data(), {}, &t);
      EXPECT_EQ(0, std::memcmp(full.data(), want.data(), 4 * full.size())) << "rank " << comm.rank();
      const int64_t b0 = T * comm.rank() / comm.size(), b1 = T * (comm.rank() + 1) / comm.size();
      std::copy(full.begin() + b0 * D, full.begin() + b1 * D, got.begin() + b0 * D);
    } else {
      layer.forward(x.data() + t0 * D, c.tokens_per_rank[size_t(comm.rank())], got.data() + t0 * D, {}, &t);
    }
  });
  for (int64_t i = 0; i < T * D; ++i) {
    if (mode == Mode::kDataParallelSimd) {
      ASSERT_NEAR(got[size_t(i)], want[size_t(i)], 1e-4f * (1.0f + std::fabs(want[size_t(i)]))) << "element " << i;
      continue;
    }
    ASSERT_EQ(0, std::memcmp(&got[size_t(i)], &want[size_t(i)], 4))
        << "token " << i / D << " dim " << i % D << ": ep " << got[size_t(i)] << " one process " << want[size_t(i)];
  }
  int64_t rows = 0;
  for (const auto& t : tel) rows += t.rows_computed();
  EXPECT_EQ(rows, single.last_plan().n_rows());
}

const std::vector<Case> kCases = {
    {1, {23}, "contiguous"},          {2, {11, 12}, "contiguous"},
    {2, {0, 23}, "round-robin"},      {3, {1, 17, 5}, "round-robin"},
    {4, {6, 6, 0, 11}, "contiguous"}, {4, {64, 70, 1, 65}, "round-robin"},  // past the GEMM and decode-path thresholds
};

void check_all(const Model& m, const std::vector<Case>& cases) {
  for (Mode mode : {Mode::kReplicated, Mode::kDataParallelScalar, Mode::kDataParallelSimd}) {
    for (const Case& c : cases) {
      SCOPED_TRACE(::testing::Message() << "mode " << int(mode) << ", " << c.n_rank << " ranks " << c.placement);
      expect_equal_to_one_process(m, c, mode);
    }
  }
}

TEST(EpMoeLayer, LikeOneProcessF32WithGatedSharedExpert) {
  check_all(make_model(6, 2, 32, 24, true, false, false), kCases);
}

TEST(EpMoeLayer, LikeOneProcessWeightBeforeExpert) { check_all(make_model(5, 1, 16, 20, false, true, false), kCases); }

TEST(EpMoeLayer, LikeOneProcessBf16Experts) { check_all(make_model(7, 3, 32, 16, true, false, true), kCases); }

// Panels: bf16 experts take the down projection on h rounded once (ExpertTask::hb) on both sides, and
// MoeLayer fuses the combine into it; odd F exercises the pad column.
TEST(EpMoeLayer, LikeOneProcessBf16PanelExperts) {
  Model m = make_model(7, 3, 32, 17, true, false, true);
  pack_experts(m);
  check_all(m, kCases);
}

TEST(EpMoeLayer, MoreRanksThanExperts) {
  check_all(make_model(3, 2, 16, 8, false, false, false), {{4, {3, 4, 5, 6}, "contiguous"}});  // rank 3 owns nothing
}

TEST(EpMoeLayer, RankWithoutItsWeightsFailsEverywhere) {
  const Model m = make_model(4, 2, 16, 8, false, false, false);
  const ExpertPlacement placement = ExpertPlacement::contiguous(4, 2);
  int failures = 0;
  std::mutex mu;
  EXPECT_THROW(run_local_ranks(2,
                               [&](Comm& comm) {
                                 MoeLayerWeights w = weights_of_rank(m, placement, comm.rank());
                                 if (comm.rank() == 1) w.experts.experts[3] = ExpertMatrices{};  // its own expert
                                 try {
                                   run_collectively(comm, "loading experts",
                                                    [&] { EpMoeLayer layer(comm, placement, m.config, w); });
                                 } catch (const Error& e) {
                                   EXPECT_NE(std::string(e.what()).find("rank 1 owns expert 3"), std::string::npos);
                                   std::lock_guard<std::mutex> lock(mu);
                                   ++failures;
                                   throw;
                                 }
                               }),
               Error);
  EXPECT_EQ(failures, 2);
}

}  // namespace
}  // namespace moe::parallel
