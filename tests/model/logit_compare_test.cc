// compare_logits (model/logit_compare.h): KL(P_ref || P) and top-token agreement on hand-checked cases.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "model/logit_compare.h"
#include "util/error.h"

namespace moe {
namespace {

TEST(LogitCompare, IdenticalOrShiftedRowsAreZero) {
  const std::vector<float> a = {1, 2, 3, 0.5f, -1, 4};
  std::vector<float> b = a;
  for (float& v : b) v += 7.0f;  // softmax is shift-invariant
  const LogitComparison c = compare_logits(a, b, 3);
  EXPECT_EQ(c.positions, 2);
  EXPECT_NEAR(c.mean_kl, 0.0, 1e-12);
  EXPECT_NEAR(c.max_kl, 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(c.top1_agreement, 1.0);
  EXPECT_NEAR(c.rms_dp, 0.0, 1e-12);
}

TEST(LogitCompare, TwoTokenCaseByHand) {
  // p = (0.5, 0.5), q = softmax(0, ln 3) = (0.25, 0.75): KL = 0.5 ln 2 + 0.5 ln(2/3).
  const std::vector<float> ref = {0, 0}, ours = {0, std::log(3.0f)};
  const LogitComparison c = compare_logits(ref, ours, 2);
  EXPECT_NEAR(c.mean_kl, 0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3.0), 1e-6);
  EXPECT_NEAR(c.rms_dp, 0.25, 1e-6);
  EXPECT_DOUBLE_EQ(c.top1_agreement, 0.0);  // a tie in the reference counts its first index; ours picks 1
}

TEST(LogitCompare, DisagreementAndBadInput) {
  const std::vector<float> ref = {5, 0, 0, 0, 5, 0}, ours = {0, 5, 0, 0, 5, 0};
  const LogitComparison c = compare_logits(ref, ours, 3);
  EXPECT_DOUBLE_EQ(c.top1_agreement, 0.5);
  EXPECT_GT(c.max_kl, 4.0);
  EXPECT_NEAR(c.median_kl, c.max_kl, 1e-12);  // two positions: the upper middle
  EXPECT_THROW(compare_logits(ref, std::vector<float>(5), 3), Error);
  std::vector<float> nan = ours;
  nan[2] = NAN;
  EXPECT_THROW(compare_logits(ref, nan, 3), Error);
}

}  // namespace
}  // namespace moe
