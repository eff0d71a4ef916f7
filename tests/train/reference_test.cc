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

#include "io/safetensors.h"
#include "train/model.h"
#include "train/optimizer.h"

namespace moe::train {
namespace {

const std::string kDir = std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/train";

nlohmann::json expected(const std::string& file) {
  std::ifstream f(kDir + "/" + file);
  return nlohmann::json::parse(f);
}

// variant "": Qwen3-MoE (expected.json, init.safetensors); "_v3": DeepSeek-V3.
void check_setup(const std::string& name, const std::string& variant = "") {
  const nlohmann::json ex = expected("expected" + variant + ".json");
  const ModelConfig c = ModelConfig::from_hf_json(ex["config"], "expected.json");
  const nlohmann::json& s = ex["setups"][name];
  BalanceOptions bal;
  bal.aux_coef = s["balance"].value("aux", 0.0);
  bal.seq_aux_coef = s["balance"].value("seq_aux", 0.0);
  bal.z_coef = s["balance"].value("z", 0.0);
  bal.bias_rate = s["balance"].value("bias_rate", 0.0);
  AdamWOptions o;
  o.lr = ex["optimizer"]["lr"];
  o.warmup_steps = ex["optimizer"]["warmup"];
  o.total_steps = ex["optimizer"]["total"];
  o.min_lr_ratio = ex["optimizer"]["min_lr_ratio"];
  o.weight_decay = ex["optimizer"]["wd"];
  o.grad_clip = ex["optimizer"]["clip"];
  TrainModel<float> m(c, bal);
  const SafetensorsFile init = SafetensorsFile::open(kDir + "/init" + variant + ".safetensors");
  for (const auto& t : m.layout().tensors) {
    ASSERT_TRUE(init.has(t.name)) << t.name;
    ASSERT_EQ(init.info(t.name).shape, t.shape) << t.name;
    auto v = init.view<float>(t.name, DType::kF32);
    std::copy(v.begin(), v.end(), m.params.begin() + t.offset);
  }
  const SafetensorsFile batches = SafetensorsFile::open(kDir + "/batches.safetensors");
  auto tok = batches.view<int32_t>("tokens", DType::kI32);
  auto tgt = batches.view<int32_t>("targets", DType::kI32);
  const int64_t B = ex["batch"], S = ex["seq"];
  AdamW opt(m.layout().total);
  const auto& losses = s["losses"];
  double worst = 0;
  for (size_t step = 0; step < losses.size(); ++step) {
    const LossParts l = m.forward(tok.data() + step * B * S, tgt.data() + step * B * S, B, S);
    m.zero_grad();
    m.backward();
    clip_grad_norm(m.grads, o.grad_clip);
    opt.update(m.params, m.grads, m.layout(), o, learning_rate(o, static_cast<int64_t>(step)));
    if (bal.bias_rate > 0) m.update_router_bias(bal.bias_rate);
    const double want = losses[step].get<double>();
    EXPECT_NEAR(l.total, want, 1e-4 * std::abs(want)) << name << " step " << step;
    worst = std::max(worst, std::abs(l.total - want) / std::abs(want));
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
