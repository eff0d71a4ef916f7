// generation_config.json and config.json defaults: eos ids (an int or a list, merged with the
// tokenizer's), Hugging Face's do_sample semantics, bad fields named.
#include "model/generation_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "util/error.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

class GenerationConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moe_gencfg_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  fs::path dir_;
};

TEST_F(GenerationConfig, EosIdsAndSamplingDefaults) {
  write("config.json", R"({"eos_token_id": 7, "bos_token_id": 1})");
  GenerationDefaults d = read_generation_defaults(dir_.string(), nullptr);
  EXPECT_EQ(d.eos_ids, (std::vector<int32_t>{7}));
  EXPECT_EQ(d.sampler.temperature, 0.0f);  // no generation_config.json: greedy
  write("generation_config.json",
        R"({"do_sample": true, "eos_token_id": [151645, 151643, 7], "temperature": 0.6, "top_p": 0.95,
            "top_k": 20, "repetition_penalty": 1.05})");
  d = read_generation_defaults(dir_.string(), nullptr);
  EXPECT_EQ(d.eos_ids, (std::vector<int32_t>{7, 151643, 151645}));
  EXPECT_FLOAT_EQ(d.sampler.temperature, 0.6f);
  EXPECT_FLOAT_EQ(d.sampler.top_p, 0.95f);
  EXPECT_EQ(d.sampler.top_k, 20);
  EXPECT_FLOAT_EQ(d.sampler.repetition_penalty, 1.05f);
  EXPECT_EQ(d.files.size(), 2u);
  // do_sample true without the rest: transformers' defaults (temperature 1, top-k 50).
  write("generation_config.json", R"({"do_sample": true})");
  d = read_generation_defaults(dir_.string(), nullptr);
  EXPECT_FLOAT_EQ(d.sampler.temperature, 1.0f);
  EXPECT_EQ(d.sampler.top_k, 50);
  // do_sample false: greedy whatever the temperature says.
  write("generation_config.json", R"({"temperature": 0.7, "eos_token_id": null})");
  d = read_generation_defaults(dir_.string(), nullptr);
  EXPECT_EQ(d.sampler.temperature, 0.0f);
  EXPECT_EQ(d.eos_ids, (std::vector<int32_t>{7}));
}

TEST_F(GenerationConfig, BadFieldsAreNamed) {
  write("config.json", "{}");
  for (const char* bad : {R"({"eos_token_id": "x"})", R"({"eos_token_id": [1, -2]})", R"({"do_sample": 1})",
                          R"({"do_sample": true, "top_p": 1.5})", R"({"do_sample": true, "top_k": 2.5})", "[1]", "{"}) {
    write("generation_config.json", bad);
    try {
      read_generation_defaults(dir_.string(), nullptr);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("generation_config.json"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace moe
