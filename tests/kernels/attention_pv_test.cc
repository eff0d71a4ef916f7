// attention_pv (the value product of decode attention) against its scalar twin over odd sizes,
// strides wider than the rows, and no positions at all.
#include "kernels/attention_pv.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "runtime/cpu_features.h"

namespace moe {
namespace {

TEST(AttentionPv, MatchesTheScalarTwinOverOddSizes) {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (int64_t m : {1, 2, 3, 4, 5, 8, 9, 16, 17}) {
    for (int64_t n : {0, 1, 7, 64, 65, 130, 200}) {
      for (int64_t dv : {1, 8, 15, 16, 17, 40, 128}) {
        const PvShape s{m, n, dv, n + 3, dv + 5, dv + 2};
        std::vector<float> p(static_cast<size_t>(m * s.ldp)), v(static_cast<size_t>(std::max<int64_t>(n, 1) * s.ldv));
        for (float& x : p) x = dist(rng);
        for (float& x : v) x = dist(rng);
        std::vector<float> want(static_cast<size_t>(m * s.ldo), -7.0f);
        attention_pv_ref(p.data(), v.data(), want.data(), s);
        for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
          if (isa > detected_isa()) continue;
          std::vector<float> got(static_cast<size_t>(m * s.ldo), -7.0f);
          const Isa prev = set_isa_override(isa);
          attention_pv(p.data(), v.data(), got.data(), s);
          set_isa_override(prev);
          for (int64_t r = 0; r < m; ++r) {
            for (int64_t d = 0; d < s.ldo; ++d) {
              const float a = got[r * s.ldo + d], b = want[r * s.ldo + d];
              ASSERT_FALSE(std::isnan(a));
              if (d >= dv) {
                EXPECT_EQ(a, -7.0f) << "wrote past the row: m " << m << " n " << n << " dv " << dv;
              } else {
                EXPECT_NEAR(a, b, 1e-4f * (1.0f + std::sqrt(float(n))))
                    << isa_name(isa) << " m " << m << " n " << n << " dv " << dv;
              }
            }
          }
        }
      }
    }
  }
}

TEST(AttentionPv, AccumulateAddsALaterSpanOfPositions) {
  // Positions [0, a) then [a, n) with accumulate: the sums of one call over all n (16-bit KV caches widen
  // their values a span at a time).
  std::mt19937 rng(4);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const int64_t m = 5, n = 150, dv = 40;
  std::vector<float> p(static_cast<size_t>(m * n)), v(static_cast<size_t>(n * dv));
  for (float& x : p) x = dist(rng);
  for (float& x : v) x = dist(rng);
  std::vector<float> want(static_cast<size_t>(m * dv));
  attention_pv_ref(p.data(), v.data(), want.data(), PvShape{m, n, dv, n, dv, dv});
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (isa > detected_isa()) continue;
    for (int64_t a : {0, 1, 64, 100}) {
      std::vector<float> got(want.size(), 9.0f);
      const Isa prev = set_isa_override(isa);
      attention_pv(p.data(), v.data(), got.data(), PvShape{m, a, dv, n, dv, dv});
      attention_pv(p.data() + a, v.data() + a * dv, got.data(), PvShape{m, n - a, dv, n, dv, dv, true});
      set_isa_override(prev);
      for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4f) << isa_name(isa) << " split " << a;
    }
  }
}

}  // namespace
}  // namespace moe
