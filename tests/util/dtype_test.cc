// dtype names and narrow-float conversions: bf16 round-to-nearest-even, f16, fp8 E4M3/E5M2/E8M0.
#include "util/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace moe {
namespace {

TEST(DType, NamesRoundTrip) {
  for (const char* n : {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2"}) {
    auto t = dtype_from_name(n);
    ASSERT_TRUE(t.has_value()) << n;
    EXPECT_EQ(dtype_name(*t), n);
  }
  EXPECT_FALSE(dtype_from_name("F128").has_value());
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  EXPECT_EQ(dtype_size(DType::kF8E4M3), 1u);
}

TEST(Bf16, RoundsToNearestEven) {
  // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  // 1 + 3*2^-8 is halfway between 1.0078125 (odd mantissa) and 1.015625 (even): rounds up.
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  // Just above the halfway point rounds up.
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3f81);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::infinity())), std::numeric_limits<float>::infinity());
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_bf16(f), h) << h;
  }
}

TEST(F16, RoundTripsEveryCode) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << h;
  }
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f32_to_f16(70000.0f), 0x7c00);                      // overflow to infinity
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie to even
}

TEST(Fp8, E4M3KnownValuesAndRoundTrip) {
  EXPECT_EQ(f8e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(f8e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(f8e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isnan(f8e4m3_to_f32(0x7f)));
  EXPECT_EQ(f32_to_f8e4m3(1000.0f), 0x7e);  // saturates
  EXPECT_EQ(f32_to_f8e4m3(-1000.0f), 0xfe);
  for (uint32_t v = 0; v < 256; ++v) {
    const float f = f8e4m3_to_f32(static_cast<uint8_t>(v));
    if (std::isnan(f)) continue;
    if (v == 0x80) continue;  // -0 encodes back to 0x80 too; checked below
    ASSERT_EQ(f32_to_f8e4m3(f), v) << v;
  }
  EXPECT_EQ(f32_to_f8e4m3(-0.0f), 0x80);
}

TEST(Fp8, E5M2AndE8M0) {
  EXPECT_EQ(f8e5m2_to_f32(0x3c), 1.0f);
  EXPECT_TRUE(std::isinf(f8e5m2_to_f32(0x7c)));
  for (uint32_t v = 0; v < 256; ++v) {
    const float f = f8e5m2_to_f32(static_cast<uint8_t>(v));
    if (std::isnan(f) || std::isinf(f)) continue;
    ASSERT_EQ(f32_to_f8e5m2(f), v) << v;
  }
  EXPECT_EQ(f8e8m0_to_f32(127), 1.0f);
  EXPECT_EQ(f8e8m0_to_f32(130), 8.0f);
  EXPECT_TRUE(std::isnan(f8e8m0_to_f32(255)));
}

TEST(Convert, BulkMatchesScalar) {
  const float src[5] = {1.5f, -2.25f, 0.0f, 3.0e-3f, 100.0f};
  uint16_t bf[5];
  float back[5];
  convert_from_f32(DType::kBF16, src, bf, 5);
  convert_to_f32(DType::kBF16, bf, back, 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(back[i], bf16_to_f32(f32_to_bf16(src[i])));
  const int32_t ints[3] = {-7, 0, 42};
  float fi[3];
  convert_to_f32(DType::kI32, ints, fi, 3);
  EXPECT_EQ(fi[0], -7.0f);
  EXPECT_EQ(fi[2], 42.0f);
}

}  // namespace
}  // namespace moe
