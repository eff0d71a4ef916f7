// `moe run`'s read ceiling (cli/run_common.h): within a boot, for the same ISA and thread count, it comes
// from read-ceiling.json in the cache folder instead of a new measurement, unless asked for a fresh one.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/run_common.h"
#include "runtime/cpu_features.h"
#include "runtime/process_limits.h"
#include "runtime/thread_pool.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

TEST(RunReadCeiling, ComesFromTheCacheFolderWithinABoot) {
  const std::string boot = boot_id();
  if (boot.empty()) GTEST_SKIP() << "no boot id on this system: every run measures";
  const fs::path dir = fs::path(::testing::TempDir()) / ("read_ceiling_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  ::setenv("MOE_CACHE_DIR", dir.c_str(), 1);
  const nlohmann::json key = {{"boot", boot}, {"isa", isa_name(active_isa())}, {"threads", num_threads()}};
  std::ofstream(dir / "read-ceiling.json") << nlohmann::json{{"key", key}, {"read_gb_per_s", 12.5}}.dump();
  EXPECT_DOUBLE_EQ(cli::read_ceiling_for_run(), 12.5);
  // fresh (a run that read faster than the kept figure): measured again, and the new figure kept.
  const double measured = cli::read_ceiling_for_run(/*fresh=*/true);
  EXPECT_GT(measured, 0);
  EXPECT_DOUBLE_EQ(cli::read_ceiling_for_run(), measured);
  ::unsetenv("MOE_CACHE_DIR");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moe
