// What keeps a training run's files safe: a fresh run refuses a folder holding another run (or
// replaces it with overwrite), temporaries of killed runs are removed at the next start, a NaN or
// infinite loss stops training with the step named and the last good checkpoint kept, and a
// resumed checkpoint's state is validated (step range, finite weights and moments).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "train/checkpoint.h"
#include "train/trainer.h"
#include "util/error.h"

namespace moe::train {
namespace {
namespace fs = std::filesystem;

TrainOptions tiny(const std::string& out) {
  TrainOptions o;
  o.model.n_layer = 1;
  o.model.d_model = 16;
  o.model.n_head = 2;
  o.model.n_kv_head = 1;
  o.model.head_dim = 8;
  o.model.n_expert = 4;
  o.model.top_k = 2;
  o.model.d_ff_expert = 16;
  o.model.max_seq = 16;
  o.batch = 2;
  o.seq = 16;
  o.steps = 6;
  o.checkpoint_every = 2;
  o.eval_batches = 1;
  o.progress = false;
  o.measure_mfu = false;
  o.out_dir = out;
  return o;
}

const TextData& data() {
  static const TextData d = [] {
    std::string s;
    for (int i = 0; i < 200; ++i) s += "Let there be light " + std::to_string(i % 11) + ".\n";
    return TextData::from_bytes(s, 0.1, 16, "text");
  }();
  return d;
}

std::string tmpdir(const std::string& name) {
  const std::string d = fs::temp_directory_path().string() + "/moe_guard_" + name + "_" + std::to_string(getpid());
  fs::remove_all(d);
  return d;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TrainGuard, FreshRunRefusesAnotherRunsFolderUnlessOverwrite) {
  const std::string out = tmpdir("other");
  train(tiny(out), data());
  const std::string e = error_of([&] { train(tiny(out), data()); });
  EXPECT_NE(e.find("holds another run"), std::string::npos) << e;
  EXPECT_NE(e.find("--overwrite"), std::string::npos) << e;
  EXPECT_EQ(resolve_checkpoint(out), out + "/step-00000006");  // untouched
  TrainOptions replace = tiny(out);
  replace.overwrite = true;
  replace.steps = 3;
  replace.checkpoint_every = 0;
  train(replace, data());
  EXPECT_EQ(resolve_checkpoint(out), out + "/step-00000003");
  EXPECT_FALSE(fs::exists(out + "/step-00000006")) << "the old run's checkpoints mixed with the new one's";
  EXPECT_FALSE(fs::exists(out + "/step-00000004"));
  std::ofstream(out + ".file") << "x";
  EXPECT_NE(error_of([&] { train(tiny(out + ".file"), data()); }).find("is a file"), std::string::npos);
  fs::remove(out + ".file");
  fs::remove_all(out);
}

TEST(TrainGuard, TemporariesOfKilledRunsAreRemovedAtStart) {
  const std::string out = tmpdir("stale");
  fs::create_directories(out + "/.tmp-step-00000004-999999999");  // a pid that cannot be running
  std::ofstream(out + "/.tmp-step-00000004-999999999/model.safetensors") << "partial";
  std::ofstream(out + "/metrics.jsonl.tmp.999999999") << "partial";
  std::ofstream(out + "/latest.tmp." + std::to_string(getppid())) << "a live writer's";
  train(tiny(out), data());
  EXPECT_FALSE(fs::exists(out + "/.tmp-step-00000004-999999999"));
  EXPECT_FALSE(fs::exists(out + "/metrics.jsonl.tmp.999999999"));
  EXPECT_TRUE(fs::exists(out + "/latest.tmp." + std::to_string(getppid()))) << "a live process's temporary was removed";
  fs::remove_all(out);
}

TEST(TrainGuard, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  const std::string out = tmpdir("nan");
  setenv("MOE_TRAIN_POISON_STEP", "5", 1);
  const std::string e = error_of([&] { train(tiny(out), data()); });
  unsetenv("MOE_TRAIN_POISON_STEP");
  EXPECT_NE(e.find("step 5: the loss is nan (not finite)"), std::string::npos) << e;
  EXPECT_NE(e.find("step-00000004"), std::string::npos) << e;
  EXPECT_EQ(resolve_checkpoint(out), out + "/step-00000004");
  EXPECT_FALSE(fs::exists(out + "/step-00000006"));
  for (const auto& entry : fs::directory_iterator(out)) {
    EXPECT_EQ(entry.path().filename().string().rfind(".tmp", 0), std::string::npos) << entry.path();
  }
  TrainOptions resume = tiny(out);
  resume.resume = true;
  EXPECT_EQ(train(resume, data()).last_step, 6);  // the kept checkpoint is good
  fs::remove_all(out);
}

// A checkpoint write that fails (here: files capped at 4 KB, as a full disk would refuse) is an
// error and removes its temporary folder; the previous checkpoint stays the latest.
[[noreturn]] void checkpoint_into_a_full_disk(const std::string& out) {
  TrainOptions o = tiny(out);
  o.steps = 4;
  o.stop_after = 2;
  o.checkpoint_every = 0;
  train(o, data());  // step-00000002, written before the cap
  signal(SIGXFSZ, SIG_IGN);
  const rlimit cap{4096, 4096};
  setrlimit(RLIMIT_FSIZE, &cap);
  TrainOptions more = o;
  more.resume = true;
  more.stop_after = 0;
  try {
    train(more, data());
  } catch (const Error& e) {
    if (std::string(e.what()).find("write failed") == std::string::npos) {
      fs::remove_all(out);
      std::exit(5);
    }
    int leftovers = 0;
    for (const auto& f : fs::directory_iterator(out)) leftovers += f.path().filename().string().rfind(".tmp", 0) == 0;
    const bool kept = resolve_checkpoint(out) == out + "/step-00000002";
    fs::remove_all(out);  // the child's own folder (its pid differs from the parent's)
    std::exit(leftovers == 0 && kept ? 0 : 3);
  }
  fs::remove_all(out);
  std::exit(4);
}

TEST(TrainGuard, FailedCheckpointWriteRemovesItsTemporary) {
  const std::string out = tmpdir("full");
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(checkpoint_into_a_full_disk(out), ::testing::ExitedWithCode(0), "");
  fs::remove_all(out);
}

TEST(TrainGuard, ResumedStateIsValidated) {
  const std::string out = tmpdir("state");
  TrainOptions o = tiny(out);
  o.steps = 2;
  train(o, data());
  const std::string dir = resolve_checkpoint(out);
  const std::string state_path = dir + "/trainer_state.json";
  nlohmann::json good;
  std::ifstream(state_path) >> good;
  TrainOptions r = o;
  r.resume = true;
  for (const auto& [field, value, needle] : std::vector<std::tuple<std::string, nlohmann::json, std::string>>{
           {"step", 99, "step: expected 0 to --steps 2, found 99"},
           {"step", -1, "must be equal and >= 0"},
           {"rng", nlohmann::json::array({"1", "2", "x3", "4"}), "rng: expected an unsigned 64-bit integer"},
           {"rng", nlohmann::json::array({"1"}), "rng: expected 4 words"}}) {
    nlohmann::json bad = good;
    bad[field] = value;
    if (field == "step" && value.get<int>() == 99) bad["adam_step"] = 99;
    std::ofstream(state_path) << bad.dump();
    EXPECT_NE(error_of([&] { train(r, data()); }).find(needle), std::string::npos) << field << " " << value;
  }
  std::ofstream(state_path) << good.dump();
  {  // one NaN weight in model.safetensors: the first f32 of the data section
    std::fstream f(dir + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    uint64_t header = 0;
    f.read(reinterpret_cast<char*>(&header), 8);
    const float nan = std::nanf("");
    f.seekp(static_cast<std::streamoff>(8 + header));
    f.write(reinterpret_cast<const char*>(&nan), 4);
  }
  EXPECT_NE(error_of([&] { train(r, data()); }).find("not finite"), std::string::npos);
  fs::remove_all(out);
}

}  // namespace
}  // namespace moe::train
