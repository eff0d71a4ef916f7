// `moe` end to end on its own outputs: an output that is an input (the model's safetensors through a
// symbolic link, the metrics file a plot reads) is refused and the input is left byte for byte;
// `moe train --out` on another run's folder refuses without --resume or --overwrite; a folder
// given where a file is expected, and the reverse, is named.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "moe_process.h"

namespace {

namespace fs = std::filesystem;
using moe::testing::MoeResult;

MoeResult moe_cmd(const std::string& args) { return moe::testing::run_moe(args, true); }

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Outputs : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moe_outputs_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::copy(fs::path(MOE_SOURCE_DIR) / "data/default-model", dir_ / "model", fs::copy_options::recursive);
    model_ = (dir_ / "model").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string model_;
};

TEST_F(Outputs, LogitsOutOntoTheModelIsRefused) {
  const std::string before = slurp(dir_ / "model/model.safetensors");
  fs::create_symlink(dir_ / "model/model.safetensors", dir_ / "logits.bin");
  const MoeResult r = moe_cmd("eval --model " + model_ + " --ids 1,2,3 --logits-out " + (dir_ / "logits.bin").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--logits-out"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("is the input"), std::string::npos) << r.out;
  EXPECT_EQ(slurp(dir_ / "model/model.safetensors"), before);
  const MoeResult cfg = moe_cmd("eval --model " + model_ + " --ids 1,2,3 --logits-out " + model_ + "/config.json");
  EXPECT_EQ(cfg.code, 2) << cfg.out;
  const MoeResult ok = moe_cmd("eval --model " + model_ + " --ids 1,2,3 --logits-out " + (dir_ / "l2.bin").string());
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_EQ(fs::file_size(dir_ / "l2.bin"), 3u * 256 * 4);
}

TEST_F(Outputs, PlotOntoItsMetricsIsRefused) {
  fs::copy(dir_ / "model/training-metrics.jsonl", dir_ / "metrics.jsonl");
  const std::string before = slurp(dir_ / "metrics.jsonl");
  fs::create_hard_link(dir_ / "metrics.jsonl", dir_ / "plot.svg");
  const MoeResult r = moe_cmd("plot " + (dir_ / "metrics.jsonl").string() + " --out " + (dir_ / "plot.svg").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_EQ(slurp(dir_ / "metrics.jsonl"), before);
  const MoeResult d = moe_cmd("plot " + (dir_ / "metrics.jsonl").string() + " --out " + dir_.string());
  EXPECT_EQ(d.code, 2) << d.out;
  EXPECT_NE(d.out.find("is a folder"), std::string::npos) << d.out;
}

TEST_F(Outputs, TrainOutHoldingAnotherRun) {
  const std::string out = (dir_ / "run").string();
  const std::string train =
      "--threads 1 train --layers 1 --d-model 16 --heads 2 --kv-heads 1 --head-dim 8 --experts 4 --experts-per-token 2 "
      "--d-ff 16 "
      "--max-seq 16 --seq 16 --batch 2 --steps 2 --eval-batches 1 --no-progress --no-mfu --data " +
      model_ + "/training-metrics.jsonl --out " + out;
  ASSERT_EQ(moe_cmd(train).code, 0);
  const MoeResult again = moe_cmd(train);
  EXPECT_EQ(again.code, 2) << again.out;
  EXPECT_NE(again.out.find("holds another run"), std::string::npos) << again.out;
  EXPECT_EQ(moe_cmd(train + " --overwrite").code, 0);
  EXPECT_EQ(moe_cmd(train + " --resume").code, 0);  // already at --steps: resumes to the end at once
  const MoeResult inside = moe_cmd("--threads 1 train --steps 1 --no-progress --no-mfu --data " + model_ +
                                   "/training-metrics.jsonl --out " + model_);
  EXPECT_EQ(inside.code, 2) << inside.out;
  EXPECT_NE(inside.out.find("holds the input"), std::string::npos) << inside.out;
}

TEST_F(Outputs, FolderFileMixUpsAreNamed) {
  for (const std::string& args : {"eval --ids-file " + dir_.string(), "eval --text-file " + dir_.string(),
                                  "train --steps 1 --data " + dir_.string(), "train --config " + dir_.string(),
                                  "run --prompt x --model " + model_ + "/config.json"}) {
    const MoeResult r = moe_cmd(args);
    EXPECT_EQ(r.code, 2) << args << ": " << r.out;
    EXPECT_TRUE(r.out.find("is a folder; expected a file") != std::string::npos ||
                r.out.find("is a file; expected a") != std::string::npos)
        << args << ": " << r.out;
  }
  // Inside a model folder: config.json, model.safetensors or tokenizer.json that is a folder is named
  // as such (not "not valid JSON" from an empty read), whichever command reads it.
  const fs::path bad = dir_ / "bad";
  fs::create_directories(bad / "config.json");
  fs::copy_file(dir_ / "model/model.safetensors", bad / "model.safetensors");
  fs::create_directories(dir_ / "bad2/model.safetensors");
  fs::copy_file(dir_ / "model/config.json", dir_ / "bad2/config.json");
  fs::create_directories(dir_ / "bad3/tokenizer.json");
  for (const std::string& args :
       {"inspect " + bad.string(), "eval --ids 1 --model " + bad.string(),
        "eval --ids 1 --model " + (dir_ / "bad2").string(), "inspect " + (dir_ / "bad2").string(),
        "tokenize --text x --tokenizer " + (dir_ / "bad3").string()}) {
    const MoeResult r = moe_cmd(args);
    EXPECT_EQ(r.code, 2) << args << ": " << r.out;
    EXPECT_NE(r.out.find("is a folder; expected a file"), std::string::npos) << args << ": " << r.out;
  }
}

}  // namespace
