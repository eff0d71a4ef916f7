// The float paths of training against double loops at odd sizes, at the scalar level and the CPU's
// own: the three matmul layouts (A.B^T, A.B, A^T.B on kernels/gemm_f32.h; k past one 256 block, n past
// one 512 block, row and column edges), the threaded par_mm_* wrappers, and the GEMM-based causal
// attention forward/backward. The GEMM kernels themselves are tested in tests/kernels/gemm_f32_test.cc.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "runtime/cpu_features.h"
#include "runtime/thread_pool.h"
#include "train/linalg.h"
#include "train/ops.h"
#include "train/rng.h"

namespace moe::train {
namespace {

std::vector<float> randf(int64_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(r.normal());
  return v;
}

std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// |got - want| <= tol * (1 + |want|) elementwise.
void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1.0 + std::abs(want[i]))) << what << " element " << i;
}

struct Dims {
  int64_t m, n, k;
};
const Dims kDims[] = {{1, 1, 1}, {5, 7, 3}, {13, 33, 17}, {12, 32, 16}, {25, 47, 300}, {40, 530, 20}, {3, 600, 257}};

// Every test below runs at the scalar level (the GEMM's portable twin) and at the CPU's own.
class TrainLinalg : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override { prev_ = set_isa_override(GetParam()); }
  void TearDown() override { set_isa_override(prev_); }
  Isa prev_ = Isa::kScalar;
};
// The highest level as a cap: what this CPU detects.
INSTANTIATE_TEST_SUITE_P(Isa, TrainLinalg, ::testing::Values(Isa::kScalar, Isa::kAvx512Bf16), [](const auto& info) {
  return std::string(info.param == Isa::kScalar ? "scalar" : "native");
});

TEST_P(TrainLinalg, ThreeLayoutsMatchDoubleLoops) {
  for (const Dims& d : kDims) {
    for (bool acc : {false, true}) {
      const auto a = randf(d.m * d.k, 1), bt = randf(d.n * d.k, 2), bn = randf(d.k * d.n, 3), at = randf(d.k * d.m, 4);
      const auto c0 = randf(d.m * d.n, 5);
      std::vector<double> want(c0.begin(), c0.end());
      std::vector<float> got = c0;
      // A.B^T
      mm_nt<double>(widen(a).data(), widen(bt).data(), want.data(), d.m, d.n, d.k, acc);
      mm_nt<float>(a.data(), bt.data(), got.data(), d.m, d.n, d.k, acc);
      expect_close(got, want, 1e-4, "nt");
      // A.B
      mm_nn<double>(widen(a).data(), widen(bn).data(), want.data(), d.m, d.n, d.k, acc);
      mm_nn<float>(a.data(), bn.data(), got.data(), d.m, d.n, d.k, acc);
      expect_close(got, want, 1e-4, "nn");
      // A^T.B
      mm_tn<double>(widen(at).data(), widen(bn).data(), want.data(), d.m, d.n, d.k, acc);
      mm_tn<float>(at.data(), bn.data(), got.data(), d.m, d.n, d.k, acc);
      expect_close(got, want, 1e-4, "tn");
    }
  }
}

TEST_P(TrainLinalg, ThreadedWrappersMatchDoubleLoops) {
  const int threads = num_threads();
  set_num_threads(2);
  const int64_t m = 301, n = 75, k = 129;
  const auto a = randf(m * k, 6), bt = randf(n * k, 7), bn = randf(k * n, 8), at = randf(k * m, 9);
  std::vector<double> want(m * n, 0.0);
  std::vector<float> got(m * n, 0.0f);
  par_mm_nt<double>(widen(a).data(), widen(bt).data(), want.data(), m, n, k, false);
  par_mm_nt<float>(a.data(), bt.data(), got.data(), m, n, k, false);
  expect_close(got, want, 1e-4, "par nt");
  par_mm_nn<double>(widen(a).data(), widen(bn).data(), want.data(), m, n, k, true);
  par_mm_nn<float>(a.data(), bn.data(), got.data(), m, n, k, true);
  expect_close(got, want, 1e-4, "par nn");
  par_mm_tn<double>(widen(at).data(), widen(bn).data(), want.data(), m, n, k, true);
  par_mm_tn<float>(at.data(), bn.data(), got.data(), m, n, k, true);
  expect_close(got, want, 1e-4, "par tn");
  set_num_threads(threads);
}

// The float attention (blocked GEMMs) against the double loops, forward and backward, with GQA and
// a sequence length that is not a multiple of the 32-row blocks.
TEST_P(TrainLinalg, AttentionFloatPathMatchesDoubleLoops) {
  for (int64_t S : {1, 37, 70}) {
    const AttentionShape s{2, S, 4, 2, 16};
    const int64_t N = s.batch * S, qd = s.n_head * s.head_dim, kd = s.n_kv_head * s.head_dim;
    const auto q = randf(N * qd, 10), k = randf(N * kd, 11), v = randf(N * kd, 12), dout = randf(N * qd, 13);
    // NaN where the float path may leave probs unwritten (past each 32-row block's end): neither
    // the comparison below nor the backward may read it.
    std::vector<float> out(N * qd), probs(s.batch * s.n_head * S * S, std::nanf(""));
    std::vector<double> out_d(N * qd), probs_d(probs.size());
    attention_forward<float>(out.data(), probs.data(), q.data(), k.data(), v.data(), s);
    attention_forward<double>(out_d.data(), probs_d.data(), widen(q).data(), widen(k).data(), widen(v).data(), s);
    expect_close(out, out_d, 1e-5, "out");
    std::vector<float> causal;  // the rows of probs up to the diagonal
    std::vector<double> causal_d;
    for (int64_t bh = 0; bh < s.batch * s.n_head; ++bh)
      for (int64_t i = 0; i < S; ++i)
        for (int64_t j = 0; j <= i; ++j) {
          causal.push_back(probs[(bh * S + i) * S + j]);
          causal_d.push_back(probs_d[(bh * S + i) * S + j]);
        }
    expect_close(causal, causal_d, 1e-5, "probs");
    std::vector<float> dq(N * qd, 0.5f), dk(N * kd, 0.5f), dv(N * kd, 0.5f);  // backward accumulates
    std::vector<double> dq_d(N * qd, 0.5), dk_d(N * kd, 0.5), dv_d(N * kd, 0.5);
    attention_backward<float>(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), probs.data(),
                              s);
    attention_backward<double>(dq_d.data(), dk_d.data(), dv_d.data(), widen(dout).data(), widen(q).data(),
                               widen(k).data(), widen(v).data(), probs_d.data(), s);
    expect_close(dq, dq_d, 1e-4, "dq");
    expect_close(dk, dk_d, 1e-4, "dk");
    expect_close(dv, dv_d, 1e-4, "dv");
  }
}

}  // namespace
}  // namespace moe::train
