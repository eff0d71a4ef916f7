// `moe eval` and `moe run` end to end on the PyTorch reference checkpoints of every family:
// --logits-out equals the reference logits within 1e-4, the greedy continuation of 20 tokens is
// identical, --json has the documented keys, and bad inputs exit non-zero with a clear message.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "io/safetensors.h"
#include "moe_process.h"

namespace {

using Result = moe::testing::MoeResult;
// Every call here folds stderr into the output (the error messages are checked).
Result run_moe(const std::string& args) { return moe::testing::run_moe(args, true); }

namespace fs = std::filesystem;
const std::string kModels = std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/models";

nlohmann::json expected(const std::string& family) {
  std::ifstream in(kModels + "/" + family + "/expected.json");
  return nlohmann::json::parse(in);
}

std::string join(const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) {
    if (!s.empty()) s += ',';  // appended piecewise: GCC 12 warns falsely on the chained operator+ form
    s += std::to_string(id);
  }
  return s;
}

class FamilyCli : public ::testing::TestWithParam<std::string> {};

// `moe eval --logits-out` of the family's reference prompt with extra flags; [T, V] floats.
std::vector<float> eval_logits(const std::string& family, size_t n, const std::string& flags) {
  const std::string dir = kModels + "/" + family;
  const std::string out = (fs::temp_directory_path() / ("moe_logits_" + family + ".f32")).string();
  const Result r = run_moe("eval " + flags + " --model " + dir + " --ids " +
                           join(expected(family)["prompt_ids"].get<std::vector<int>>()) + " --logits-out " + out);
  EXPECT_EQ(r.code, 0) << r.out;
  std::ifstream in(out, std::ios::binary);
  std::vector<float> got(n);
  in.read(reinterpret_cast<char*>(got.data()), static_cast<std::streamsize>(got.size() * sizeof(float)));
  EXPECT_EQ(in.gcount(), static_cast<std::streamsize>(got.size() * sizeof(float))) << "logits file size";
  EXPECT_EQ(in.peek(), EOF) << "logits file longer than [T, V]";
  fs::remove(out);
  return got;
}

double max_abs_diff(const std::vector<float>& got, const std::vector<float>& want) {
  double max_err = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    max_err = std::max(max_err, std::fabs(double(got[i]) - want[i]));
  }
  return max_err;
}

TEST_P(FamilyCli, EvalLogitsMatchReference) {
  const std::string family = GetParam();
  const moe::SafetensorsFile ref = moe::SafetensorsFile::open(kModels + "/" + family + "/expected.safetensors");
  const std::vector<float> want = ref.to_f32("logits");
  EXPECT_LT(max_abs_diff(eval_logits(family, want.size(), ""), want), 1e-4) << family;
}

TEST_P(FamilyCli, SixteenBitKvCacheStaysNearTheReference) {
  // --kv-type f16 / bf16 on the float32 reference checkpoints (whose default is an f32 cache): the keys
  // and values rounded once, the logits within the rounding's reach of the reference, and not the f32
  // cache's logits (the flag took effect).
  const std::string family = GetParam();
  const moe::SafetensorsFile ref = moe::SafetensorsFile::open(kModels + "/" + family + "/expected.safetensors");
  const std::vector<float> want = ref.to_f32("logits");
  double scale = 0;
  for (float x : want) scale = std::max(scale, double(std::fabs(x)));
  const std::vector<float> f32 = eval_logits(family, want.size(), "--kv-type f32");
  for (const auto& [type, tol] : {std::pair{"f16", 3e-3}, std::pair{"bf16", 2e-2}}) {
    const std::vector<float> got = eval_logits(family, want.size(), std::string("--kv-type ") + type);
    const double err = max_abs_diff(got, want);
    EXPECT_LT(err, tol * scale) << family << " " << type;
    EXPECT_GT(max_abs_diff(got, f32), 0.0) << family << " " << type << ": the same logits as the f32 cache";
  }
}

TEST_P(FamilyCli, GreedyContinuationIsIdentical) {
  const std::string family = GetParam(), dir = kModels + "/" + family;
  const auto exp = expected(family);
  const Result r = run_moe("--json run --no-ceiling --max-new-tokens 20 --model " + dir + " --prompt-ids " +
                           join(exp["prompt_ids"].get<std::vector<int>>()));
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["generated_ids"].get<std::vector<int>>(), exp["greedy_ids"].get<std::vector<int>>()) << family;
  for (const char* key :
       {"text", "prompt_tokens", "generated_tokens", "prefill_tokens_per_s", "decode_tokens_per_s", "total_params",
        "activated_params_analytic", "activated_params_measured", "expert_load", "roofline_fraction"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["generated_tokens"].get<int>(), 20);
  EXPECT_GT(j["total_params"].get<int64_t>(), 0);
  // Dropless top-k: every token used exactly the analytic number of parameters.
  EXPECT_NEAR(j["activated_params_measured"].get<double>(), j["activated_params_analytic"].get<double>(), 0.5);
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyCli,
                         ::testing::Values("llama", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe",
                                           "deepseek_v2_lite", "deepseek_v3", "gpt_oss"));

TEST(RunCli, TraceWritesOneLinePerToken) {
  const std::string trace = (fs::temp_directory_path() / "moe_trace_test.jsonl").string();
  const Result r = run_moe("run --no-ceiling --quiet --max-new-tokens 5 --model " + kModels +
                           "/qwen3_moe --prompt-ids 1,2,3 --trace " + trace);
  ASSERT_EQ(r.code, 0) << r.out;
  std::ifstream in(trace);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["position"].get<int>(), lines);
    EXPECT_TRUE(j["experts"].is_array());
    ++lines;
  }
  EXPECT_EQ(lines, 3 + 4);  // prompt tokens + decode steps (the last token is not run)
  fs::remove(trace);
}

TEST(RunCli, BadInputsAreClearErrors) {
  const std::string m = kModels + "/mixtral";
  struct Case {
    std::string args, needle;
    int code;
  };
  const Case cases[] = {
      {"run --model " + m + " --prompt-ids 1,99999", "outside the vocabulary", 1},
      {"run --model " + m + " --prompt-ids \"\"", "prompt is empty", 2},
      {"run --model " + m + " --prompt-ids 1,2,3 --context 2", "context", 1},
      {"eval --model " + m + " --ids 1,x", "not a token id", 2},
      {"eval --model /nonexistent --ids 1,2", "/nonexistent", 1},
      {"eval --model " + m + " --ids 1,2 --ids-file /nonexistent", "exactly one", 2},
      {"eval --model " + m + " --ids 1,2 --kv-type f8", "--kv-type f8: expected auto, f32, f16 or bf16", 2},
  };
  for (const Case& c : cases) {
    const Result r = run_moe(c.args);
    EXPECT_EQ(r.code, c.code) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.needle), std::string::npos) << c.args << "\n" << r.out;
  }
  for (const char* env : {"MOE_PREFILL_CHUNK=lots", "MOE_PREFILL_CHUNK=-3"}) {
    const auto r = moe::testing::run_moe_env(env, "run --no-ceiling --model " + m + " --prompt-ids 1,2,3");
    EXPECT_EQ(r.code, 1) << env << "\n" << r.out;
    EXPECT_NE(r.out.find("MOE_PREFILL_CHUNK"), std::string::npos) << env << "\n" << r.out;
  }
}

}  // namespace
