// silu_mul (every ISA level through the dispatcher) against a float64 reference: values across the
// whole range (tiny, huge, both signs), odd lengths for the masked tail, aliasing, NaN and infinities.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/activation.h"
#include "runtime/cpu_features.h"

namespace moe {
namespace {

double silu_mul_f64(double g, double u) { return g / (1.0 + std::exp(-g)) * u; }

TEST(SiluMul, EveryIsaMatchesFloat64) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> wide(-100.0f, 100.0f), unit(-2.0f, 2.0f);
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(15), int64_t(16), int64_t(17), int64_t(100), int64_t(1000)}) {
    std::vector<float> g(n), u(n);
    for (int64_t i = 0; i < n; ++i) {
      g[i] = i % 3 == 0 ? wide(rng) : unit(rng) * (i % 5 == 0 ? 1e-3f : 4.0f);
      u[i] = unit(rng);
    }
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
      if (isa > detected_isa()) continue;
      const Isa prev = set_isa_override(isa);
      std::vector<float> out(n + 1, 7.0f);
      silu_mul(g.data(), u.data(), out.data(), n);
      set_isa_override(prev);
      for (int64_t i = 0; i < n; ++i) {
        const double want = silu_mul_f64(g[i], u[i]);
        ASSERT_NEAR(out[i], want, 1e-6 * std::abs(want) + 1e-30) << "isa " << isa_name(isa) << " g=" << g[i];
      }
      EXPECT_EQ(out[n], 7.0f) << "wrote past the end";
    }
  }
}

TEST(SiluMul, AliasingNanAndInfinities) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (Isa isa : {Isa::kScalar, Isa::kAvx512}) {
    if (isa > detected_isa()) continue;
    const Isa prev = set_isa_override(isa);
    std::vector<float> g = {nan, 1.0f, -inf, 200.0f, -200.0f, 0.0f, 2.0f, inf};
    const std::vector<float> u = {1.0f, nan, 1.0f, 1.0f, 1.0f, 5.0f, 3.0f, 1.0f};
    silu_mul(g.data(), u.data(), g.data(), int64_t(g.size()));  // in place
    set_isa_override(prev);
    EXPECT_TRUE(std::isnan(g[0]));
    EXPECT_TRUE(std::isnan(g[1]));
    EXPECT_TRUE(std::isnan(g[2])) << isa_name(isa);  // -inf / (1 + inf), as PyTorch's -inf * sigmoid(-inf)
    EXPECT_FLOAT_EQ(g[3], 200.0f);
    EXPECT_NEAR(g[4], 0.0f, 1e-30);
    EXPECT_EQ(g[5], 0.0f);
    EXPECT_NEAR(g[6], silu_mul_f64(2.0, 3.0), 1e-6);
    EXPECT_EQ(g[7], inf);
  }
}

double swiglu_clamped_f64(double g, double u, const ClampedSwiglu& p) {
  g = std::min(g, double(p.limit));
  u = std::clamp(u, -double(p.limit), double(p.limit));
  return (u + p.up_add) * g / (1.0 + std::exp(-p.alpha * g));
}

// gpt-oss's (alpha 1.702, limit 7, up + 1) and a clamped plain SwiGLU, values inside and past the limits.
TEST(SwigluClamped, EveryIsaMatchesFloat64) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> wide(-30.0f, 30.0f), unit(-2.0f, 2.0f);
  for (const ClampedSwiglu p : {ClampedSwiglu{1.702f, 7.0f, 1.0f}, ClampedSwiglu{1.0f, 10.0f, 0.0f}}) {
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(15), int64_t(16), int64_t(17), int64_t(333)}) {
      std::vector<float> g(n), u(n);
      for (int64_t i = 0; i < n; ++i) {
        g[i] = i % 3 == 0 ? wide(rng) : unit(rng) * 4.0f;
        u[i] = i % 4 == 0 ? wide(rng) : unit(rng);
      }
      for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
        if (isa > detected_isa()) continue;
        const Isa prev = set_isa_override(isa);
        std::vector<float> out(n + 1, 7.0f);
        swiglu_clamped(g.data(), u.data(), out.data(), n, p);
        set_isa_override(prev);
        for (int64_t i = 0; i < n; ++i) {
          const double want = swiglu_clamped_f64(g[i], u[i], p);
          // alpha g rounded to f32 first: e^x then carries |x| ulp-relative error of its own.
          const double rel = 1e-6 + 1.2e-7 * std::abs(double(p.alpha) * std::min(g[i], p.limit));
          ASSERT_NEAR(out[i], want, rel * std::abs(want) + 1e-30) << isa_name(isa) << " g=" << g[i] << " u=" << u[i];
        }
        EXPECT_EQ(out[n], 7.0f) << "wrote past the end";
      }
    }
  }
}

TEST(SwigluClamped, NanStaysNanInPlace) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (Isa isa : {Isa::kScalar, Isa::kAvx512}) {
    if (isa > detected_isa()) continue;
    const Isa prev = set_isa_override(isa);
    std::vector<float> g = {nan, 1.0f, inf, -inf, 2.0f};
    const std::vector<float> u = {1.0f, nan, inf, 1.0f, 3.0f};
    const ClampedSwiglu p{1.702f, 7.0f, 1.0f};
    swiglu_clamped(g.data(), u.data(), g.data(), int64_t(g.size()), p);
    set_isa_override(prev);
    EXPECT_TRUE(std::isnan(g[0])) << isa_name(isa);
    EXPECT_TRUE(std::isnan(g[1])) << isa_name(isa);
    EXPECT_NEAR(g[2], swiglu_clamped_f64(7.0, 7.0, p), 1e-5) << isa_name(isa);  // both clamped to the limit
    EXPECT_TRUE(std::isnan(g[3])) << isa_name(isa);  // -inf * sigmoid(-inf) = -inf * 0, as PyTorch
    EXPECT_NEAR(g[4], swiglu_clamped_f64(2.0, 3.0, p), 1e-6) << isa_name(isa);
  }
}

}  // namespace
}  // namespace moe
