// `moe run` generation semantics end to end: generation_config.json eos ids stop generation
// (--ignore-eos does not), its sampling defaults apply unless a flag overrides them, --stop cuts
// the text, --logprobs N reports alternatives in --json.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "moe_process.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kQwen3 = std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/models/qwen3";

class GenerationCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moe_generation_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(fs::path(kQwen3) / f, dir_ / f);
    std::ifstream in(fs::path(kQwen3) / "expected.json");
    const json e = json::parse(in);
    greedy_ = e["greedy_ids"].get<std::vector<int>>();
    prompt_ = e["prompt_ids"].get<std::vector<int>>();
  }
  void TearDown() override { fs::remove_all(dir_); }
  json run(const std::string& flags) {
    std::string ids;
    for (int id : prompt_) {
      if (!ids.empty()) ids += ',';  // appended piecewise: GCC 12 warns falsely on the chained operator+ form
      ids += std::to_string(id);
    }
    const auto r = moe::testing::run_moe(
        "--json run --no-ceiling --max-new-tokens 20 --model " + dir_.string() + " --prompt-ids " + ids + " " + flags,
        true);
    EXPECT_EQ(r.code, 0) << r.out;
    return r.code == 0 ? json::parse(r.out) : json::object();
  }
  void generation_config(const json& j) { std::ofstream(dir_ / "generation_config.json") << j.dump(); }
  fs::path dir_;
  std::vector<int> greedy_, prompt_;
};

TEST_F(GenerationCli, EosFromGenerationConfigStopsUnlessIgnored) {
  generation_config({{"eos_token_id", json::array({9999, greedy_[3]})}});
  json j = run("");
  EXPECT_EQ(j["generated_ids"].get<std::vector<int>>(), std::vector<int>(greedy_.begin(), greedy_.begin() + 4));
  EXPECT_EQ(j["finish_reason"], "stop");
  EXPECT_EQ(j["text"].get<std::string>().size(), 3u);  // the EOS's own byte is not in the text
  j = run("--ignore-eos");
  EXPECT_EQ(j["generated_ids"].get<std::vector<int>>(), greedy_);
  EXPECT_EQ(j["finish_reason"], "length");
}

TEST_F(GenerationCli, SamplingDefaultsFromGenerationConfigAndFlagsOverride) {
  generation_config({{"do_sample", true}, {"temperature", 0.5}, {"top_k", 5}, {"repetition_penalty", 1.1}});
  json j = run("");
  EXPECT_FLOAT_EQ(j["sampling"]["temperature"].get<float>(), 0.5f);
  EXPECT_EQ(j["sampling"]["top_k"].get<int>(), 5);
  EXPECT_FLOAT_EQ(j["sampling"]["repetition_penalty"].get<float>(), 1.1f);
  EXPECT_EQ(j["sampling"]["defaults_from"].size(), 2u);
  j = run("--temp 0 --top-k 0 --repeat-penalty 1 --seed 5");
  EXPECT_EQ(j["sampling"]["temperature"].get<float>(), 0.0f);
  EXPECT_EQ(j["sampling"]["top_k"].get<int>(), 0);
  EXPECT_EQ(j["generated_ids"].get<std::vector<int>>(), greedy_);
  // Sampling is reproducible from the seed.
  EXPECT_EQ(run("--seed 11")["generated_ids"], run("--seed 11")["generated_ids"]);
}

TEST_F(GenerationCli, StopStringsAndLogprobs) {
  // qwen3's fixture is a byte model; greedy bytes 3 and 4 (0xC5 0x99) spell U+0159.
  ASSERT_EQ(greedy_[3], 0xC5);
  ASSERT_EQ(greedy_[4], 0x99);
  json j = run("--stop \"\xC5\x99\" --stop zzz --logprobs 2");
  EXPECT_EQ(j["finish_reason"], "stop");
  EXPECT_EQ(j["stop"], "\xC5\x99");
  EXPECT_EQ(j["text"], std::string(greedy_.begin(), greedy_.begin() + 3));
  EXPECT_EQ(j["generated_ids"].size(), 5u);
  ASSERT_EQ(j["logprobs"].size(), 5u);
  for (const json& t : j["logprobs"]) {
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    ASSERT_EQ(t["top_logprobs"].size(), 2u);
    EXPECT_EQ(t["top_logprobs"][0]["id"], t["id"]);  // greedy
  }
  EXPECT_EQ(j["sampling"]["stop"], json::array({"\xC5\x99", "zzz"}));
}

}  // namespace
