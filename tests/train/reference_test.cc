// The trainer against the PyTorch reference (tests/reference/make_train_fixtures.py): same
// initial weights, same batches, 10 AdamW steps (warmup + cosine, clipping, weight decay); the
// losses must match within 1e-4 relative, for aux + z-loss balancing and for the bias update,
// for the Qwen3-MoE layout and the DeepSeek-V3 variant (MLA, sigmoid router, shared experts).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "train/reference_steps.h"

namespace moe::train {
namespace {

using testing::kTrainFixtures;

nlohmann::json expected(const std::string& file) {
  std::ifstream f(kTrainFixtures + "/" + file);
  return nlohmann::json::parse(f);
}

// variant "": Qwen3-MoE (expected.json, init.safetensors); "_v3": DeepSeek-V3.
void check_setup(const std::string& name, const std::string& variant = "") {
  const nlohmann::json ex = expected("expected" + variant + ".json");
  const ModelConfig c = ModelConfig::from_hf_json(ex["config"], "expected.json");
  const nlohmann::json& s = ex["setups"][name];
  TrainModel<float> m(c, testing::balance_of(s["balance"]));
  const SafetensorsFile init = SafetensorsFile::open(kTrainFixtures + "/init" + variant + ".safetensors");
  for (const auto& t : m.layout().tensors) {
    ASSERT_TRUE(init.has(t.name)) << t.name;
    ASSERT_EQ(init.info(t.name).shape, t.shape) << t.name;
    auto v = init.view<float>(t.name, DType::kF32);
    std::copy(v.begin(), v.end(), m.params.begin() + t.offset);
  }
  const auto& losses = s["losses"];
  const std::vector<double> got = testing::reference_steps(m, ex["optimizer"], ex["batch"], ex["seq"], losses.size());
  double worst = 0;
  for (size_t step = 0; step < losses.size(); ++step) {
    const double want = losses[step].get<double>();
    EXPECT_NEAR(got[step], want, 1e-4 * std::abs(want)) << name << " step " << step;
    worst = std::max(worst, std::abs(got[step] - want) / std::abs(want));
  }
  std::printf("%s%s: largest relative loss difference over %zu steps %.2e\n", name.c_str(), variant.c_str(),
              losses.size(), worst);
}

TEST(PyTorchReference, TenAdamWStepsAuxAndZLoss) { check_setup("aux"); }
TEST(PyTorchReference, TenAdamWStepsBiasUpdate) { check_setup("bias"); }
TEST(PyTorchReference, DeepseekV3TenAdamWStepsAuxSeqAuxAndZLoss) { check_setup("aux", "_v3"); }
TEST(PyTorchReference, DeepseekV3TenAdamWStepsBiasUpdate) { check_setup("bias", "_v3"); }

}  // namespace
}  // namespace moe::train
