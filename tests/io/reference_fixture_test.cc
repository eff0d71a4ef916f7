// Reads safetensors written by an independent Python writer (tests/reference/make_safetensors_fixtures.py)
// and checks values, torch's bf16 rounding and numpy's f16 rounding against our conversions.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "util/error.h"

namespace moe {
namespace {

const std::string kDir = std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/safetensors";

nlohmann::json expected() {
  std::ifstream in(kDir + "/expected.json");
  return nlohmann::json::parse(in);
}

TEST(ReferenceFixture, ReadsEveryDtypeWrittenByPython) {
  const auto exp = expected();
  const SafetensorsFile f = SafetensorsFile::open(kDir + "/all_dtypes.safetensors");
  EXPECT_EQ(f.metadata().at("writer"), "python");
  const auto f32 = exp["f32"].get<std::vector<float>>();
  EXPECT_EQ(f.to_f32("f32"), f32);
  EXPECT_EQ(f.info("f32").shape, (std::vector<int64_t>{4, 6}));
  EXPECT_EQ(f.to_f32("f64"), f32);
  EXPECT_EQ(f.to_f32("bf16"), exp["bf16_as_f32"].get<std::vector<float>>());
  EXPECT_EQ(f.info("bf16").shape, (std::vector<int64_t>{2, 3, 4}));
  const auto ints = exp["ints"].get<std::vector<int64_t>>();
  // The Python writer packs tensors back to back, so "i64" need not be 8-byte aligned: a typed
  // view must refuse it (not read misaligned memory), and the bytes are copied instead.
  auto raw = f.bytes("i64");
  std::vector<int64_t> i64(raw.size() / sizeof(int64_t));
  std::memcpy(i64.data(), raw.data(), raw.size());
  if (!f.is_aligned("i64", alignof(int64_t))) {
    EXPECT_THROW(f.view<int64_t>("i64", DType::kI64), Error);
  }
  auto i8 = f.view<int8_t>("i8", DType::kI8);
  for (size_t i = 0; i < ints.size(); ++i) {
    EXPECT_EQ(i64[i], ints[i]);
    EXPECT_EQ(i8[i], ints[i]);
  }
}

TEST(ReferenceFixture, ConversionsMatchTorchAndNumpyBitForBit) {
  const auto exp = expected();
  const auto f32 = exp["f32"].get<std::vector<float>>();
  const auto bf16 = exp["bf16_bits"].get<std::vector<uint16_t>>();
  const auto f16 = exp["f16_bits"].get<std::vector<uint16_t>>();
  for (size_t i = 0; i < f32.size(); ++i) {
    EXPECT_EQ(f32_to_bf16(f32[i]), bf16[i]) << "value " << f32[i];
    EXPECT_EQ(f32_to_f16(f32[i]), f16[i]) << "value " << f32[i];
  }
}

TEST(ReferenceFixture, ShardedCheckpointFromPython) {
  const Checkpoint c = Checkpoint::open(kDir + "/sharded");
  EXPECT_EQ(c.n_files(), 2u);
  EXPECT_EQ(c.tensor_names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(c.file_of("b").to_f32("b"), expected()["bf16_as_f32"].get<std::vector<float>>());
}

}  // namespace
}  // namespace moe
