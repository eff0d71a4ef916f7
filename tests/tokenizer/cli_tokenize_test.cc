// `moe tokenize` / `moe detokenize` end to end: ids, JSON, round trip, and error exit codes.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

struct Result {
  int code;
  std::string out;
};

Result run(const std::string& args) {
  const std::string cmd = std::string(MOE_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  Result r{-1, ""};
  if (!p) return r;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string dir(const char* name) { return std::string(MOE_TOKENIZER_FIXTURES) + "/" + name; }

TEST(CliTokenize, IdsJsonAndRoundTrip) {
  Result r = run("tokenize --tokenizer " + dir("llama2") + " --text 'Hello, world!' --json");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "[22557,28725,1526,28808]\n");
  r = run("tokenize --tokenizer " + dir("llama2") + " --text 'Hello, world!' --add-special");
  EXPECT_EQ(r.out, "1,22557,28725,1526,28808\n");
  r = run("detokenize --tokenizer " + dir("llama2") + " --ids 22557,28725,1526,28808");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "Hello, world!\n");
  r = run("detokenize --tokenizer " + dir("llama2") + "/tokenizer.json --ids 1,22557 --skip-special --json");
  EXPECT_EQ(r.out, "{\"text\":\"Hello\"}\n");
}

TEST(CliTokenize, Errors) {
  const auto bad = std::filesystem::temp_directory_path() / "moe_cli_tokenize_bad.txt";
  std::ofstream(bad) << "ok \xFF bad";
  Result r = run("tokenize --tokenizer " + dir("llama2") + " --text-file " + bad.string());
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
