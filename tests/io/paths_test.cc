// Path checks: an output that is an input - the same path, a symbolic link, a hard link, a file in
// an input folder - is refused; folders where files are expected, and the reverse, are named.
#include "io/paths.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "util/error.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

class Paths : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("moe_paths_" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "model");
    std::ofstream(root_ / "model/config.json") << "{}";
    std::ofstream(root_ / "model/model.safetensors") << "weights";
    std::ofstream(root_ / "ids.txt") << "1 2 3";
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string p(const std::string& rel) const { return (root_ / rel).string(); }
  fs::path root_;
};

std::string usage_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const UsageError& e) {
    return e.what();
  } catch (const Error& e) {
    return std::string("not a usage error: ") + e.what();
  }
  return "";
}

TEST_F(Paths, OutputOntoAnInputIsRefusedThroughLinks) {
  const std::vector<std::string> inputs = {p("model"), p("ids.txt")};
  auto check = [&](const std::string& out) { return usage_error([&] { check_output_file(out, "--x", inputs, "t"); }); };
  EXPECT_NE(check(p("model/model.safetensors")).find("is the input"), std::string::npos);
  EXPECT_NE(check(p("model/../model/config.json")).find("is the input"), std::string::npos);
  EXPECT_NE(check(p("ids.txt")).find("is the input"), std::string::npos);
  fs::create_symlink(p("model/model.safetensors"), p("link"));
  EXPECT_NE(check(p("link")).find("is the input"), std::string::npos);
  fs::create_hard_link(p("model/config.json"), p("hard"));
  EXPECT_NE(check(p("hard")).find("model/config.json"), std::string::npos);
  EXPECT_EQ(check(p("new.bin")), "");  // a fresh file
  std::ofstream(p("old.bin")) << "previous output";
  EXPECT_EQ(check(p("old.bin")), "");  // replacing an earlier output is fine
  EXPECT_NE(check(p("model")).find("is a folder"), std::string::npos);
  EXPECT_NE(check(p("no/such/folder/x")).find("does not exist"), std::string::npos);
}

TEST_F(Paths, OutputFolderHoldingAnInputIsRefused) {
  auto check = [&](const std::string& dir, const std::string& in) {
    return usage_error([&] { check_output_folder(dir, "--out", {in}, "t"); });
  };
  EXPECT_NE(check(p("model"), p("model/config.json")).find("holds the input"), std::string::npos);
  EXPECT_NE(check(root_.string(), p("model/config.json")).find("holds the input"), std::string::npos);
  EXPECT_NE(check(p("model"), p("model")).find("holds the input"), std::string::npos);
  EXPECT_EQ(check(p("model"), p("ids.txt")), "");
  EXPECT_EQ(check(p("fresh"), p("ids.txt")), "");
  EXPECT_NE(check(p("ids.txt"), p("model")).find("is a file"), std::string::npos);
}

TEST_F(Paths, FolderAndFileMixUpsAreNamed) {
  EXPECT_NE(usage_error([&] { read_input_file(p("model"), "--ids-file", "t"); }).find("--ids-file"), std::string::npos);
  EXPECT_NE(usage_error([&] { read_input_file(p("model"), "--ids-file", "t"); }).find("is a folder; expected a file"),
            std::string::npos);
  EXPECT_NE(
      usage_error([&] { require_input_folder(p("ids.txt"), "--model", "t"); }).find("is a file; expected a folder"),
      std::string::npos);
  EXPECT_EQ(read_input_file(p("ids.txt"), "--ids-file", "t"), "1 2 3");
  try {
    read_input_file(p("missing"), "--ids-file", "t");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moe
