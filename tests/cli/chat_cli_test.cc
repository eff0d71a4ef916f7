// `moe run --chat` and `moe chat` on a tiny instruct fixture (tests/common/chat_model.h): the
// prompt is the chat template's text encoded with its special tokens, the EOS (<|im_end|>) stops
// a reply, /reset and /exit work, and a model without a template is a clear error.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/chat_model.h"
#include "moe_process.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ChatCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = (fs::temp_directory_path() / ("moe_chat_cli_" + std::to_string(::getpid()))).string();
    moe::testing::write_chat_model(dir_);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string dir_;
};
std::string ChatCli::dir_;

std::vector<int> bytes_of(const std::string& s) { return std::vector<int>(s.begin(), s.end()); }

TEST_F(ChatCli, RunChatAppliesTheTemplate) {
  const auto r = moe::testing::run_moe(
      "--json run --chat --no-ceiling --max-new-tokens 4 --model " + dir_ + " --system \"Be brief.\" --prompt \"Hi\"",
      true);
  ASSERT_EQ(r.code, 0) << r.out;
  const json j = json::parse(r.out);
  // <|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n
  std::vector<int> want = {256};
  auto add = [&](const std::string& s) {
    for (int b : bytes_of(s)) want.push_back(b);
  };
  add("system\nBe brief.");
  want.push_back(257);
  add("\n");
  want.push_back(256);
  add("user\nHi");
  want.push_back(257);
  add("\n");
  want.push_back(256);
  add("assistant\n");
  EXPECT_EQ(j["prompt_ids"].get<std::vector<int>>(), want);
  EXPECT_EQ(j["sampling"]["stop_ids"], json::array({257}));  // config.json + tokenizer_config eos
}

TEST_F(ChatCli, InteractiveChatStreamsResetsAndExits) {
  const auto r = moe::testing::run_moe_env("printf 'Hello\\n/reset\\nHi again\\n/exit\\nnot read\\n' |",
                                           "chat --max-new-tokens 6 --temp 0.8 --seed 3 --model " + dir_);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("[history cleared]"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("moe: "), std::string::npos) << r.out;
}

TEST_F(ChatCli, NoTemplateIsAClearError) {
  const std::string plain = std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/models/qwen3";
  const auto r = moe::testing::run_moe("run --chat --prompt hi --model " + plain, true);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("--chat needs the model's tokenizer"), std::string::npos) << r.out;
}

// The same model as a GGUF (moe quantize --type F32): the chat template and the EOS come from its
// metadata (tokenizer.chat_template, tokenizer.ggml.eos_token_id); prompt and tokens are the same.
TEST_F(ChatCli, GgufCarriesTheTemplateAndEos) {
  const std::string gguf = dir_ + "/chat.gguf";
  const auto q = moe::testing::run_moe("quantize --no-progress --type F32 --model " + dir_ + " --out " + gguf, true);
  ASSERT_EQ(q.code, 0) << q.out;
  const std::string args =
      "--json run --chat --no-ceiling --max-new-tokens 6 --temp 0.9 --seed 4 --prompt \"Hi there\" --model ";
  const auto a = moe::testing::run_moe(args + dir_, true), b = moe::testing::run_moe(args + gguf, true);
  ASSERT_EQ(a.code, 0) << a.out;
  ASSERT_EQ(b.code, 0) << b.out;
  const json ja = json::parse(a.out), jb = json::parse(b.out);
  EXPECT_EQ(ja["prompt_ids"], jb["prompt_ids"]);
  EXPECT_EQ(jb["sampling"]["stop_ids"], json::array({257}));
  EXPECT_EQ(ja["generated_ids"], jb["generated_ids"]);
}

}  // namespace
