// The row kernels of vmath.h (RMSNorm forward/backward rows, y += a b s, softmax and its
// backward) against double loops at every size from 0 to past twice the AVX-512 width and at
// misaligned pointers, through the dispatch (AVX-512 where the CPU has it) and the scalar path
// (MOE_ISA-independent: the scalar twin is the n-element loop of vmath.cc below AVX-512).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "runtime/cpu_features.h"
#include "train/rng.h"
#include "train/vmath.h"

namespace moe::train {
namespace {

constexpr int64_t kMaxN = 40;  // > 2 x 16 lanes
constexpr int64_t kOffsets[] = {0, 1, 3};

std::vector<float> randf(int64_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(r.normal());
  return v;
}

// |got - want| <= tol * (1 + |want|), and nothing written past n.
void expect_row(const float* got, const std::vector<double>& want, double tol, const char* what, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1.0 + std::abs(want[i]))) << what << " n " << n << " i " << i;
}

TEST(TrainVmath, RmsnormRowsMatchDouble) {
  for (int64_t off : kOffsets) {
    for (int64_t n = 0; n <= kMaxN; ++n) {
      auto x = randf(n + off + 1, 1 + n), w = randf(n + off + 1, 2 + n), g = randf(n + off + 1, 3 + n);
      auto dx = randf(n + off + 1, 4 + n), y = randf(n + off + 1, 5 + n);
      const float r = 0.7f, m = -0.3f, s = 1.3f, guard = 12345.0f;
      std::vector<float> out(static_cast<size_t>(n + off + 1), guard);
      std::vector<double> want_out(n), want_dx(n), want_y(n);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t j = i + off;
        want_out[i] = static_cast<double>(x[j]) * r * w[j];
        want_dx[i] =
            dx[j] + static_cast<double>(r) * (static_cast<double>(g[j]) * w[j] - static_cast<double>(x[j]) * r * m);
        want_y[i] = y[j] + static_cast<double>(g[j]) * x[j] * s;
      }
      rmsnorm_row_f32(out.data() + off, x.data() + off, w.data() + off, r, n);
      rmsnorm_row_backward_f32(dx.data() + off, g.data() + off, x.data() + off, w.data() + off, r, m, n);
      mul_acc_f32(y.data() + off, g.data() + off, x.data() + off, s, n);
      expect_row(out.data() + off, want_out, 1e-6, "rmsnorm_row", n);
      expect_row(dx.data() + off, want_dx, 1e-6, "rmsnorm_row_backward", n);
      expect_row(y.data() + off, want_y, 1e-6, "mul_acc", n);
      EXPECT_EQ(out[n + off], guard) << "rmsnorm_row wrote past n " << n;
    }
  }
}

TEST(TrainVmath, SoftmaxAndBackwardMatchDouble) {
  for (int64_t off : kOffsets) {
    for (int64_t n = 0; n <= kMaxN; ++n) {
      auto x = randf(n + off + 1, 10 + n), d = randf(n + off + 1, 20 + n);
      for (auto& v : x) v *= 8.0f;  // a wide range of exponents
      const float scale = 0.17677669f, guard = 12345.0f;
      x[n + off] = d[n + off] = guard;
      std::vector<double> want_p(n), want_d(n);
      double mx = -INFINITY, sum = 0;
      for (int64_t i = 0; i < n; ++i) mx = std::max(mx, static_cast<double>(x[i + off]) * scale);
      for (int64_t i = 0; i < n; ++i) sum += (want_p[i] = std::exp(static_cast<double>(x[i + off]) * scale - mx));
      for (int64_t i = 0; i < n; ++i) want_p[i] /= sum;
      softmax_f32(x.data() + off, n, scale);
      expect_row(x.data() + off, want_p, 1e-6, "softmax", n);
      EXPECT_EQ(x[n + off], guard) << "softmax wrote past n " << n;

      double dot = 0;  // backward against the float probabilities the forward produced
      for (int64_t i = 0; i < n; ++i) dot += static_cast<double>(d[i + off]) * x[i + off];
      for (int64_t i = 0; i < n; ++i) want_d[i] = static_cast<double>(x[i + off]) * (d[i + off] - dot) * scale;
      softmax_backward_f32(d.data() + off, x.data() + off, n, scale);
      expect_row(d.data() + off, want_d, 1e-6, "softmax_backward", n);
      EXPECT_EQ(d[n + off], guard) << "softmax_backward wrote past n " << n;
    }
  }
}

TEST(TrainVmath, Avx512RowKernelsMatchScalarTwins) {
  if (active_isa() < Isa::kAvx512) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (int64_t n = 0; n <= kMaxN; ++n) {
    auto x = randf(n, 30 + n), w = randf(n, 31 + n), g = randf(n, 32 + n);
    std::vector<float> a(n), b(n);
    vmath_detail::rmsnorm_row_avx512(a.data(), x.data(), w.data(), 0.9f, n);
    for (int64_t i = 0; i < n; ++i) b[i] = x[i] * 0.9f * w[i];
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(a[i], b[i]) << "rmsnorm_row is elementwise: same rounding, n " << n;
  }
}

}  // namespace
}  // namespace moe::train
