// The `moe` binary end to end: info, bench ceilings --json keys, exit codes of errors and placeholders.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "moe_process.h"

namespace {

using Result = moe::testing::MoeResult;
using moe::testing::run_moe;

TEST(Cli, InfoJson) {
  const Result r = run_moe("info --json");
  ASSERT_EQ(r.code, 0);
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"version", "build_type", "cpu_features", "kernel_isa", "threads", "openblas_core", "avx2",
                          "avx512f", "avx512_bf16", "avx_vnni", "amx"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
}

TEST(Cli, BenchCeilingsJsonHasTheKeys) {
  const Result r = run_moe("--threads 2 bench ceilings --json --repetitions 1 --stream-mib 16 --sgemm-n 128");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key :
       {"read_gb_per_s", "triad_gb_per_s", "fma_f32_gflop_per_s", "dot_bf16_gflop_per_s", "sgemm_gflop_per_s"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_GE(j[key].get<double>(), 0.0) << key;
  }
  EXPECT_GT(j["read_gb_per_s"].get<double>(), 0.1);
  EXPECT_GT(j["fma_f32_gflop_per_s"].get<double>(), 0.1);
  EXPECT_EQ(j["per_threads"].size(), 2u);
}

// The keys the MoE-layer issue names, with the read ceiling paired per call (kernels/ceilings.h ReadProbe).
TEST(Cli, BenchLayerJsonHasTheKeys) {
  const Result r = run_moe(
      "--threads 2 --json bench layer --d-model 64 --d-ff 32 --experts 8 --experts-per-token 2 --shared-experts 0 "
      "--dtype f32 --tokens 1,3 "
      "--repetitions 2 --max-weight-gib 0.01 --dense-max-chunks 4");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 2u);
  for (const auto& row : j["rows"]) {
    for (const char* key : {"tokens", "ms", "gb_per_s", "gflop_per_s", "read_ceiling_gb_per_s",
                            "fma_ceiling_gflop_per_s", "dense_total_ms", "dense_activated_ms", "read_fraction"}) {
      ASSERT_TRUE(row.contains(key)) << key;
      EXPECT_TRUE(std::isfinite(row[key].get<double>())) << key;
    }
    EXPECT_GT(row["read_ceiling_gb_per_s"].get<double>(), 0.1);
    EXPECT_GT(row["read_fraction"].get<double>(), 0.0);
    EXPECT_GT(row["dense_total_ms"].get<double>(), 0.0);
  }
}

// `moe bench serve` on the qwen3_moe fixture: one row per stream count, distinct experts between
// k and E and at most B x k, the uniform prediction, finite floors, the step's parts within the step.
TEST(Cli, BenchServeJsonHasTheKeys) {
  const std::string fixture = std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/models/qwen3_moe";
  const Result r =
      run_moe("--threads 2 --json bench serve --model " + fixture + " --streams 1,3 --prompt 4 --decode 4");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 2u);
  const double E = j["n_expert"].get<double>(), k = j["n_expert_used"].get<double>();
  for (const auto& row : j["rows"]) {
    for (const char* key :
         {"tokens_per_s", "step_ms", "distinct_experts_per_layer", "distinct_experts_uniform_prediction",
          "bytes_per_step", "floor_tokens_per_s", "compute_bound_tokens_per_s", "fraction_of_roofline",
          "hottest_k_share", "attention_ms", "ffn_ms", "lm_head_ms"}) {
      ASSERT_TRUE(row.contains(key)) << key;
      EXPECT_TRUE(std::isfinite(row[key].get<double>())) << key;
      EXPECT_GT(row[key].get<double>(), 0.0) << key;
    }
    // The fixture's step fits in the last-level cache: no DRAM floor fraction, and a note saying why.
    EXPECT_TRUE(row["fraction_of_floor"].is_null() ? row["fraction_of_floor_note"].is_string()
                                                   : row["fraction_of_floor"].get<double>() > 0);
    // Medians of each part and of the whole need not add up exactly (a few timed steps of a tiny model).
    const double parts =
        row["attention_ms"].get<double>() + row["ffn_ms"].get<double>() + row["lm_head_ms"].get<double>();
    EXPECT_LE(parts, 1.5 * row["step_ms"].get<double>());
    const double B = row["streams"].get<double>(), d = row["distinct_experts_per_layer"].get<double>();
    EXPECT_GE(d, k);
    EXPECT_LE(d, std::min(E, B * k));
  }
  EXPECT_NEAR(j["rows"][0]["distinct_experts_uniform_prediction"].get<double>(), k, 1e-9);
  const Result bad = run_moe("bench serve --model " + fixture + " --streams 1,x", true);
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.out.find("--streams"), std::string::npos) << bad.out;
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(run_moe("").code, 2);
  EXPECT_EQ(run_moe("no-such-command").code, 2);
  EXPECT_EQ(run_moe("bench ceilings --repetitions 0").code, 2);
  EXPECT_EQ(run_moe("--threads -3 info").code, 2);
}

// --threads and MOE_THREADS: absurd counts are usage errors naming the flag and the range; more
// threads than usable CPUs work but warn.
TEST(Cli, ThreadCounts) {
  for (const char* bad : {"--threads 5000", "--threads -1", "--threads 1e9", "--threads two"}) {
    const Result r = run_moe(fmt::format("{} info", bad), true);
    EXPECT_EQ(r.code, 2) << bad;
    EXPECT_NE(r.out.find("--threads"), std::string::npos) << bad << ": " << r.out;
    EXPECT_NE(r.out.find("1024"), std::string::npos) << bad << ": " << r.out;
  }
  const Result env = run_moe("info", true);
  EXPECT_EQ(env.code, 0);
  const Result bad_env = moe::testing::run_moe_env("MOE_THREADS=lots", "info");
  EXPECT_EQ(bad_env.code, 2);
  EXPECT_NE(bad_env.out.find("MOE_THREADS"), std::string::npos) << bad_env.out;
  const Result many = run_moe("--threads 64 --json info", true);
  ASSERT_EQ(many.code, 0) << many.out;
  EXPECT_NE(many.out.find("64 threads asked for"), std::string::npos) << many.out;
}

TEST(Cli, HelpAndVersion) {
  EXPECT_EQ(run_moe("--help").code, 0);
  const Result v = run_moe("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find("0."), std::string::npos);
}

}  // namespace
