// The sliding windows of `moe eval --context N --stride S` (Hugging Face's fixed-length recipe):
// every prediction scored once when S < N, separate chunks when S == N, bad sizes refused.
#include <gtest/gtest.h>

#include <vector>

#include "model/perplexity.h"
#include "util/error.h"

namespace moe {
namespace {

std::vector<std::vector<int64_t>> as_rows(const std::vector<EvalWindow>& ws) {
  std::vector<std::vector<int64_t>> out;
  for (const EvalWindow& w : ws) out.push_back({w.begin, w.end, w.first_scored});
  return out;
}

TEST(PlanWindows, StrideEqualToContextIsSeparateChunks) {
  EXPECT_EQ(as_rows(plan_windows(10, 4, 4)), (std::vector<std::vector<int64_t>>{{0, 4, 1}, {4, 8, 5}, {8, 10, 9}}));
  // A last chunk of one token has no prediction inside it: left out.
  EXPECT_EQ(as_rows(plan_windows(9, 4, 4)), (std::vector<std::vector<int64_t>>{{0, 4, 1}, {4, 8, 5}}));
}

TEST(PlanWindows, OverlappingWindowsScoreEveryPredictionOnce) {
  EXPECT_EQ(as_rows(plan_windows(10, 4, 2)),
            (std::vector<std::vector<int64_t>>{{0, 4, 1}, {2, 6, 4}, {4, 8, 6}, {6, 10, 8}}));
  for (int64_t T : {2, 3, 7, 16, 17, 100}) {
    for (int64_t n : {2, 3, 8, 64}) {
      for (int64_t s = 1; s < n; ++s) {
        std::vector<int> scored(static_cast<size_t>(T), 0);
        for (const EvalWindow& w : plan_windows(T, n, s)) {
          EXPECT_LE(w.end - w.begin, n);
          EXPECT_GT(w.first_scored, w.begin);  // at least one token of context
          for (int64_t t = w.first_scored; t < w.end; ++t) ++scored[static_cast<size_t>(t)];
        }
        EXPECT_EQ(scored[0], 0);
        for (int64_t t = 1; t < T; ++t) EXPECT_EQ(scored[static_cast<size_t>(t)], 1) << T << " " << n << " " << s;
      }
    }
  }
}

TEST(PlanWindows, BadSizesAreErrors) {
  EXPECT_THROW(plan_windows(10, 1, 1), Error);
  EXPECT_THROW(plan_windows(10, 4, 5), Error);
  EXPECT_THROW(plan_windows(10, 4, 0), Error);
}

}  // namespace
}  // namespace moe
