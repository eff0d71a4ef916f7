// The PyTorch reference's training loop in C++ (tests/reference/make_train_fixtures.py): AdamW
// steps with warmup + cosine, clipping and the bias update over the fixture batches, each step's
// total loss returned. Shared by the trainer's reference and fine-tuning tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "train/model.h"
#include "train/optimizer.h"

namespace moe::train::testing {

inline const std::string kTrainFixtures = std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/train";

inline BalanceOptions balance_of(const nlohmann::json& b) {
  BalanceOptions bal;
  bal.aux_coef = b.value("aux", 0.0);
  bal.seq_aux_coef = b.value("seq_aux", 0.0);
  bal.z_coef = b.value("z", 0.0);
  bal.bias_rate = b.value("bias_rate", 0.0);
  return bal;
}

// `steps` steps on batches.safetensors with the fixture's optimizer settings; losses of each step.
inline std::vector<double> reference_steps(TrainModel<float>& m, const nlohmann::json& optimizer, int64_t batch,
                                           int64_t seq, size_t steps) {
  AdamWOptions o;
  o.lr = optimizer["lr"];
  o.warmup_steps = optimizer["warmup"];
  o.total_steps = optimizer["total"];
  o.min_lr_ratio = optimizer["min_lr_ratio"];
  o.weight_decay = optimizer["wd"];
  o.grad_clip = optimizer["clip"];
  const SafetensorsFile batches = SafetensorsFile::open(kTrainFixtures + "/batches.safetensors");
  auto tok = batches.view<int32_t>("tokens", DType::kI32);
  auto tgt = batches.view<int32_t>("targets", DType::kI32);
  AdamW opt(m.layout().total);
  std::vector<double> losses;
  for (size_t step = 0; step < steps; ++step) {
    const LossParts l = m.forward(tok.data() + step * batch * seq, tgt.data() + step * batch * seq, batch, seq);
    m.zero_grad();
    m.backward();
    clip_grad_norm(m.grads, o.grad_clip);
    opt.update(m.params, m.grads, m.layout(), o, learning_rate(o, static_cast<int64_t>(step)));
    if (m.balance().bias_rate > 0) m.update_router_bias(m.balance().bias_rate);
    losses.push_back(l.total);
  }
  return losses;
}

}  // namespace moe::train::testing
