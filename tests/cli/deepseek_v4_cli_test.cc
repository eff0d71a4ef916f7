// `moe run`, `moe eval` and `moe bench model` on DeepSeek-V4: the reference fixtures
// (tests/reference/deepseek_v4_reference.py) generate the reference's greedy tokens in both checkpoint
// layouts, eval scores the prompt, and a bench of a small V4-shaped random checkpoint runs and reports.
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/moe_process.h"

namespace moe {
namespace {

using testing::run_moe;

std::string fixture(const std::string& layout) {
  return std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/deepseek_v4/" + layout;
}

nlohmann::json expected(const std::string& layout) {
  return nlohmann::json::parse(std::ifstream(fixture(layout) + "/expected.json"));
}

std::string ids_arg(const nlohmann::json& ids) {
  std::string s;
  for (const auto& v : ids) {
    if (!s.empty()) s.push_back(',');
    s.append(std::to_string(v.get<int>()));  // appended: GCC 12 warns falsely on the operator+ form
  }
  return s;
}

TEST(DeepseekV4Cli, RunGeneratesTheReferenceGreedyTokensInBothLayouts) {
  for (const char* layout : {"official", "hf"}) {
    const nlohmann::json e = expected(layout);
    const auto r = run_moe("run -m " + fixture(layout) + " --prompt-ids " + ids_arg(e["prompt_ids"]) +
                           " -n 10 --ignore-eos --no-ceiling --json");
    ASSERT_EQ(r.code, 0) << layout << ": " << r.out;
    const nlohmann::json out = nlohmann::json::parse(r.out);
    EXPECT_EQ(out["generated_ids"], e["greedy_ids"]) << layout;
    EXPECT_GT(out["kv_cache_bytes"].get<double>(), 0) << layout;
    EXPECT_GT(out["distinct_experts_per_decode_step"].get<double>(), 0) << layout;
  }
}

// --kv-type reaches V4's own cache: the report names the type, a 16-bit cache holds half the f32 rows' bytes (plus
// the same f32 pending windows of the compressors: 2 x 16-bit - f32 is that part), and greedy decoding of the
// fixture is unchanged.
TEST(DeepseekV4Cli, KvTypeSetsTheCacheRows) {
  const nlohmann::json e = expected("official");
  double bytes[3] = {0, 0, 0};
  const char* types[3] = {"f32", "f16", "bf16"};
  for (int i = 0; i < 3; ++i) {
    const auto r = run_moe("run -m " + fixture("official") + " --prompt-ids " + ids_arg(e["prompt_ids"]) +
                           " -n 10 --ignore-eos --no-ceiling --json --kv-type " + types[i]);
    ASSERT_EQ(r.code, 0) << types[i] << ": " << r.out;
    const nlohmann::json out = nlohmann::json::parse(r.out);
    EXPECT_EQ(out["kv_cache_type"], i == 0 ? "F32" : i == 1 ? "F16" : "BF16");
    EXPECT_EQ(out["generated_ids"], e["greedy_ids"]) << types[i];
    bytes[i] = out["kv_cache_bytes"].get<double>();
  }
  const double pending = 2 * bytes[1] - bytes[0];
  EXPECT_GT(pending, 0);
  EXPECT_LT(pending, bytes[1]);
  EXPECT_EQ(bytes[1], bytes[2]);
}

TEST(DeepseekV4Cli, EvalScoresThePrompt) {
  const nlohmann::json e = expected("official");
  const auto r = run_moe("eval -m " + fixture("official") + " --ids " + ids_arg(e["prompt_ids"]) + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json out = nlohmann::json::parse(r.out);
  EXPECT_TRUE(out.contains("perplexity")) << r.out;
}

TEST(DeepseekV4Cli, BenchModelRunsASmallV4ShapedCheckpoint) {
  // V4-Flash's layout at a size this machine holds: 2 layers (the last two: HCA 128 and CSA 4), fewer experts.
  nlohmann::json cfg =
      nlohmann::json::parse(std::ifstream(std::string(MOE_SOURCE_DIR) + "/data/models/DeepSeek-V4-Flash.json"));
  cfg["hidden_size"] = 256;
  cfg["num_attention_heads"] = 8;
  cfg["head_dim"] = 128;
  cfg["q_lora_rank"] = 128;
  cfg["o_lora_rank"] = 64;
  cfg["o_groups"] = 4;
  cfg["index_n_heads"] = 4;
  cfg["index_head_dim"] = 64;
  cfg["index_topk"] = 16;
  cfg["n_routed_experts"] = 16;
  cfg["moe_intermediate_size"] = 128;
  cfg["vocab_size"] = 1024;
  const std::string path = ::testing::TempDir() + "/dsv4_small_config.json";
  std::ofstream(path) << cfg.dump(2);
  // bf16 everywhere, then the stored formats (FP8 linears with E8M0 block scales, FP4 experts): fewer bytes.
  double bytes[2] = {0, 0};
  for (int native = 0; native < 2; ++native) {
    const auto r = run_moe("bench model -m " + path + " --layers 2 --prompt 300 --decode 4 --repetitions 1 --json" +
                           (native ? " --dtype native" : ""));
    ASSERT_EQ(r.code, 0) << r.out;
    const nlohmann::json out = nlohmann::json::parse(r.out);
    EXPECT_EQ(out["model_type"], "deepseek_v4");
    EXPECT_GT(out["decode_tokens_per_s"].get<double>(), 0);
    bytes[native] = out["bytes_per_decode_token"].get<double>();
  }
  EXPECT_LT(bytes[1], 0.7 * bytes[0]);
}

}  // namespace
}  // namespace moe
