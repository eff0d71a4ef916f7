// Every family moe writes to GGUF reads back as the same model: a random checkpoint in the family's Hugging
// Face layout (the committed fixture's config, with the settings llama.cpp's graph fixes set to what it
// fixes) goes through `moe quantize --type F32`, and `moe eval` on the GGUF gives the logits of `moe eval`
// on the checkpoint (f32 on both sides; the fused expert layouts, q/k row orders, LongRoPE factors and
// Llama 3 rope_freqs all travel through the file). Settings a GGUF cannot hold are errors naming the key.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli/gguf_test_configs.h"
#include "cli/moe_process.h"
#include "common/random_checkpoint.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::expressible_config;
using testing::fixture_config;
using testing::read_f32;

class GgufFamilies : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moe_gguf_families_" + std::to_string(getpid()) + "_" + GetParam());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::vector<float> eval(const std::string& model, const std::string& out) {
    const std::string ids = "3,17,101,42,9,77,5,63,120,8,31,2,90,14,55,70,11,99,4,26";
    auto r = testing::run_moe("eval --model " + model + " --ids " + ids + " --logits-out " + out, true);
    EXPECT_EQ(r.code, 0) << r.out;
    return read_f32(out);
  }
  fs::path dir_;
};

TEST_P(GgufFamilies, F32RoundTripKeepsTheLogits) {
  const std::string hf = (dir_ / "hf").string(), gguf = (dir_ / "m.gguf").string();
  testing::write_random_checkpoint(hf, expressible_config(GetParam()), 91);
  auto q = testing::run_moe("quantize --no-progress --model " + hf + " --out " + gguf + " --type F32", true);
  ASSERT_EQ(q.code, 0) << q.out;
  const std::vector<float> a = eval(hf, (dir_ / "hf.bin").string()), b = eval(gguf, (dir_ / "gguf.bin").string());
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  double scale = 0, diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_TRUE(std::isfinite(a[i]) && std::isfinite(b[i])) << "non-finite logit at " << i;
    scale = std::max(scale, std::fabs(double(a[i])));
    diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
  }
  std::printf("[ gguf ] %s: F32 GGUF vs checkpoint max |diff| %.2e of max |logit| %.2f\n", GetParam().c_str(), diff,
              scale);
  EXPECT_LE(diff, 1e-5 * scale + 1e-6) << GetParam();
  // `inspect` on the GGUF: the checkpoint's parameters, every tensor found in the file and counted as F32.
  const auto gi = testing::run_moe("--json inspect " + gguf), hi = testing::run_moe("--json inspect " + hf);
  ASSERT_EQ(gi.code, 0) << gi.out;
  ASSERT_EQ(hi.code, 0) << hi.out;
  const json g = json::parse(gi.out)["models"][0], h = json::parse(hi.out)["models"][0];
  EXPECT_EQ(g["total_params"], h["total_params"]) << GetParam();
  EXPECT_EQ(g["activated_params"], h["activated_params"]) << GetParam();
  EXPECT_EQ(g["file_dtypes"].size(), 1u) << g["file_dtypes"];
  EXPECT_TRUE(g["file_dtypes"].contains("F32")) << g["file_dtypes"];
  EXPECT_EQ(g["weights"]["checkpoint_bytes"].get<double>(), 4.0 * g["checkpoint_elements"].get<double>());
  for (const auto& n : g["spec"]["notes"])
    EXPECT_EQ(n.get<std::string>().find("not in the file"), std::string::npos) << n;
}

INSTANTIATE_TEST_SUITE_P(Families, GgufFamilies,
                         ::testing::Values("glm4_moe", "dots1", "ernie4_5_moe", "granitemoe", "granitemoeshared",
                                           "phimoe", "dbrx", "llama4_text"));

// What llama.cpp's graph cannot express is refused before anything is written, naming the key.
TEST(GgufFamilies, InexpressibleSettingsNameTheKey) {
  const fs::path dir = fs::temp_directory_path() / ("moe_gguf_inexpressible_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const struct {
    std::string family, key, want;
  } cases[] = {
      {"ernie4_5_moe", "use_bias", "use_bias"},
      {"llama4_text", "attention_chunk_size", "attention_chunk_size"},
      {"phimoe", "short_mscale", "short_mscale"},
      {"dots1", "sliding_window", "sliding-window"},
      {"dots1", "num_key_value_heads", "num_key_value_heads"},
  };
  for (const auto& c : cases) {
    const std::string hf = (dir / c.family).string(), out = (dir / (c.family + ".gguf")).string();
    json cfg = expressible_config(c.family);
    if (c.key == "use_bias") cfg["use_bias"] = true;
    if (c.key == "attention_chunk_size") cfg["attention_chunk_size"] = 16;
    if (c.key == "short_mscale") cfg["rope_scaling"]["short_mscale"] = 1.0;
    if (c.key == "num_key_value_heads") cfg["num_key_value_heads"] = 2;
    if (c.key == "sliding_window") {
      cfg = fixture_config("dots1");
      cfg["num_key_value_heads"] = cfg["num_attention_heads"];
    }
    testing::write_random_checkpoint(hf, cfg, 5);
    auto q = testing::run_moe("quantize --no-progress --model " + hf + " --out " + out + " --type Q8_0", true);
    EXPECT_NE(q.code, 0) << c.family;
    EXPECT_NE(q.out.find(c.want), std::string::npos) << c.family << ": " << q.out;
    EXPECT_FALSE(fs::exists(out)) << "half-written " << out;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moe
