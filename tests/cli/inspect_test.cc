// `moe inspect` end to end: a catalog model, --list, side by side, --markdown, --json keys,
// workload flags with --explain, the checkpoint-folder cross-check, and error exit codes.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "moe_process.h"

namespace {

using Result = moe::testing::MoeResult;
using moe::testing::run_moe;

bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

TEST(Inspect, CatalogModel) {
  const Result r = run_moe("inspect mixtral-8x7b");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "46.70B")) << r.out;
  EXPECT_TRUE(has(r.out, "46,702,792,704")) << r.out;
  EXPECT_TRUE(has(r.out, "12.88B")) << r.out;
  EXPECT_TRUE(has(r.out, "46.7B (matches)")) << r.out;
  EXPECT_TRUE(has(r.out, "12.9B (matches)")) << r.out;
  EXPECT_TRUE(has(r.out, "routed_expert")) << r.out;
  EXPECT_TRUE(has(r.out, "(2 of 8)")) << r.out;
  EXPECT_TRUE(has(r.out, "card convention")) << r.out;
}

TEST(Inspect, ListShowsEveryCatalogModel) {
  const Result r = run_moe("inspect --list");
  ASSERT_EQ(r.code, 0);
  for (const char* n : {"mixtral-8x7b", "deepseek-v3", "kimi-k2", "qwen3-30b-a3b", "qwen2-57b-a14b", "olmoe-1b-7b",
                        "gpt-oss-20b", "deepseekmoe-16b", "dbrx", "glm-4.5-air", "llama-4-scout", "deepseek-v4-flash"})
    EXPECT_TRUE(has(r.out, n)) << n;
  EXPECT_TRUE(has(r.out, "284.33B")) << r.out;
  const Result j = run_moe("inspect --list --json");
  ASSERT_EQ(j.code, 0);
  EXPECT_EQ(nlohmann::json::parse(j.out)["catalog"].size(), 23u);
}

TEST(Inspect, SideBySideAndMarkdown) {
  const Result r = run_moe("inspect mixtral-8x7b deepseek-v3 gpt-oss-20b");
  ASSERT_EQ(r.code, 0);
  const std::string first_line = r.out.substr(0, r.out.find('\n'));
  EXPECT_TRUE(has(first_line, "mixtral-8x7b") && has(first_line, "deepseek-v3") && has(first_line, "gpt-oss-20b"))
      << first_line;
  EXPECT_TRUE(has(r.out, "671.03B"));
  const Result m = run_moe("inspect mixtral-8x7b qwen3-30b-a3b --markdown");
  ASSERT_EQ(m.code, 0);
  EXPECT_TRUE(has(m.out, "| ---|") || has(m.out, "|---|")) << m.out;
  EXPECT_TRUE(has(m.out, "| total params |")) << m.out;
  const Result single = run_moe("inspect olmoe --markdown");
  EXPECT_TRUE(has(single.out, "## olmoe-1b-7b")) << single.out;
}

TEST(Inspect, JsonHasTheRequiredKeys) {
  const Result r = run_moe("inspect deepseek-v4-flash --json");
  ASSERT_EQ(r.code, 0);
  const auto j = nlohmann::json::parse(r.out)["models"][0];
  for (const char* k : {"total_params", "total_params_with_mtp", "activated_params", "activated_params_no_embedding",
                        "activated_params_non_embedding"})
    ASSERT_TRUE(j.contains(k) && j[k].is_number_integer()) << k;
  for (const char* k : {"breakdown", "cost", "kv_cache", "ep"}) ASSERT_TRUE(j.contains(k) && j[k].is_object()) << k;
  EXPECT_EQ(j["total_params"].get<int64_t>(), 284332240471);
  EXPECT_EQ(j["activated_params_no_embedding"].get<int64_t>(), 13270101591);
  EXPECT_EQ(j["published"]["activated_convention"], "activated_params_no_embedding");
  EXPECT_TRUE(j["published"]["activated_matches"].get<bool>());
  const Result both = run_moe("inspect dbrx glm-4.5-air --json");
  EXPECT_EQ(nlohmann::json::parse(both.out)["models"].size(), 2u);
}

