// --mem-budget on the command line: the same tokens as the all-in-memory run, the "offload" report,
// --expert-profile from a --trace, inspect's prediction, and bad sizes as usage errors naming the flag.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli/moe_process.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kModel = std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/models/qwen3_moe";

TEST(OffloadCli, RunGivesTheSameTokensAndReportsTheCache) {
  const std::string args =
      "--json run --no-ceiling --quiet --temperature 0 --max-new-tokens 12 --prompt-ids 5,17,42 "
      "--model " +
      kModel;
  auto plain = testing::run_moe(args);
  ASSERT_EQ(plain.code, 0) << plain.out;
  const fs::path trace = fs::temp_directory_path() / ("moe_offload_trace_" + std::to_string(getpid()) + ".jsonl");
  auto off = testing::run_moe(args + " --mem-budget 1G --trace " + trace.string());
  ASSERT_EQ(off.code, 0) << off.out;
  const json p = json::parse(plain.out), o = json::parse(off.out);
  EXPECT_EQ(p["generated_ids"], o["generated_ids"]);
  EXPECT_FALSE(p.contains("offload"));
  const json& r = o["offload"];
  EXPECT_GT(r["slots"].get<int64_t>(), 0);
  EXPECT_EQ(r["experts_total"].get<int64_t>(), 16);
  EXPECT_GT(r["requests"].get<int64_t>(), 0);
  EXPECT_GE(r["hit_rate"].get<double>(), 0.0);
  EXPECT_EQ(r["layers"].size(), 2u);
  // The second layer's experts were predicted by the first (pre-gating) and the prediction scored.
  EXPECT_EQ(r["lookaheads"].get<int64_t>(), 12);  // the prompt (first token) and 11 steps
  EXPECT_TRUE(r["layers"][1]["lookahead_precision"].is_number()) << r.dump();
  EXPECT_TRUE(r["layers"][0]["lookahead_precision"].is_null()) << r.dump();
  // The trace's hottest experts pinned: the pool starts with them.
  auto pinned = testing::run_moe(args + " --mem-budget 1G --expert-profile " + trace.string());
  ASSERT_EQ(pinned.code, 0) << pinned.out;
  EXPECT_GT(json::parse(pinned.out)["offload"]["pinned"].get<int64_t>(), 0);
  EXPECT_EQ(json::parse(pinned.out)["generated_ids"], p["generated_ids"]);
  // inspect predicts from the same folder and trace.
  auto ins = testing::run_moe("--json inspect " + kModel + " --mem-budget 1G --trace " + trace.string());
  ASSERT_EQ(ins.code, 0) << ins.out;
  const json pred = json::parse(ins.out)["models"][0]["offload_prediction"];
  EXPECT_TRUE(pred["fits"].get<bool>());
  EXPECT_GT(pred["trace"]["tokens"].get<int64_t>(), 0);
  fs::remove(trace);
}

TEST(OffloadCli, BadSizesAndMisuseAreUsageErrors) {
  for (const char* bad : {"12X", "-3G", "lots", "0"}) {
    auto r = testing::run_moe("eval --ids 1,2 --model " + kModel + " --mem-budget " + bad, true);
    EXPECT_EQ(r.code, 2) << bad << ": " << r.out;
    EXPECT_NE(r.out.find("--mem-budget"), std::string::npos) << r.out;
  }
  auto r = testing::run_moe("eval --ids 1,2 --model " + kModel + " --expert-profile x.jsonl", true);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("only with --mem-budget"), std::string::npos) << r.out;
  auto small = testing::run_moe("eval --ids 1,2 --model " + kModel + " --mem-budget 4K", true);
  EXPECT_EQ(small.code, 1) << small.out;
  EXPECT_NE(small.out.find("give at least"), std::string::npos) << small.out;
}

}  // namespace
}  // namespace moe
