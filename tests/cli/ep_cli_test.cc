// `--ep` on `moe eval|run|bench layer` without mpirun: --ep 1 is the one-process run (same
// logits file), --ep 2 outside mpirun and --ep 0 are usage errors (exit 2) that say how to start
// it. The mpirun runs themselves are ctest registrations in tests/parallel/tests.cmake.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "moe_process.h"

namespace {

using moe::testing::run_moe;
namespace fs = std::filesystem;

const std::string kMixtral = std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/models/mixtral";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(EpCli, EpOneIsTheOneProcessRun) {
  const fs::path dir = fs::temp_directory_path() / ("moe_ep_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string ids = " --ids 1,5,9,200,3,77 --model " + kMixtral;
  ASSERT_EQ(run_moe("eval" + ids + " --logits-out " + (dir / "a.f32").string()).code, 0);
  const auto r = run_moe("eval" + ids + " --ep 1 --ep-placement round-robin --logits-out " + (dir / "b.f32").string());
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string a = slurp(dir / "a.f32"), b = slurp(dir / "b.f32");
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  fs::remove_all(dir);
}

TEST(EpCli, EpWithoutMpirunIsAUsageError) {
#ifndef MOE_HAVE_MPI
  GTEST_SKIP() << "built without MPI: --ep 2 is an error saying so";
#endif
  for (const std::string& cmd : {"eval --ids 1,2,3 --model " + kMixtral + " --ep 2",
                                 "run --no-ceiling --prompt-ids 1,2 --max-new-tokens 1 --model " + kMixtral + " --ep 2",
                                 std::string("bench layer --no-dense --tokens 1 --ep 2")}) {
    const auto r = run_moe(cmd, true);
    EXPECT_EQ(r.code, 2) << cmd << "\n" << r.out;
    EXPECT_NE(r.out.find("mpirun -np 2"), std::string::npos) << cmd << "\n" << r.out;
  }
  const auto bad = run_moe("eval --ids 1,2,3 --model " + kMixtral + " --ep 0", true);
  EXPECT_EQ(bad.code, 2) << bad.out;
  EXPECT_NE(bad.out.find("--ep: expected an integer from 1"), std::string::npos) << bad.out;
}

}  // namespace