TEST(Inspect, WorkloadFlagsAndExplain) {
  const Result r = run_moe("inspect mixtral-8x7b --json --explain --context 8192 --batch 4 --prompt 512 --ep 8");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out)["models"][0];
  EXPECT_EQ(j["cost"]["context"], 8192);
  EXPECT_EQ(j["cost"]["batch"], 4);
  EXPECT_EQ(j["cost"]["prompt"], 512);
  EXPECT_DOUBLE_EQ(j["kv_cache"]["bytes_at_context"].get<double>(), 131072.0 * 8192);
  EXPECT_DOUBLE_EQ(j["kv_cache"]["bytes_at_batch"].get<double>(), 4 * 131072.0 * 8192);
  EXPECT_EQ(j["ep"]["ranks"], 8);
  EXPECT_DOUBLE_EQ(j["ep"]["dispatch_bf16_bytes_per_token_layer"].get<double>(), 1.75 * 4096 * 2);
  EXPECT_NEAR(j["decode_floor"]["expected_experts_per_layer"].get<double>(), 5.46875, 1e-12);
  EXPECT_TRUE(j["explain"]["expected_experts_per_layer"]["formula"].get<std::string>().find("E(1-(1-K/E)^B)") !=
              std::string::npos);
  const Result t = run_moe("inspect mixtral-8x7b --explain --ep 8");
  EXPECT_TRUE(has(t.out, "E(1-(1-K/E)^B)")) << t.out;
  EXPECT_TRUE(has(t.out, "ep_dispatch_fp8_bytes")) << t.out;
}

TEST(Inspect, CheckpointFolderCrossCheck) {
  const std::filesystem::path fixture =
      std::filesystem::path(MOE_TEST_DATA_DIR) / "reference/fixtures/models/qwen2_moe";
  const Result r = run_moe("inspect " + fixture.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "every tensor matches the registry")) << r.out;
  EXPECT_TRUE(has(r.out, "parameters in the headers")) << r.out;
  const Result j = run_moe("inspect " + fixture.string() + " --json");
  const auto js = nlohmann::json::parse(j.out)["models"][0];
  EXPECT_TRUE(js["checkpoint_check"]["ok"].get<bool>());
  EXPECT_EQ(js["checkpoint_check"]["header_params"], js["total_params"]);
}

// Memory per rank under EP: replicated weights + the rank's routed experts; E need not divide by R.
TEST(Inspect, EpWeightBytesPerRank) {
  const auto one = nlohmann::json::parse(run_moe("inspect mixtral-8x7b --json").out)["models"][0];
  const auto three = nlohmann::json::parse(run_moe("inspect mixtral-8x7b --ep 3 --json").out)["models"][0];
  const double total = one["weights"]["checkpoint_bytes"].get<double>();
  const double routed = one["breakdown"]["routed_expert"]["bytes"].get<double>();
  ASSERT_GT(routed, 0.0);
  const double rest = total - routed;
  EXPECT_NEAR(three["ep"]["weight_bytes_rank_max"].get<double>(), rest + routed * 3 / 8, 1.0);  // 3 3 2
  EXPECT_NEAR(three["ep"]["weight_bytes_rank_min"].get<double>(), rest + routed * 2 / 8, 1.0);
}

TEST(Inspect, ErrorsExitNonZeroWithAClearMessage) {
  const Result unknown = run_moe("inspect no-such-model", true);
  EXPECT_EQ(unknown.code, 2);
  EXPECT_TRUE(has(unknown.out, "neither a catalog model")) << unknown.out;
  EXPECT_EQ(run_moe("inspect").code, 2);
  EXPECT_EQ(run_moe("inspect mixtral-8x7b --ep 9").code, 2);  // more ranks than experts
  const auto dir = std::filesystem::temp_directory_path() / "moe_inspect_bad";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({"model_type": "gpt2", "n_layer": 12})";
  const Result bad = run_moe("inspect " + dir.string(), true);
  EXPECT_EQ(bad.code, 1);
  EXPECT_TRUE(has(bad.out, "unsupported model_type \"gpt2\"")) << bad.out;
}

}  // namespace
