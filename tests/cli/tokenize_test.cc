// `moe tokenize` / `moe detokenize` end to end: ids, JSON, round trip, and error exit codes
// (a CLI test: it runs the built binary, so it lives with test_cli, which depends on `moe`).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "cli/moe_process.h"

namespace {

using moe::testing::run_moe;

moe::testing::MoeResult run(const std::string& args) { return run_moe(args, /*merge_stderr=*/true); }

std::string dir(const char* name) { return std::string(MOE_TOKENIZER_FIXTURES) + "/" + name; }

TEST(CliTokenize, IdsJsonAndRoundTrip) {
  auto r = run("tokenize --tokenizer " + dir("llama2") + " --text 'Hello, world!' --json");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["ids"], nlohmann::json::parse("[22557,28725,1526,28808]")) << r.out;
  r = run("tokenize --tokenizer " + dir("llama2") + " --text 'Hello, world!' --add-special");
  EXPECT_EQ(r.out, "1,22557,28725,1526,28808\n");
  r = run("detokenize --tokenizer " + dir("llama2") + " --ids 22557,28725,1526,28808");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "Hello, world!\n");
  r = run("detokenize --tokenizer " + dir("llama2") + "/tokenizer.json --ids 1,22557 --skip-special --json");
  EXPECT_EQ(nlohmann::json::parse(r.out)["text"], "Hello") << r.out;
}

TEST(CliTokenize, Errors) {
  const auto bad = std::filesystem::temp_directory_path() / "moe_cli_tokenize_bad.txt";
  std::ofstream(bad) << "ok \xFF bad";
  auto r = run("tokenize --tokenizer " + dir("llama2") + " --text-file " + bad.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("[tokenizer] input text is not valid UTF-8"), std::string::npos) << r.out;
  r = run("tokenize --tokenizer " + dir("llama2"));
  EXPECT_EQ(r.code, 2) << r.out;
  r = run("detokenize --tokenizer " + dir("llama2") + " --ids 1,x");
  EXPECT_EQ(r.code, 2) << r.out;
  r = run("tokenize --tokenizer /nonexistent --text hi");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("[tokenizer]"), std::string::npos) << r.out;
}

}  // namespace
