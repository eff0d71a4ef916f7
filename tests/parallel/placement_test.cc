// Expert placement: contiguous and round-robin with E not divisible by R, the file format and
// its errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "parallel/placement.h"
#include "util/error.h"

namespace moe::parallel {
namespace {

std::vector<int> sizes(const ExpertPlacement& p) {
  std::vector<int> n;
  for (int r = 0; r < p.n_rank(); ++r) n.push_back(int(p.experts_of(r).size()));
  return n;
}

TEST(Placement, ContiguousUnevenBlocks) {
  const auto p = ExpertPlacement::contiguous(10, 4);
  EXPECT_EQ(sizes(p), (std::vector<int>{3, 3, 2, 2}));
  EXPECT_EQ(p.owners(), (std::vector<int>{0, 0, 0, 1, 1, 1, 2, 2, 3, 3}));
  EXPECT_EQ(p.local_index(7), 1);
  EXPECT_EQ(ExpertPlacement::contiguous(3, 4).experts_of(3).size(), 0u);  // a rank with no expert
  EXPECT_EQ(p.describe(), "contiguous 10 experts on 4 ranks: 3 3 2 2");
}

TEST(Placement, RoundRobin) {
  const auto p = ExpertPlacement::round_robin(7, 3);
  EXPECT_EQ(p.experts_of(0), (std::vector<int>{0, 3, 6}));
  EXPECT_EQ(p.experts_of(2), (std::vector<int>{2, 5}));
  EXPECT_EQ(p.local_index(5), 1);
}

std::string write_temp(const std::string& text) {
  const std::string path = ::testing::TempDir() + "placement_" + std::to_string(std::rand()) + ".txt";
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const std::string& text, int n_expert, int n_rank) {
  try {
    ExpertPlacement::from_file(write_temp(text), n_expert, n_rank);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Placement, FromFile) {
  const auto p = ExpertPlacement::parse("file:" + write_temp("# expert rank\n0 1\n1 0 # hot\n\n2 1\n3 1\n"), 4, 2);
  EXPECT_EQ(p.owners(), (std::vector<int>{1, 0, 1, 1}));
  EXPECT_EQ(p.experts_of(1), (std::vector<int>{0, 2, 3}));
  EXPECT_NE(error_of("0 0\n1 2\n", 2, 2).find(":2: rank 2 is outside [0, 2)"), std::string::npos);
  EXPECT_NE(error_of("0 0\n0 1\n", 2, 2).find("expert 0 is placed twice"), std::string::npos);
  EXPECT_NE(error_of("0 0\n", 2, 2).find("expert 1 has no rank"), std::string::npos);
  EXPECT_NE(error_of("0 zero\n", 1, 1).find("expected 'expert rank'"), std::string::npos);
  EXPECT_NE(error_of("5 0\n", 2, 1).find("expert 5 is outside [0, 2)"), std::string::npos);
  EXPECT_THROW(ExpertPlacement::from_file("/nonexistent/placement.txt", 2, 2), Error);
  EXPECT_THROW(ExpertPlacement::parse("random", 2, 2), UsageError);
}

}  // namespace
}  // namespace moe::parallel
