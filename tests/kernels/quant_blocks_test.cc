// The block codecs (kernels/quant_blocks.h) against ggml's own functions from the prebuilt llama.cpp
// (tests/common/llamacpp_ref.h): quantize_row must write the same bytes as ggml_quantize_chunk without an
// importance matrix, and dequantize_row the same floats as ggml's dequantize_row_*, on random rows of
// several distributions (normal, heavy outliers, constant, all zero, tiny, mixed signs) and on random
// block bytes (every code, every scale pattern, NaN and infinite f16 scales).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "common/llamacpp_ref.h"
#include "kernels/quant_blocks.h"

namespace moe {
namespace {

const DType kTypes[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,  DType::kQ8_0,
                        DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kMXFP4, DType::kIQ4_XS};

std::vector<float> make_row(int kind, int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float v = normal(rng);
    switch (kind) {
      case 0:
        break;  // normal
      case 1:
        v *= (i % 37 == 0) ? 40.0f : 0.05f;
        break;  // rare outliers
      case 2:
        v = 0.75f;
        break;  // constant
      case 3:
        v = 0.0f;
        break;  // all zero
      case 4:
        v *= 1e-6f;
        break;  // tiny
      case 5:
        v = std::fabs(v) + 0.5f;
        break;  // all positive (min > 0)
      case 6:
        v = (i % 64 < 32) ? v : 0.0f;
        break;  // zero sub-blocks
      default:
        v = static_cast<float>(static_cast<int>(v * 4.0f)) / 4.0f;  // exact ties
    }
    x[static_cast<size_t>(i)] = v;
  }
  return x;
}

class QuantBlocks : public ::testing::TestWithParam<DType> {};

TEST_P(QuantBlocks, QuantizeRowIsBitIdenticalToGgml) {
  MOE_GGML_REF(ref);
  const DType t = GetParam();
  std::mt19937 rng(1234);
  const int64_t be = dtype_block_elems(t);
  for (int kind = 0; kind < 8; ++kind) {
    for (int64_t blocks : {1, 3, 7}) {
      const int64_t n = blocks * (be == 256 ? 256 : 32 * 5);
      const std::vector<float> x = make_row(kind, n, rng);
      std::vector<uint8_t> ours(static_cast<size_t>(dtype_row_bytes(t, n))), theirs(ours.size(), 0xAB);
      quantize_row(t, x.data(), ours.data(), n);
      const size_t written = ref->quantize_chunk(testing::ggml_type_id(t), x.data(), theirs.data(), 0, 1, n, nullptr);
      ASSERT_EQ(written, ours.size());
      ASSERT_EQ(0, std::memcmp(ours.data(), theirs.data(), ours.size()))
          << dtype_name(t) << " kind " << kind << " n " << n;
    }
  }
}

TEST_P(QuantBlocks, DequantizeRowIsBitIdenticalToGgmlOnRandomBytes) {
  MOE_GGML_REF(ref);
  const DType t = GetParam();
  const auto deq = ref->dequantize(t);
  ASSERT_NE(deq, nullptr);
  std::mt19937 rng(99);
  std::uniform_int_distribution<int> byte(0, 255);
  const int64_t n = dtype_block_elems(t) * 64;
  std::vector<uint8_t> q(static_cast<size_t>(dtype_row_bytes(t, n)));
  for (int round = 0; round < 20; ++round) {
    for (uint8_t& b : q) b = static_cast<uint8_t>(byte(rng));
    std::vector<float> ours(static_cast<size_t>(n)), theirs(static_cast<size_t>(n));
    dequantize_row(t, q.data(), ours.data(), n);
    deq(q.data(), theirs.data(), n);
    ASSERT_EQ(0, std::memcmp(ours.data(), theirs.data(), ours.size() * sizeof(float))) << dtype_name(t);
  }
}

TEST_P(QuantBlocks, RoundTripErrorIsWithinTheFormatsResolution) {
  const DType t = GetParam();
  std::mt19937 rng(7);
  const int64_t n = 256 * 4;
  const std::vector<float> x = make_row(0, n, rng);
  std::vector<uint8_t> q(static_cast<size_t>(dtype_row_bytes(t, n)));
  std::vector<float> y(static_cast<size_t>(n));
  quantize_row(t, x.data(), q.data(), n);
  dequantize_row(t, q.data(), y.data(), n);
  double err = 0, norm = 0;
  for (int64_t i = 0; i < n; ++i) {
    err += (x[i] - y[i]) * double(x[i] - y[i]);
    norm += x[i] * double(x[i]);
  }
  const double bits = 8.0 * static_cast<double>(dtype_block_bytes(t)) / static_cast<double>(dtype_block_elems(t));
  // Relative RMS error of a b-bit code is about 2^-(b - 1.5); allow a generous factor.
  EXPECT_LT(std::sqrt(err / norm), 4.0 * std::pow(2.0, -(bits - 1.5))) << dtype_name(t);
}

// Committed fixtures (tests/reference/fixtures/ggml_blocks/<TYPE>.bin), so bit-identity with ggml is checked
// on machines without llama.cpp too. Each file: u32 n | n*block bytes of random codes | ggml's dequantized
// n floats of them | n input floats (a mixed row) | ggml_quantize_chunk's bytes of that row. Written by
// MOE_WRITE_GGML_FIXTURES=1 ./test_kernels --gtest_filter='*WriteFixture*' (needs llama.cpp); with llama.cpp
// present the committed file is also checked against ggml as installed now.
constexpr int64_t kFixtureElems = 512;

std::string fixture_path(DType t) {
  return std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/ggml_blocks/" + std::string(dtype_name(t)) + ".bin";
}

struct BlockFixture {
  std::vector<uint8_t> codes, quantized;
  std::vector<float> dequantized, input;
};

BlockFixture fixture_from_ggml(DType t, testing::GgmlRef& ref) {
  const int64_t n = kFixtureElems;
  const size_t row = static_cast<size_t>(dtype_row_bytes(t, n));
  BlockFixture f{std::vector<uint8_t>(row), std::vector<uint8_t>(row), std::vector<float>(n), {}};
  std::mt19937 rng(2026 + static_cast<int>(t));
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : f.codes) b = static_cast<uint8_t>(byte(rng));
  ref.dequantize(t)(f.codes.data(), f.dequantized.data(), n);
  for (int kind = 0; kind < 8; ++kind) {  // a row mixing every kind, one 64-element stretch each
    const std::vector<float> part = make_row(kind, n / 8, rng);
    f.input.insert(f.input.end(), part.begin(), part.end());
  }
  ref.quantize_chunk(testing::ggml_type_id(t), f.input.data(), f.quantized.data(), 0, 1, n, nullptr);
  return f;
}

