// The training loop end to end on a tiny model: loss goes down, resume reproduces the exact loss
// sequence of an uninterrupted run, a kill in the middle of a checkpoint leaves the previous one
// intact (and resumable), corrupt or mismatched checkpoints are clear errors, metrics and plot.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "runtime/thread_pool.h"
#include "train/checkpoint.h"
#include "train/plot.h"
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

TrainOptions tiny(const std::string& out) {
  TrainOptions o;
  o.model.n_layer = 2;
  o.model.d_model = 16;
  o.model.n_head = 2;
  o.model.n_kv_head = 1;
  o.model.head_dim = 8;
  o.model.n_expert = 4;
  o.model.top_k = 2;
  o.model.d_ff_expert = 16;
  o.model.max_seq = 16;
  o.batch = 4;
  o.seq = 16;
  o.steps = 8;
  o.log_every = 2;
  o.eval_every = 4;
  o.eval_batches = 2;
  o.checkpoint_every = 2;
  o.balance.aux_coef = 0.01;
  o.balance.bias_rate = 0.001;
  o.adamw.warmup_steps = 2;
  o.progress = false;
  o.measure_mfu = false;
  o.out_dir = out;
  return o;
}

std::string tmpdir(const std::string& name) {
  const std::string d = fs::temp_directory_path().string() + "/moe_train_test_" + name + "_" + std::to_string(getpid());
  fs::remove_all(d);
  return d;
}

TEST(Trainer, LossDecreasesAndMetricsAreWritten) {
  const std::string out = tmpdir("metrics");
  TrainOptions o = tiny(out);
  o.steps = 30;
  o.adamw.lr = 1e-2;
  const TextData data = TextData::from_bytes(text(), 0.1, o.seq, "text");
  const TrainResult r = train(o, data);
  ASSERT_EQ(r.losses.size(), 30u);
  EXPECT_LT(r.losses.back(), r.losses.front() - 1.0);
  std::ifstream f(out + "/metrics.jsonl");
  std::string line;
  int n = 0;
  nlohmann::json last;
  while (std::getline(f, line)) last = nlohmann::json::parse(line), ++n;
  EXPECT_EQ(n, 15);
  for (const char* k :
       {"step", "loss", "ce", "aux", "z", "lr", "grad_norm", "tokens_per_s", "mfu", "val_loss", "layers"})
    EXPECT_TRUE(last.contains(k)) << k;
  ASSERT_EQ(last["layers"].size(), 2u);
  EXPECT_EQ(last["layers"][0]["load"].size(), 4u);
  const std::string svg = plot_metrics_svg({{"tiny", out + "/metrics.jsonl"}});
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("polyline"), std::string::npos);
  fs::remove_all(out);
}

TEST(Trainer, DenseLayersHaveNoLoadRowInMetricsOrPlot) {
  // DeepSeek-V3's dense first layers route nothing: no fake "E dead experts" line.
  const nlohmann::json dense = load_summary({}, 0, 0);
  EXPECT_TRUE(dense.value("dense", false));
  EXPECT_TRUE(dense["load"].empty());
  EXPECT_FALSE(dense.contains("dead"));
  const nlohmann::json moe_layer = load_summary({3, 1, 0, 4}, 0, 8);
  EXPECT_FALSE(moe_layer.contains("dense"));
  EXPECT_EQ(moe_layer["dead"], 1);
  const std::string path = tmpdir("dense_plot") + ".jsonl";
  nlohmann::json line = {{"step", 1}, {"ce", 2.0}, {"layers", {dense, moe_layer}}};
  std::ofstream(path) << line.dump() << "\n";
  const std::string svg = plot_metrics_svg({{"v3", path}});
  EXPECT_NE(svg.find("layer 0 (dense)"), std::string::npos);
  EXPECT_NE(svg.find("layer 1<"), std::string::npos);
  fs::remove(path);
}

void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error, expected one mentioning: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Trainer, ResumeReproducesTheUninterruptedLosses) {
  const TextData data = TextData::from_bytes(text(), 0.1, 16, "text");
  const std::string a = tmpdir("full"), b = tmpdir("resumed");
  const TrainResult full = train(tiny(a), data);
  TrainOptions first = tiny(b);
  first.stop_after = 3;  // not a checkpoint multiple: stop_after checkpoints itself
  const TrainResult part1 = train(first, data);
  TrainOptions second = tiny(b);
  second.resume = true;
  const TrainResult part2 = train(second, data);
  ASSERT_EQ(part1.losses.size() + part2.losses.size(), full.losses.size());
  for (size_t i = 0; i < part1.losses.size(); ++i) EXPECT_EQ(part1.losses[i], full.losses[i]) << i;
  for (size_t i = 0; i < part2.losses.size(); ++i) EXPECT_EQ(part2.losses[i], full.losses[i + 3]) << i + 3;
  EXPECT_EQ(part2.final_val_loss, full.final_val_loss);
  fs::remove_all(a);
  fs::remove_all(b);
}

