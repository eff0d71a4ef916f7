// Fine-tuning (`moe train --init DIR`): the Hugging Face checkpoint folders of four families
// (tests/reference/fixtures/train/finetune_<family>/: config.json + bfloat16 model.safetensors) load
// through the trainer's --init path, and 5 AdamW steps from them match the PyTorch reference's losses
// (make_train_fixtures.py) within 1e-4 relative; a checkpoint that does not match its config is an
// error naming the file and the tensor.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "train/checkpoint.h"
#include "train/reference_steps.h"
#include "util/error.h"

namespace moe::train {
namespace {

namespace fs = std::filesystem;
using testing::kTrainFixtures;

nlohmann::json finetune_expected() {
  std::ifstream f(kTrainFixtures + "/finetune_expected.json");
  return nlohmann::json::parse(f);
}

void check_family(const std::string& family, Family want) {
  const nlohmann::json ex = finetune_expected();
  const std::string dir = kTrainFixtures + "/finetune_" + family;
  std::vector<std::string> notes;
  const ModelConfig c = read_init_config(dir, &notes);
  EXPECT_EQ(c.family, want);
  EXPECT_TRUE(notes.empty()) << notes.front();
  TrainModel<float> m(c, testing::balance_of(ex["balance"]));
  m.init_params(99);  // overwritten: every parameter comes from the checkpoint
  load_hf_weights(dir, m);
  const auto& losses = ex["families"][family];
  const std::vector<double> got = testing::reference_steps(m, ex["optimizer"], ex["batch"], ex["seq"], losses.size());
  for (size_t i = 0; i < losses.size(); ++i) {
    const double w = losses[i].get<double>();
    EXPECT_NEAR(got[i], w, 1e-4 * std::abs(w)) << family << " step " << i;
  }
}

TEST(FineTune, Qwen3MoeFromCheckpointMatchesPyTorch) { check_family("qwen3_moe", Family::kQwen3Moe); }
TEST(FineTune, OlmoeFromCheckpointMatchesPyTorch) { check_family("olmoe", Family::kOlmoe); }
TEST(FineTune, MixtralFromCheckpointMatchesPyTorch) { check_family("mixtral", Family::kMixtral); }
TEST(FineTune, DeepseekV3FromCheckpointMatchesPyTorch) { check_family("deepseek_v3", Family::kDeepseekV3); }

// A copy of a fixture folder with its config.json edited.
std::string edited_copy(const std::string& family, const std::string& key, const nlohmann::json& value) {
  const fs::path dir = fs::temp_directory_path() / ("moe_finetune_" + family + "_" + key);
  fs::remove_all(dir);
  fs::copy(kTrainFixtures + "/finetune_" + family, dir);
  std::ifstream in(dir / "config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  j[key] = value;
  std::ofstream(dir / "config.json") << j.dump(1);
  return dir.string();
}

void expect_load_error(const std::string& dir, const std::vector<std::string>& needles) {
  try {
    TrainModel<float> m(read_init_config(dir, nullptr), BalanceOptions{});
    load_hf_weights(dir, m);
    ADD_FAILURE() << "loaded " << dir;
  } catch (const Error& e) {
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(FineTune, MismatchedCheckpointsAreErrorsNamingTheTensor) {
  // More layers than the file holds: the first missing tensor is named.
  expect_load_error(edited_copy("mixtral", "num_hidden_layers", 2),
                    {"model.layers.1.input_layernorm.weight", "missing"});
  // Fewer layers: the file holds tensors the model has no place for (not taken for MTP layers).
  expect_load_error(edited_copy("deepseek_v3", "num_hidden_layers", 1), {"no place", "model.layers.1."});
  // More experts: the router's shape is wrong.
  expect_load_error(edited_copy("olmoe", "num_experts", 5), {"mlp.gate.weight", "[4,32]", "[5,32]"});
  // A wider expert: the shape is wrong.
  expect_load_error(edited_copy("qwen3_moe", "moe_intermediate_size", 16), {"shape", "[16,32]"});
  // What the trainer does not build is refused by name before any weight is read.
  expect_load_error(edited_copy("qwen3_moe", "attention_bias", true), {"attention_bias"});
  expect_load_error(edited_copy("mixtral", "sliding_window", 4), {"sliding_window"});
}

}  // namespace
}  // namespace moe::train