BlockFixture read_fixture(DType t) {
  std::ifstream in(fixture_path(t), std::ios::binary);
  BlockFixture f;
  uint32_t n = 0;
  if (!in.read(reinterpret_cast<char*>(&n), 4) || n != kFixtureElems) return f;
  const size_t row = static_cast<size_t>(dtype_row_bytes(t, n));
  f.codes.resize(row);
  f.quantized.resize(row);
  f.dequantized.resize(n);
  f.input.resize(n);
  in.read(reinterpret_cast<char*>(f.codes.data()), static_cast<std::streamsize>(row));
  in.read(reinterpret_cast<char*>(f.dequantized.data()), n * 4);
  in.read(reinterpret_cast<char*>(f.input.data()), n * 4);
  in.read(reinterpret_cast<char*>(f.quantized.data()), static_cast<std::streamsize>(row));
  if (!in) return {};
  return f;
}

TEST_P(QuantBlocks, WriteFixture) {
  if (!std::getenv("MOE_WRITE_GGML_FIXTURES")) GTEST_SKIP() << "set MOE_WRITE_GGML_FIXTURES=1 to regenerate";
  MOE_GGML_REF(ref);
  const DType t = GetParam();
  const BlockFixture f = fixture_from_ggml(t, *ref);
  std::filesystem::create_directories(std::filesystem::path(fixture_path(t)).parent_path());
  std::ofstream out(fixture_path(t), std::ios::binary | std::ios::trunc);
  const uint32_t n = kFixtureElems;
  out.write(reinterpret_cast<const char*>(&n), 4);
  out.write(reinterpret_cast<const char*>(f.codes.data()), static_cast<std::streamsize>(f.codes.size()));
  out.write(reinterpret_cast<const char*>(f.dequantized.data()), n * 4);
  out.write(reinterpret_cast<const char*>(f.input.data()), n * 4);
  out.write(reinterpret_cast<const char*>(f.quantized.data()), static_cast<std::streamsize>(f.quantized.size()));
  ASSERT_TRUE(out.good());
}

TEST_P(QuantBlocks, MatchesCommittedGgmlFixture) {
  const DType t = GetParam();
  const BlockFixture f = read_fixture(t);
  ASSERT_FALSE(f.codes.empty()) << "missing or short fixture " << fixture_path(t);
  const int64_t n = kFixtureElems;
  std::vector<float> ours(static_cast<size_t>(n));
  dequantize_row(t, f.codes.data(), ours.data(), n);
  EXPECT_EQ(0, std::memcmp(ours.data(), f.dequantized.data(), ours.size() * 4)) << "dequantize " << dtype_name(t);
  std::vector<uint8_t> q(f.quantized.size());
  quantize_row(t, f.input.data(), q.data(), n);
  EXPECT_EQ(q, f.quantized) << "quantize " << dtype_name(t);
  if (testing::GgmlRef* ref = testing::GgmlRef::instance()) {  // the committed file is still ggml's answer
    const BlockFixture now = fixture_from_ggml(t, *ref);
    EXPECT_EQ(0, std::memcmp(now.dequantized.data(), f.dequantized.data(), ours.size() * 4)) << dtype_name(t);
    EXPECT_EQ(now.quantized, f.quantized) << dtype_name(t);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantBlocks, ::testing::ValuesIn(kTypes),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace moe
