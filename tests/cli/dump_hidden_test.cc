// `moe eval --dump-hidden DIR`: every named tensor of the forward as a raw f32 file plus index.json;
// the residual stream it writes equals the PyTorch reference's `hidden` (embeddings, each layer's
// output), --json names the folder, and a folder that is an input or a file is a usage error.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "moe_process.h"

namespace {

namespace fs = std::filesystem;
const std::string kModels = std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/models";

std::vector<float> read_f32(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<float> v(fs::file_size(path) / sizeof(float));
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  return v;
}

std::string prompt_ids(const moe::SafetensorsFile& expected) {
  std::string ids;
  for (int64_t id : expected.view<int64_t>("prompt_ids", moe::DType::kI64)) {
    if (!ids.empty()) ids += ',';
    ids += std::to_string(id);
  }
  return ids;
}

TEST(DumpHiddenCli, WritesTheResidualStreamOfTheReference) {
  const std::string model = kModels + "/gpt_oss";
  const moe::SafetensorsFile expected = moe::SafetensorsFile::open(model + "/expected.safetensors");
  const fs::path dir = fs::temp_directory_path() / "moe_dump_hidden_cli";
  fs::remove_all(dir);
  const auto r = moe::testing::run_moe(
      "eval --model " + model + " --ids " + prompt_ids(expected) + " --dump-hidden " + dir.string(), true);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("tapped tensors written to " + dir.string()), std::string::npos) << r.out;
  const nlohmann::json index = nlohmann::json::parse(std::ifstream(dir / "index.json"));
  EXPECT_EQ(index["settings"]["command"], "eval");
  EXPECT_EQ(index["settings"]["model"], model);
  const std::vector<float> want = expected.to_f32("hidden");  // [L + 1, T, D]
  const auto shape = expected.info("hidden").shape;
  const int64_t L = shape[0] - 1, T = shape[1], D = shape[2];
  EXPECT_EQ(index["settings"]["ids"].size(), size_t(T));
  ASSERT_EQ(index["tensors"].size(), size_t(2 + 5 * L));  // embed, 5 per layer, final_norm
  for (int64_t l = -1; l < L; ++l) {
    const std::string file = l < 0 ? "embed.f32" : "layer-0" + std::to_string(l) + ".hidden.f32";
    const std::vector<float> got = read_f32(dir / file);
    ASSERT_EQ(got.size(), size_t(T * D)) << file;
    double worst = 0;
    for (int64_t i = 0; i < T * D; ++i) worst = std::max(worst, std::abs(double(got[i]) - want[(l + 1) * T * D + i]));
    EXPECT_LT(worst, 1e-4) << file;
  }
  for (const auto& t : index["tensors"])
    EXPECT_EQ(fs::file_size(dir / t["file"].get<std::string>()), size_t(T * D * 4));

  const auto j = moe::testing::run_moe("--json eval --model " + model + " --ids 1,2,3 --dump-hidden " + dir.string());
  ASSERT_EQ(j.code, 0) << j.out;
  const nlohmann::json out = nlohmann::json::parse(j.out);
  EXPECT_EQ(out["dump_hidden"]["dir"], dir.string());
  EXPECT_EQ(out["dump_hidden"]["n_files"], 2 + 5 * L);
  fs::remove_all(dir);
}

TEST(DumpHiddenCli, AFolderThatIsAnInputOrAFileIsAUsageError) {
  const std::string model = kModels + "/mixtral";
  const fs::path file = fs::temp_directory_path() / "moe_dump_hidden_file";
  std::ofstream(file) << "x";
  for (const std::string& dir : {model, file.string()}) {
    const auto r = moe::testing::run_moe("eval --model " + model + " --ids 1,2 --dump-hidden " + dir, true);
    EXPECT_NE(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("--dump-hidden"), std::string::npos) << r.out;
  }
  EXPECT_EQ(fs::file_size(file), 1u);
  fs::remove(file);
}

}  // namespace
