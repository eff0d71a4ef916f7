// The row kernels of vmath.h (RMSNorm forward, backward and dw over blocks of rows, softmax and
// its backward, SwiGLU and its backward) against double loops at every row length from 0 or 1 to past twice the AVX-512
// width and at misaligned pointers, through the dispatch (AVX-512 where the CPU has it, the scalar
// twins under MOE_ISA=scalar), and the AVX-512 kernels against their scalar twins.
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
  constexpr int64_t kRows = 3;
  for (int64_t off : kOffsets) {
    for (int64_t c = 1; c <= kMaxN; ++c) {
      const int64_t n = kRows * c;
      auto x = randf(n + off + 1, 1 + c), w = randf(c + off, 2 + c), g = randf(n + off + 1, 3 + c);
      auto dx = randf(n + off + 1, 4 + c), dw = randf(c + off + 1, 5 + c);
      const double eps = 1e-6;
      const float guard = 12345.0f;
      std::vector<float> out(static_cast<size_t>(n + off + 1), guard), rstd(kRows);
      std::vector<double> want_out(n), want_dx(n), want_dw(c), want_rstd(kRows);
      const float *xo = x.data() + off, *wo = w.data() + off, *go = g.data() + off;
      dw[c + off] = guard;
      for (int64_t j = 0; j < c; ++j) want_dw[j] = dw[j + off];
      for (int64_t i = 0; i < kRows; ++i) {
        double ss = 0, dot = 0;
        for (int64_t j = 0; j < c; ++j) ss += static_cast<double>(xo[i * c + j]) * xo[i * c + j];
        const double r = 1.0 / std::sqrt(ss / static_cast<double>(c) + eps);
        want_rstd[i] = r;
        for (int64_t j = 0; j < c; ++j) {
          want_out[i * c + j] = xo[i * c + j] * r * wo[j];
          dot += static_cast<double>(go[i * c + j]) * wo[j] * xo[i * c + j] * r;
          want_dw[j] += static_cast<double>(go[i * c + j]) * xo[i * c + j] * r;
        }
        const double m = dot / static_cast<double>(c);
        for (int64_t j = 0; j < c; ++j)
          want_dx[i * c + j] =
              dx[i * c + j + off] + r * (static_cast<double>(go[i * c + j]) * wo[j] - xo[i * c + j] * r * m);
      }
      rmsnorm_rows_f32(out.data() + off, rstd.data(), xo, wo, kRows, c, eps);
      expect_row(out.data() + off, want_out, 1e-5, "rmsnorm_rows", n);
      expect_row(rstd.data(), want_rstd, 1e-6, "rmsnorm_rows rstd", kRows);
      EXPECT_EQ(out[n + off], guard) << "rmsnorm_rows wrote past the rows, c " << c;
      rmsnorm_rows_backward_f32(dx.data() + off, go, xo, wo, rstd.data(), kRows, c);
      rmsnorm_rows_dw_f32(dw.data() + off, go, xo, rstd.data(), kRows, c);
      expect_row(dx.data() + off, want_dx, 1e-5, "rmsnorm_rows_backward", n);
      expect_row(dw.data() + off, want_dw, 1e-5, "rmsnorm_rows_dw", c);
      EXPECT_EQ(dw[c + off], guard) << "rmsnorm_rows_dw wrote past c " << c;
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

TEST(TrainVmath, SwigluAndBackwardMatchDouble) {
  for (int64_t off : kOffsets) {
    for (int64_t n = 0; n <= kMaxN; ++n) {
      auto g = randf(n + off + 1, 40 + n), u = randf(n + off + 1, 41 + n), d = randf(n + off + 1, 42 + n);
      for (auto& x : g) x *= 6.0f;  // far into both tails of the sigmoid
      const float guard = 12345.0f;
      std::vector<float> out(n + off + 1, guard), dg(n + off + 1, guard), du(n + off + 1, guard);
      std::vector<double> want(n), want_dg(n), want_du(n);
      for (int64_t i = 0; i < n; ++i) {
        const double gi = g[i + off], s = 1.0 / (1.0 + std::exp(-gi));
        want[i] = gi * s * u[i + off];
        want_du[i] = d[i + off] * gi * s;
        want_dg[i] = d[i + off] * u[i + off] * s * (1.0 + gi * (1.0 - s));
      }
      swiglu_f32(out.data() + off, g.data() + off, u.data() + off, n);
      std::vector<float> again(n + off + 1, guard);  // the forward's output, written by the backward
      swiglu_backward_f32(dg.data() + off, du.data() + off, d.data() + off, g.data() + off, u.data() + off, n,
                          again.data() + off);
      EXPECT_EQ(again, out) << "the backward's recomputed output differs from the forward's, n " << n;
      expect_row(out.data() + off, want, 1e-6, "swiglu", n);
      expect_row(du.data() + off, want_du, 1e-6, "swiglu_backward dup", n);
      expect_row(dg.data() + off, want_dg, 1e-6, "swiglu_backward dgate", n);
      EXPECT_EQ(out[n + off], guard);
      EXPECT_EQ(dg[n + off], guard);
      EXPECT_EQ(du[n + off], guard);
    }
  }
}

// The AVX-512 kernels and the scalar loops of vmath.cc make the same elementwise roundings; only
// the order of the row sums differs, so the results agree to float rounding.
TEST(TrainVmath, Avx512RowKernelsMatchScalarTwins) {
  if (active_isa() < Isa::kAvx512) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (int64_t c = 1; c <= kMaxN; ++c) {
    auto x = randf(2 * c, 30 + c), w = randf(c, 31 + c), g = randf(2 * c, 32 + c);
    std::vector<float> fast(2 * c), twin(2 * c), rf(2), rt(2);
    vmath_detail::rmsnorm_rows_avx512(fast.data(), rf.data(), x.data(), w.data(), 2, c, 1e-6);
    const Isa prev = set_isa_override(Isa::kScalar);
    rmsnorm_rows_f32(twin.data(), rt.data(), x.data(), w.data(), 2, c, 1e-6);
    set_isa_override(prev);
    for (int64_t i = 0; i < 2 * c; ++i) EXPECT_NEAR(fast[i], twin[i], 1e-5 * (1 + std::abs(twin[i]))) << "c " << c;
  }
}

}  // namespace
}  // namespace moe::train