// --resume with a larger --steps extends the run: the steps before the resume point are the
// original run's, the cosine schedule from there on is the one of the new --steps.
TEST(Trainer, ResumeWithMoreStepsExtendsTheSchedule) {
  const TextData data = TextData::from_bytes(text(), 0.1, 16, "text");
  const std::string b = tmpdir("extended");
  TrainOptions first = tiny(b);
  first.log_every = 1;
  const TrainResult part1 = train(first, data);
  TrainOptions more = first;
  more.steps = 12;
  more.resume = true;
  const TrainResult part2 = train(more, data);
  ASSERT_EQ(part1.losses.size(), 8u);
  ASSERT_EQ(part2.losses.size(), 4u);
  EXPECT_EQ(resolve_checkpoint(b), b + "/step-00000012");
  std::ifstream f(b + "/metrics.jsonl");
  std::string line;
  std::vector<nlohmann::json> lines;
  while (std::getline(f, line)) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 12u);
  AdamWOptions old_schedule = first.adamw, new_schedule = first.adamw;
  old_schedule.total_steps = 8;
  new_schedule.total_steps = 12;
  for (int64_t s = 0; s < 12; ++s) {
    EXPECT_EQ(lines[s]["step"], s + 1);
    EXPECT_DOUBLE_EQ(lines[s]["lr"].get<double>(), learning_rate(s < 8 ? old_schedule : new_schedule, s)) << s;
  }
  TrainOptions shorter = more;
  shorter.steps = 10;
  expect_error([&] { train(shorter, data); }, "--steps: the run used 12, this asks 10");
  fs::remove_all(b);
}

TEST(Trainer, KillDuringCheckpointLeavesThePreviousOne) {
  const TextData data = TextData::from_bytes(text(), 0.1, 16, "text");
  const std::string a = tmpdir("ref"), b = tmpdir("killed");
  const TrainResult full = train(tiny(a), data);
  // `moe train` dies (as if killed) after writing part of the step-4 checkpoint.
  const std::string data_file = a + ".txt";
  std::ofstream(data_file) << text();
  const std::string cmd =
      "MOE_TRAIN_CRASH_IN_CHECKPOINT=4 " + std::string(MOE_BINARY) + " --threads " + std::to_string(num_threads()) +
      " train --data " +  // as this process: the same bits

      data_file +
      " --val-fraction 0.1 --layers 2 --d-model 16"
      " --heads 2 --kv-heads 1 --head-dim 8 --experts 4 --experts-per-token 2 --d-ff 16 --max-seq 16"
      " --batch 4 --seq 16 --steps 8 --log-every 2 --eval-every 4 --eval-batches 2"
      " --checkpoint-every 2 --aux-loss 0.01 --bias-update 0.001 --warmup 2 --no-progress"
      " --no-mfu --out " +
      b + " > /dev/null 2>&1";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 86) << "the crash hook did not fire: " << cmd;
  fs::remove(data_file);
  EXPECT_EQ(resolve_checkpoint(b), b + "/step-00000002");
  TrainOptions again = tiny(b);
  again.resume = true;
  const TrainResult rest = train(again, data);
  ASSERT_EQ(rest.losses.size(), 6u);
  for (size_t i = 0; i < rest.losses.size(); ++i) EXPECT_EQ(rest.losses[i], full.losses[i + 2]) << i + 2;
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(Trainer, CorruptOrMismatchedCheckpointIsAClearError) {
  const TextData data = TextData::from_bytes(text(), 0.1, 16, "text");
  const std::string out = tmpdir("corrupt");
  TrainOptions o = tiny(out);
  o.steps = 2;
  train(o, data);
  const std::string dir = resolve_checkpoint(out);
  TrainOptions r = tiny(out);
  r.steps = 2;
  r.resume = true;
  r.batch = 8;
  expect_error([&] { train(r, data); }, "--batch: the run used 4, this asks 8");
  r.batch = 4;
  r.model.d_model = 32;
  expect_error([&] { train(r, data); }, "--d-model (hidden_size): the run used 16, this asks 32");
  r.model.d_model = 16;
  fs::resize_file(dir + "/optimizer.safetensors", 100);
  expect_error([&] { train(r, data); }, "optimizer.safetensors");
  std::ofstream(dir + "/config.json") << "{ not json";
  expect_error([&] { train(r, data); }, "config.json");
  fs::remove_all(dir);
  expect_error([&] { train(r, data); }, out + "/latest names step-00000002, but");
  fs::remove_all(out);
}

TEST(Trainer, HfCheckpointHasTheQwen3MoeNames) {
  const TextData data = TextData::from_bytes(text(), 0.1, 16, "text");
  const std::string out = tmpdir("hf");
  TrainOptions o = tiny(out);
  o.steps = 1;
  train(o, data);
  const std::string dir = resolve_checkpoint(out);
  const SafetensorsFile f = SafetensorsFile::open(dir + "/model.safetensors");
  for (const char* n :
       {"model.embed_tokens.weight", "model.layers.1.self_attn.q_norm.weight", "model.layers.0.mlp.gate.weight",
        "model.layers.1.mlp.experts.3.down_proj.weight", "model.norm.weight", "lm_head.weight"})
    EXPECT_TRUE(f.has(n)) << n;
  EXPECT_EQ(f.info("model.layers.0.mlp.experts.0.down_proj.weight").shape, (std::vector<int64_t>{16, 16}));
  std::ifstream cf(dir + "/config.json");
  const auto cfg = nlohmann::json::parse(cf);
  EXPECT_EQ(cfg["model_type"], "qwen3_moe");
  EXPECT_EQ(cfg["num_experts"], 4);
  fs::remove_all(out);
}

}  // namespace
}  // namespace moe::train
