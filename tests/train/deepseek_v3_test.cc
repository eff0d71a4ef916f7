// `moe train --arch deepseek-v3` end to end: the checkpoint has the exact DeepseekV3ForCausalLM
// names (MLA with q-LoRA, dense first layer, shared experts, the learned
// e_score_correction_bias), `moe eval` (the inference loader) gives the trainer's own loss on
// the same tokens, --resume is bit-identical, and a mismatched model is a clear error.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "train/checkpoint.h"
#include "train/rng.h"
#include "train/trainer.h"
#include "util/error.h"

namespace moe::train {
namespace {
namespace fs = std::filesystem;

std::string text() {
  std::string s;
  for (int i = 0; i < 300; ++i) s += "In the beginning was the word " + std::to_string(i % 37) + ". And it was good.\n";
  return s;
}

std::string tmpdir(const std::string& name) {
  const std::string d = fs::temp_directory_path().string() + "/moe_v3_test_" + name + "_" + std::to_string(getpid());
  fs::remove_all(d);
  return d;
}

// The flags below as TrainOptions (kept in sync with kFlags).
TrainOptions tiny_v3(const std::string& out) {
  TrainOptions o;
  ModelConfig& m = o.model;
  m.family = Family::kDeepseekV3;
  m.n_layer = 3;
  m.first_dense = 1;
  m.d_ff_dense = 24;
  m.d_model = 16;
  m.n_head = 2;
  m.n_kv_head = 2;
  m.q_lora_rank = 8;
  m.kv_lora_rank = 8;
  m.qk_nope_dim = 4;
  m.qk_rope_dim = 4;
  m.v_head_dim = 4;
  m.head_dim = 8;
  m.n_expert = 4;
  m.top_k = 2;
  m.d_ff_expert = 16;
  m.n_shared_expert = 1;
  m.routed_scaling_factor = 2.0;
  m.max_seq = 16;
  o.batch = 4;
  o.seq = 16;
  o.steps = 6;
  o.log_every = 2;
  o.eval_every = 0;
  o.eval_batches = 1;
  o.checkpoint_every = 3;
  o.balance.aux_coef = 0.01;
  o.balance.bias_rate = 0.01;
  o.adamw.warmup_steps = 2;
  o.progress = false;
  o.measure_mfu = false;
  o.out_dir = out;
  return o;
}

const char* kFlags =
    " --arch deepseek-v3 --layers 3 --dense-layers 1 --d-ff-dense 24 --d-model 16 --heads 2 --q-lora-rank 8"
    " --kv-lora-rank 8 --qk-nope-dim 4 --qk-rope-dim 4 --v-head-dim 4 --experts 4 --experts-per-token 2 --d-ff 16"
    " --shared-experts 1 --routed-scaling 2.0 --max-seq 16 --batch 4 --seq 16 --steps 6 --log-every 2"
    " --eval-batches 1 --checkpoint-every 3 --aux-loss 0.01 --bias-update 0.01 --warmup 2 --no-progress --no-mfu";

std::string run(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const int status = pclose(f);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd << "\n" << out;
  return out;
}

TEST(DeepseekV3, TrainThenMoeEvalGivesTheTrainersLoss) {
  const std::string out = tmpdir("e2e"), data_file = out + ".txt";
  std::ofstream(data_file) << text();
  run(std::string(MOE_BINARY) + " --threads 1 train --data " + data_file + " --val-fraction 0.1" + kFlags + " --out " +
      out + " 2>&1");
  const std::string dir = resolve_checkpoint(out);
  EXPECT_EQ(dir, out + "/step-00000006");
  std::ifstream cf(dir + "/config.json");
  const auto cfg = nlohmann::json::parse(cf);
  EXPECT_EQ(cfg["model_type"], "deepseek_v3");
  EXPECT_EQ(cfg["architectures"][0], "DeepseekV3ForCausalLM");
  EXPECT_EQ(cfg["topk_method"], "noaux_tc");
  EXPECT_EQ(cfg["scoring_func"], "sigmoid");
  const SafetensorsFile f = SafetensorsFile::open(dir + "/model.safetensors");
  for (const char* n :
       {"model.layers.0.mlp.gate_proj.weight", "model.layers.0.self_attn.q_a_proj.weight",
        "model.layers.1.self_attn.q_a_layernorm.weight", "model.layers.1.self_attn.q_b_proj.weight",
        "model.layers.1.self_attn.kv_a_proj_with_mqa.weight", "model.layers.1.self_attn.kv_a_layernorm.weight",
        "model.layers.2.self_attn.kv_b_proj.weight", "model.layers.2.self_attn.o_proj.weight",
        "model.layers.1.mlp.gate.weight", "model.layers.2.mlp.experts.3.down_proj.weight",
        "model.layers.1.mlp.shared_experts.up_proj.weight", "lm_head.weight"})
    EXPECT_TRUE(f.has(n)) << n;
  EXPECT_FALSE(f.has("model.layers.0.mlp.gate.weight"));
  EXPECT_EQ(f.info("model.layers.1.self_attn.kv_a_proj_with_mqa.weight").shape, (std::vector<int64_t>{12, 16}));
  EXPECT_EQ(f.info("model.layers.1.self_attn.kv_b_proj.weight").shape, (std::vector<int64_t>{16, 8}));
  // The bias the aux-loss-free update learned is exported (6 steps at rate 0.01: not all zero).
  auto bias = f.view<float>("model.layers.2.mlp.gate.e_score_correction_bias", DType::kF32);
  ASSERT_EQ(bias.size(), 4u);
  double mag = 0;
  for (float b : bias) mag += std::abs(b);
  EXPECT_GT(mag, 0.0);

  // The trainer's own evaluation of one sequence vs `moe eval` (the inference engine's loader).
  const std::string t = text();
  std::vector<int32_t> ids(17), tokens(16), targets(16);
  std::string id_list;
  for (int i = 0; i < 17; ++i) {
    ids[i] = static_cast<unsigned char>(t[100 + i]);
    if (i > 0) id_list += ',';  // piecewise: GCC 12 warns falsely on a + chain here
    id_list += std::to_string(ids[i]);
  }
  std::copy(ids.begin(), ids.end() - 1, tokens.begin());
  std::copy(ids.begin() + 1, ids.end(), targets.begin());
  TrainModel<float> m(read_checkpoint_config(dir), BalanceOptions{});
  load_checkpoint(dir, m, nullptr, nullptr);
  const double trainer_loss = m.eval_loss(tokens.data(), targets.data(), 1, 16);
  const auto j = nlohmann::json::parse(
      run(std::string(MOE_BINARY) + " --threads 1 eval --json --model " + dir + " --ids " + id_list));
  EXPECT_NEAR(j["mean_cross_entropy"].get<double>(), trainer_loss, 1e-4 * trainer_loss) << j.dump();

  // After 6 steps from a 0.02 init the attention is nearly uniform; with larger weights (and a
  // larger selection bias) every part of MLA and the router shapes the loss, so the same
  // comparison also pins down the RoPE layout, the scale and the routing.
  Rng rng(9);
  for (const auto& tensor : m.layout().tensors)
    for (int64_t i = 0; i < tensor.numel; ++i)
      m.params[tensor.offset + i] += static_cast<float>((tensor.shape.size() == 1 ? 0.2 : 0.3) * rng.normal());
  for (auto& layer : m.router_bias)
    for (float& b : layer) b = static_cast<float>(0.2 * rng.normal());
  const std::string big = out + "/big";
  save_hf_model(big, m);
  const double big_loss = m.eval_loss(tokens.data(), targets.data(), 1, 16);
  const auto jb = nlohmann::json::parse(
      run(std::string(MOE_BINARY) + " --threads 1 eval --json --model " + big + " --ids " + id_list));
  EXPECT_NEAR(jb["mean_cross_entropy"].get<double>(), big_loss, 1e-4 * big_loss) << jb.dump();
  std::printf("trainer vs moe eval: trained %.7f vs %.7f, large weights %.7f vs %.7f\n", trainer_loss,
              j["mean_cross_entropy"].get<double>(), big_loss, jb["mean_cross_entropy"].get<double>());
  fs::remove(data_file);
  fs::remove_all(out);
}

TEST(DeepseekV3, ResumeIsBitIdenticalAndMismatchIsAnError) {
  const TextData data = TextData::from_bytes(text(), 0.1, 16, "text");
  const std::string a = tmpdir("full"), b = tmpdir("resumed");
  const TrainResult full = train(tiny_v3(a), data);
  TrainOptions first = tiny_v3(b);
  first.stop_after = 3;
  const TrainResult part1 = train(first, data);
  ASSERT_EQ(part1.losses.size(), 3u);
  TrainOptions again = tiny_v3(b);
  again.resume = true;
  const TrainResult part2 = train(again, data);
  ASSERT_EQ(part2.losses.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(part1.losses[i], full.losses[i]) << i;
    EXPECT_EQ(part2.losses[i], full.losses[i + 3]) << i + 3;
  }
  EXPECT_EQ(part2.final_val_loss, full.final_val_loss);
  TrainOptions other = tiny_v3(a);
  other.resume = true;
  other.model.n_shared_expert = 2;
  try {
    train(other, data);
    ADD_FAILURE() << "resuming with a different model did not fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("different model"), std::string::npos) << e.what();
  }
  other.model.n_shared_expert = 1;
  other.model.family = Family::kQwen3Moe;
  EXPECT_THROW(train(other, data), Error);
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(DeepseekV3, ConfigJsonRoundTripsAndRejectsWhatTheTrainerCannotDo) {
  ModelConfig c = tiny_v3("").model;
  EXPECT_EQ(ModelConfig::from_hf_json(c.to_hf_json(), "config.json"), c);
  c.q_lora_rank = 0;
  const nlohmann::json j = c.to_hf_json();
  EXPECT_TRUE(j["q_lora_rank"].is_null());
  EXPECT_EQ(ModelConfig::from_hf_json(j, "config.json"), c);
  for (const auto& [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"tie_word_embeddings", true}, {"scoring_func", "softmax"}, {"rope_scaling", {{"type", "yarn"}}}}) {
    nlohmann::json bad = j;
    bad[key] = value;
    try {
      ModelConfig::from_hf_json(bad, "config.json");
      ADD_FAILURE() << key;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace moe::train
