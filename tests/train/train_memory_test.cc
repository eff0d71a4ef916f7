// Training memory in closed form: the parameter count equals the built layout's for both
// architectures and their options, and a size that cannot fit names the field that makes it large.
#include "train/train_memory.h"

#include <gtest/gtest.h>

#include <string>

#include "util/error.h"

namespace moe::train {
namespace {

ModelConfig v3(int q_lora, int shared, int first_dense) {
  ModelConfig m;
  m.family = Family::kDeepseekV3;
  m.n_layer = 3;
  m.n_head = 3;
  m.n_kv_head = 3;
  m.q_lora_rank = q_lora;
  m.n_shared_expert = shared;
  m.first_dense = first_dense;
  m.d_ff_dense = 96;
  m.head_dim = m.qk_nope_dim + m.qk_rope_dim;
  return m;
}

TEST(TrainMemory, ParamCountEqualsTheLayout) {
  ModelConfig q;
  q.n_layer = 3;
  q.n_kv_head = 2;
  q.n_expert = 5;
  for (const ModelConfig& c : {ModelConfig{}, q, v3(0, 0, 0), v3(24, 1, 1), v3(0, 2, 3), v3(16, 0, 2)}) {
    EXPECT_EQ(param_count(c), static_cast<long double>(ParamLayout::build(c).total))
        << (c.is_mla() ? "v3 " : "qwen3 ") << c.q_lora_rank << " " << c.n_shared_expert << " " << c.first_dense;
  }
}

std::string error_of(const TrainOptions& o) {
  try {
    check_train_fits_in_memory(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TrainMemory, TooLargeNamesTheField) {
  TrainOptions o;
  EXPECT_EQ(error_of(o), "");  // the default model fits anywhere
  o.model.n_expert = kMaxTrainCount;
  o.model.d_ff_expert = 1 << 14;
  const std::string e = error_of(o);
  EXPECT_NE(e.find("[train] num_experts = 65536 (--experts)"), std::string::npos) << e;
  EXPECT_NE(e.find("this process may use"), std::string::npos) << e;
  o.model.n_layer = kMaxTrainCount;  // 32768x the default's layers beats 8192x its experts
  EXPECT_NE(error_of(o).find("[train] num_hidden_layers = 65536 (--layers)"), std::string::npos) << error_of(o);
  TrainOptions big_batch;
  big_batch.batch = 1 << 20;
  big_batch.seq = 1 << 20;
  EXPECT_NE(error_of(big_batch).find("seq = 1048576 (--seq)"), std::string::npos) << error_of(big_batch);
}

}  // namespace
}  // namespace moe::train
