// The row kernels of vmath.h (RMSNorm forward, backward and dw over blocks of rows, softmax and
// its backward, SwiGLU and its backward) against double loops at every row length from 0 or 1 to past twice the AVX-512
// width and at misaligned pointers, through the dispatch (AVX-512 where the CPU has it, the scalar
// twins under MOE_ISA=scalar), and the AVX-512 kernels against their scalar twins.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/random_floats.h"
#include "kernels/vmath.h"
#include "runtime/cpu_features.h"

namespace moe {
namespace {

constexpr int64_t kMaxN = 40;  // > 2 x 16 lanes
constexpr int64_t kOffsets[] = {0, 1, 3};

std::vector<float> randf(int64_t n, uint32_t seed) { return test::random_normal_floats(n, seed); }

// |got - want| <= tol * (1 + |want|), and nothing written past n.
void expect_row(const float* got, const std::vector<double>& want, double tol, const char* what, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1.0 + std::abs(want[i]))) << what << " n " << n << " i " << i;
}

TEST(Vmath, RmsnormRowsMatchDouble) {
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

TEST(Vmath, SoftmaxAndBackwardMatchDouble) {
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
      {  // with a sink logit: its share of the denominator, no output of its own
        std::vector<float> xs(x);
        const float sink = n % 2 ? 3.0f : -1.0f;
        double ms = std::max(mx, double(sink)), ss = std::exp(double(sink) - ms);
        std::vector<double> want_s(n);
        for (int64_t i = 0; i < n; ++i) ss += (want_s[i] = std::exp(static_cast<double>(x[i + off]) * scale - ms));
        for (int64_t i = 0; i < n; ++i) want_s[i] /= ss;
        std::vector<float> xr(xs);
        softmax_f32(xs.data() + off, n, scale, &sink);
        softmax_f32_ref(xr.data() + off, n, scale, &sink);
        expect_row(xs.data() + off, want_s, 1e-6, "softmax with a sink", n);
        expect_row(xr.data() + off, want_s, 1e-6, "softmax_ref with a sink", n);
        EXPECT_EQ(xs[n + off], guard) << "softmax wrote past n " << n;
      }
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

TEST(Vmath, SwigluAndBackwardMatchDouble) {
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

// The AVX-512 kernels against their scalar twins (the _ref functions): same contracts, sums in another
// order and exp by a polynomial (~2 ulp), so results agree to a few float roundings of the terms' sizes.
// Lengths around the 16-lane width and long rows, at misaligned pointers.
constexpr int64_t kTwinLengths[] = {0, 1, 3, 15, 16, 17, 33, 100, 1000};

class VmathTwin : public ::testing::Test {
 protected:
  void SetUp() override {
    if (detected_isa() < Isa::kAvx512) GTEST_SKIP() << "no AVX-512 on this CPU";
    prev_ = set_isa_override(Isa::kAvx512);
  }
  void TearDown() override {
    if (detected_isa() >= Isa::kAvx512) set_isa_override(prev_);
  }
  Isa prev_ = Isa::kScalar;
};

double abs_sum(const float* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::abs(static_cast<double>(x[i]));
  return s;
}

// |fast - twin| <= tol * (1 + |twin|) elementwise (NaN only where the twin has NaN).
void expect_twin(const float* fast, const float* twin, int64_t n, double tol, const char* what) {
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(twin[i])) {
      EXPECT_TRUE(std::isnan(fast[i])) << what << " n " << n << " i " << i;
      continue;
    }
    ASSERT_NEAR(fast[i], twin[i], tol * (1.0 + std::abs(twin[i]))) << what << " n " << n << " i " << i;
  }
}

// The kernel's exp against std::exp: ~2 ulp, denormals included; infinities equal.
void expect_exp_close(float fast, float twin, float x) {
  if (std::isinf(twin)) {
    EXPECT_EQ(fast, twin) << "x " << x;
  } else {
    EXPECT_NEAR(fast, twin, 1e-6 * twin + 1e-44) << "x " << x;
  }
}

TEST_F(VmathTwin, ExpMatchesStdExpAndKeepsSpecialValues) {
  for (int64_t n : kTwinLengths) {
    for (int64_t off : kOffsets) {
      auto x = randf(n + off, 60 + static_cast<uint32_t>(n));
      for (auto& v : x) v *= 30.0f;  // e^-90 .. e^90: underflow, denormals and overflow on the way
      std::vector<float> fast(n + off + 1, 7.0f), twin(n + off + 1, 7.0f);
      exp_f32(fast.data() + off, x.data() + off, n);
      exp_f32_ref(twin.data() + off, x.data() + off, n);
      for (int64_t i = 0; i < n; ++i) {
        const float xi = x[i + off], t = twin[i + off], f = fast[i + off];
        if (xi > 88.7f && xi < 88.73f) continue;  // the kernel's inf starts at 88.7, std::exp's at 88.72
        expect_exp_close(f, t, xi);
      }
      EXPECT_EQ(fast[n + off], 7.0f) << "exp wrote past n " << n;
    }
  }
  const float inf = INFINITY, nan = NAN;
  const std::vector<float> x = {nan,   inf,   -inf,   0.0f,   -0.0f,   1e-8f,   -1e-8f,  1.0f,
                                88.5f, 89.0f, 100.0f, -87.0f, -100.0f, -104.0f, -200.0f, -nan};
  std::vector<float> fast(x.size()), twin(x.size());
  exp_f32(fast.data(), x.data(), static_cast<int64_t>(x.size()));
  exp_f32_ref(twin.data(), x.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) {
      EXPECT_TRUE(std::isnan(fast[i]) && std::isnan(twin[i])) << i;
    } else {
      expect_exp_close(fast[i], twin[i], x[i]);
    }
  }
  EXPECT_EQ(fast[1], inf);
  EXPECT_EQ(fast[2], 0.0f);
  EXPECT_EQ(fast[3], 1.0f);
  EXPECT_EQ(fast[9], inf);
  EXPECT_EQ(fast[14], 0.0f);
  std::vector<float> in_place = x;  // y may alias x
  exp_f32(in_place.data(), in_place.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_TRUE(in_place[i] == fast[i] || std::isnan(fast[i])) << i;
}

TEST_F(VmathTwin, ReductionsMatchTwins) {
  for (int64_t n : kTwinLengths) {
    for (int64_t off : kOffsets) {
      const auto a = randf(n + off, 70), b = randf(n + off, 71), c = randf(n + off, 72);
      const float *ao = a.data() + off, *bo = b.data() + off, *co = c.data() + off;
      EXPECT_EQ(max_f32(ao, n), max_f32_ref(ao, n)) << "max n " << n;
      EXPECT_NEAR(sum_f32(ao, n), sum_f32_ref(ao, n), 1e-6 * abs_sum(ao, n)) << "sum n " << n;
      std::vector<float> sq(n), abc(n);
      for (int64_t i = 0; i < n; ++i) sq[i] = ao[i] * ao[i], abc[i] = ao[i] * bo[i] * co[i];
      EXPECT_NEAR(sumsq_f32(ao, n), sumsq_f32_ref(ao, n), 1e-6 * abs_sum(sq.data(), n)) << "sumsq n " << n;
      EXPECT_NEAR(dot3_f32(ao, bo, co, n), dot3_f32_ref(ao, bo, co, n), 1e-6 * abs_sum(abc.data(), n))
          << "dot3 n " << n;
    }
  }
  EXPECT_EQ(max_f32(nullptr, 0), -INFINITY);
  EXPECT_EQ(sum_f32(nullptr, 0), 0.0f);
}

TEST_F(VmathTwin, RmsnormRowsMatchTwins) {
  constexpr int64_t kRows = 3;
  for (int64_t c : kTwinLengths) {
    if (c == 0) continue;
    for (int64_t off : kOffsets) {
      const int64_t n = kRows * c;
      const auto x = randf(n + off, 80), w = randf(c + off, 81), g = randf(n + off, 82), dx0 = randf(n + off, 83);
      const auto dw0 = randf(c + off, 84);
      const float *xo = x.data() + off, *wo = w.data() + off, *go = g.data() + off;
      std::vector<float> out_f(n), out_t(n), r_f(kRows), r_t(kRows);
      rmsnorm_rows_f32(out_f.data(), r_f.data(), xo, wo, kRows, c, 1e-6);
      rmsnorm_rows_f32_ref(out_t.data(), r_t.data(), xo, wo, kRows, c, 1e-6);
      expect_twin(out_f.data(), out_t.data(), n, 1e-5, "rmsnorm_rows");
      expect_twin(r_f.data(), r_t.data(), kRows, 1e-5, "rmsnorm_rows rstd");
      std::vector<float> dx_f(dx0.begin() + off, dx0.end()), dx_t = dx_f;
      rmsnorm_rows_backward_f32(dx_f.data(), go, xo, wo, r_t.data(), kRows, c);
      rmsnorm_rows_backward_f32_ref(dx_t.data(), go, xo, wo, r_t.data(), kRows, c);
      expect_twin(dx_f.data(), dx_t.data(), n, 1e-5, "rmsnorm_rows_backward");
      std::vector<float> dw_f(dw0.begin() + off, dw0.end()), dw_t = dw_f;
      rmsnorm_rows_dw_f32(dw_f.data(), go, xo, r_t.data(), kRows, c);
      rmsnorm_rows_dw_f32_ref(dw_t.data(), go, xo, r_t.data(), kRows, c);
      expect_twin(dw_f.data(), dw_t.data(), c, 1e-5, "rmsnorm_rows_dw");
    }
  }
}

TEST_F(VmathTwin, SoftmaxSwigluAdamwMatchTwins) {
  for (int64_t n : kTwinLengths) {
    for (int64_t off : kOffsets) {
      auto x = randf(n + off, 90), d = randf(n + off, 91), u = randf(n + off, 92);
      for (auto& v : x) v *= 6.0f;
      std::vector<float> p_f(x.begin() + off, x.end()), p_t = p_f;
      softmax_f32(p_f.data(), n, 0.125f);
      softmax_f32_ref(p_t.data(), n, 0.125f);
      expect_twin(p_f.data(), p_t.data(), n, 1e-6, "softmax");
      std::vector<float> d_f(d.begin() + off, d.end()), d_t = d_f;
      softmax_backward_f32(d_f.data(), p_t.data(), n, 0.125f);
      softmax_backward_f32_ref(d_t.data(), p_t.data(), n, 0.125f);
      expect_twin(d_f.data(), d_t.data(), n, 1e-5, "softmax_backward");

      const float *go = x.data() + off, *uo = u.data() + off, *doo = d.data() + off;
      std::vector<float> o_f(n), o_t(n), dg_f(n), dg_t(n), du_f(n), du_t(n), o2_f(n), o2_t(n);
      swiglu_f32(o_f.data(), go, uo, n);
      swiglu_f32_ref(o_t.data(), go, uo, n);
      expect_twin(o_f.data(), o_t.data(), n, 1e-6, "swiglu");
      swiglu_backward_f32(dg_f.data(), du_f.data(), doo, go, uo, n, o2_f.data());
      swiglu_backward_f32_ref(dg_t.data(), du_t.data(), doo, go, uo, n, o2_t.data());
      expect_twin(dg_f.data(), dg_t.data(), n, 1e-6, "swiglu_backward dgate");
      expect_twin(du_f.data(), du_t.data(), n, 1e-6, "swiglu_backward dup");
      EXPECT_EQ(o2_f, o_f) << "the kernel's backward recomputes other bits than its forward";
      EXPECT_EQ(o2_t, o_t) << "the twin's backward recomputes other bits than its forward";

      // AdamW makes the same elementwise roundings in both (no FMA, IEEE sqrt and divide): equal bits.
      const AdamWStep st{0.999f, 0.9f, 0.95f, 1e-3f, 0.3f, 1e-8f, 0.7f};
      std::vector<float> p0(x.begin() + off, x.end()), m0(d.begin() + off, d.end()), v0(n);
      for (int64_t i = 0; i < n; ++i) v0[i] = uo[i] * uo[i];
      auto pf = p0, mf = m0, vf = v0, pt = p0, mt = m0, vt = v0;
      adamw_f32(st, pf.data(), mf.data(), vf.data(), doo, n);
      adamw_f32_ref(st, pt.data(), mt.data(), vt.data(), doo, n);
      EXPECT_EQ(pf, pt) << "adamw p n " << n;
      EXPECT_EQ(mf, mt) << "adamw m n " << n;
      EXPECT_EQ(vf, vt) << "adamw v n " << n;
    }
  }
}

}  // namespace
}  // namespace moe
