// The 16-bit float row conversions (KV cache rows) against their scalar twins: every f16 / bf16 bit
// pattern widened, and values of every magnitude (subnormal, overflow, infinities, NaN) narrowed, at odd
// lengths, on every ISA level this machine has.
#include "kernels/half_rows.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "runtime/cpu_features.h"

namespace moe {
namespace {

std::vector<Isa> isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512})
    if (isa <= detected_isa()) out.push_back(isa);
  return out;
}

TEST(HalfRows, WidenGivesTheScalarBitsForEveryPattern) {
  std::vector<uint16_t> all(65536 + 7);  // every pattern, then a tail of 7
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i * 40503u);
  for (size_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  for (DType t : {DType::kF16, DType::kBF16}) {
    std::vector<float> want(all.size());
    widen_half_ref(t, all.data(), want.data(), static_cast<int64_t>(all.size()));
    for (Isa isa : isas()) {
      for (int64_t n : {int64_t(0), int64_t(1), int64_t(7), int64_t(17), static_cast<int64_t>(all.size())}) {
        std::vector<float> got(all.size() + 1, -3.0f);
        const Isa prev = set_isa_override(isa);
        widen_half(t, all.data(), got.data(), n);
        set_isa_override(prev);
        for (int64_t i = 0; i < n; ++i) {
          if (std::isnan(want[i])) {
            ASSERT_TRUE(std::isnan(got[i])) << dtype_name(t) << " " << isa_name(isa) << " pattern " << all[i];
          } else {
            ASSERT_EQ(got[i], want[i]) << dtype_name(t) << " " << isa_name(isa) << " pattern " << all[i];
            ASSERT_EQ(std::signbit(got[i]), std::signbit(want[i]));
          }
        }
        EXPECT_EQ(got[n], -3.0f) << "wrote past n = " << n;
      }
    }
  }
}

TEST(HalfRows, NarrowRoundsAsTheScalarTwin) {
  std::mt19937 rng(5);
  std::normal_distribution<float> mant(0.0f, 1.0f);
  std::uniform_real_distribution<float> expo(-30.0f, 20.0f);
  std::vector<float> x = {0.0f,
                          -0.0f,
                          1.0f,
                          -1.0f,
                          65504.0f,
                          65519.0f,
                          65520.0f,
                          -70000.0f,
                          1e-7f,
                          -6e-8f,
                          3e-8f,
                          1e-40f,
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(),
                          1.0f + 1.0f / 2048,
                          1.0f + 3.0f / 2048,
                          1.0f + 1.0f / 256,
                          1.0f + 3.0f / 256,
                          3.4e38f};
  while (x.size() < 4099) x.push_back(mant(rng) * std::exp2(expo(rng)));
  for (DType t : {DType::kF16, DType::kBF16}) {
    std::vector<uint16_t> want(x.size());
    narrow_half_ref(t, x.data(), want.data(), static_cast<int64_t>(x.size()));
    for (Isa isa : isas()) {
      for (int64_t n : {int64_t(0), int64_t(3), int64_t(8), int64_t(15), int64_t(16), int64_t(33),
                        static_cast<int64_t>(x.size())}) {
        std::vector<uint16_t> got(x.size() + 1, 0xabcd);
        const Isa prev = set_isa_override(isa);
        narrow_half(t, x.data(), got.data(), n);
        set_isa_override(prev);
        for (int64_t i = 0; i < n; ++i) {
          if (std::isnan(x[i])) {  // any quiet NaN
            float back = 0;
            widen_half_ref(t, &got[i], &back, 1);
            ASSERT_TRUE(std::isnan(back)) << dtype_name(t) << " " << isa_name(isa);
          } else {
            ASSERT_EQ(got[i], want[i]) << dtype_name(t) << " " << isa_name(isa) << " x " << x[i];
          }
        }
        EXPECT_EQ(got[n], 0xabcd) << "wrote past n = " << n;
      }
    }
  }
}

}  // namespace
}  // namespace moe
