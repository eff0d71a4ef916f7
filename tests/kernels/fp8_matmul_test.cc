// FP8 block-scaled weights (F8_E4M3_B128, kernels/fp8_matmul.h): every E4M3 code converts exactly as the
// scalar decoder does at every ISA level, and matmul_nt on such weights (the streaming decode kernel at
// m < 9, converted slices and the f32 GEMM above) equals the f32 product on the dequantized weights at odd
// sizes, with accumulation and row strides.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/fp8_matmul.h"
#include "kernels/matmul.h"
#include "kernels/quant_blocks.h"
#include "runtime/cpu_features.h"

namespace moe {
namespace {

const Isa kLevels[] = {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16};

struct IsaCap {
  explicit IsaCap(Isa cap) : previous(set_isa_override(cap)) {}
  ~IsaCap() { set_isa_override(previous); }
  Isa previous;
};

// One row holding every finite E4M3 code (both signs; the NaN codes 0x7f and 0xff are replaced by 0),
// twice, in two blocks with different scales.
std::vector<uint8_t> every_code_row() {
  std::vector<uint8_t> row(2 * 132);
  const float scales[2] = {0.0123f, 3.5e-7f};
  for (int b = 0; b < 2; ++b) {
    std::memcpy(row.data() + b * 132, &scales[b], 4);
    for (int j = 0; j < 128; ++j) {
      const int code = b * 128 + j;
      row[size_t(b * 132 + 4 + j)] = (code & 0x7f) == 0x7f ? 0 : static_cast<uint8_t>(code);
    }
  }
  return row;
}

TEST(Fp8Matmul, EveryCodeConvertsAsTheScalarDecoder) {
  const std::vector<uint8_t> row = every_code_row();
  std::vector<float> want(256), got(256);
  dequantize_row(DType::kF8E4M3_B128, row.data(), want.data(), 256);
  for (int j = 0; j < 256; ++j) {
    float scale;
    std::memcpy(&scale, row.data() + (j / 128) * 132, 4);
    ASSERT_EQ(want[size_t(j)], f8e4m3_to_f32(row[size_t((j / 128) * 132 + 4 + j % 128)]) * scale) << j;
  }
  for (Isa isa : kLevels) {
    if (isa > detected_isa()) continue;
    IsaCap cap(isa);
    fp8_rows_to_f32(WeightView{row.data(), DType::kF8E4M3_B128, 256}, 0, 1, 256, got.data());
    EXPECT_EQ(0, std::memcmp(want.data(), got.data(), 256 * sizeof(float))) << isa_name(isa);
  }
}

TEST(Fp8Matmul, SameProductAsTheDequantizedWeightsAtOddSizes) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t k : {128, 384}) {
    for (int64_t n : {1, 5, 33, 70}) {
      // Weights with a spread of block magnitudes (the per-block scales matter).
      std::vector<float> w(size_t(n * k));
      for (size_t i = 0; i < w.size(); ++i) w[i] = normal(rng) * std::ldexp(1.0f, int(i / 128 % 5) - 2);
      const int64_t rb = dtype_row_bytes(DType::kF8E4M3_B128, k);
      std::vector<uint8_t> rows(size_t(n * rb));
      std::vector<float> deq(size_t(n * k));
      for (int64_t j = 0; j < n; ++j) {
        quantize_row(DType::kF8E4M3_B128, w.data() + j * k, rows.data() + j * rb, k);
        dequantize_row(DType::kF8E4M3_B128, rows.data() + j * rb, deq.data() + j * k, k);
      }
      const WeightView b{rows.data(), DType::kF8E4M3_B128, k};
      for (int64_t m : {1, 2, 3, 7, 8, 9, 13, 40}) {
        const int64_t lda = k + 3, ldc = n + 2;
        std::vector<float> a(size_t(m * lda));
        for (float& v : a) v = normal(rng);
        std::vector<float> want(size_t(m * ldc), 0.5f);
        matmul_nt_ref(a.data(), lda, WeightView{deq.data(), DType::kF32, k}, want.data(), ldc, {m, n, k}, true);
        std::vector<float> ref(size_t(m * ldc), 0.5f);
        matmul_nt_ref(a.data(), lda, b, ref.data(), ldc, {m, n, k}, true);
        for (size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(ref[i], want[i]) << "reference twin, element " << i;
        for (Isa isa : kLevels) {
          if (isa > detected_isa()) continue;
          IsaCap cap(isa);
          std::vector<float> got(size_t(m * ldc), 0.5f);
          matmul_nt(a.data(), lda, b, got.data(), ldc, {m, n, k}, true);
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < n; ++j) {
              double mag = 0.0;
              for (int64_t p = 0; p < k; ++p) mag += std::abs(double(a[size_t(i * lda + p)]) * deq[size_t(j * k + p)]);
              const float g = got[size_t(i * ldc + j)], e = want[size_t(i * ldc + j)];
              ASSERT_FALSE(std::isnan(g));
              ASSERT_NEAR(g, e, 2e-6 * (mag + 1.0)) << isa_name(isa) << " m " << m << " n " << n << " k " << k;
            }
            for (int64_t j = n; j < ldc; ++j) ASSERT_EQ(got[size_t(i * ldc + j)], 0.5f);  // past n: untouched
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace moe
