// `moe train --init DIR` end to end, per family (Qwen3-MoE, OLMoE, Mixtral, DeepSeek-V3): a few steps
// from the fixture checkpoints write a Hugging Face checkpoint whose config.json is the family's, and
// `moe eval` of it equals the trainer's own forward on the same tokens; flags that would be ignored
// beside --init are usage errors.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "moe_process.h"
#include "train/checkpoint.h"

namespace {

namespace fs = std::filesystem;
using moe::testing::MoeResult;

const std::string kFixtures = std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/train/finetune_";

MoeResult moe_cmd(const std::string& args) { return moe::testing::run_moe("--threads 1 " + args, true); }

std::string tmp(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("moe_finetune_cli_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(p);
  return p.string();
}

void check_family(const std::string& family) {
  const std::string out = tmp(family);
  const MoeResult r = moe_cmd("--json train --init " + kFixtures + family +
                              " --steps 3 --batch 2 --seq 16 --aux-loss 0.01 --eval-every 0 --eval-batches 1 "
                              "--no-progress --no-mfu --out " +
                              out);
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string ckpt = moe::train::resolve_checkpoint(out);
  std::ifstream in(ckpt + "/config.json");
  const nlohmann::json cfg = nlohmann::json::parse(in);
  EXPECT_EQ(cfg["model_type"], family);

  // The trainer's forward of the written weights on tokens 1..T against `moe eval` of the folder.
  std::vector<int32_t> ids;
  for (int i = 0; i < 24; ++i) ids.push_back((i * 37 + 11) % 256);
  moe::train::TrainModel<float> m(moe::train::read_checkpoint_config(ckpt), {});
  moe::train::load_hf_weights(ckpt, m);
  const int64_t S = static_cast<int64_t>(ids.size()) - 1;
  const double trainer_ce = m.forward(ids.data(), ids.data() + 1, 1, S).ce;
  std::string list;
  for (int32_t id : ids) {
    if (!list.empty()) list += ',';  // appended piecewise: GCC 12 warns falsely on the operator+ form
    list += std::to_string(id);
  }
  const MoeResult e = moe::testing::run_moe("--threads 1 --json eval --model " + out + " --ids " + list);
  ASSERT_EQ(e.code, 0) << e.out;
  const double eval_ce = nlohmann::json::parse(e.out)["mean_cross_entropy"].get<double>();
  EXPECT_NEAR(eval_ce, trainer_ce, 2e-5 * trainer_ce) << family;
  std::printf("%s: trainer %.7f, moe eval %.7f\n", family.c_str(), trainer_ce, eval_ce);
  fs::remove_all(out);
}

TEST(FineTuneCli, Qwen3MoeCheckpointEvalEqualsTrainerForward) { check_family("qwen3_moe"); }
TEST(FineTuneCli, OlmoeCheckpointEvalEqualsTrainerForward) { check_family("olmoe"); }
TEST(FineTuneCli, MixtralCheckpointEvalEqualsTrainerForward) { check_family("mixtral"); }
TEST(FineTuneCli, DeepseekV3CheckpointEvalEqualsTrainerForward) { check_family("deepseek_v3"); }

TEST(FineTuneCli, ModelFlagsBesideInitAreUsageErrors) {
  const std::string dir = kFixtures + "olmoe";
  MoeResult r = moe_cmd("train --init " + dir + " --experts 8 --steps 1");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--experts does not apply with --init"), std::string::npos) << r.out;
  r = moe_cmd("train --init " + dir + " --config " + dir + "/config.json --steps 1");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--config and --init"), std::string::npos) << r.out;
  r = moe_cmd("train --init /nonexistent/folder --steps 1");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("/nonexistent/folder"), std::string::npos) << r.out;
}

}  // namespace
