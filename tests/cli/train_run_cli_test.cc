// A `moe train` output folder used as a model (run, eval, inspect, quantize, bench model|serve -m:
// the checkpoint `latest` names, same results as the step folder), --resume with a larger --steps
// (extends the run) and settings mismatches named by flag, `moe eval --context/--stride` (windows
// checked against evaluations by hand), and `moe plot --json`.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "moe_process.h"

namespace {

namespace fs = std::filesystem;
using moe::testing::MoeResult;

MoeResult moe_cmd(const std::string& args) { return moe::testing::run_moe("--threads 1 " + args, true); }
MoeResult moe_out(const std::string& args) { return moe::testing::run_moe("--threads 1 " + args, false); }

const std::string kTiny =
    " --layers 2 --d-model 16 --heads 2 --kv-heads 1 --head-dim 8 --experts 4 --experts-per-token 2 --d-ff 16 "
    "--max-seq 64"
    " --batch 2 --seq 16 --log-every 1 --eval-every 0 --eval-batches 1 --no-progress --no-mfu";

std::string tmp(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("moe_runcli_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(p);
  return p.string();
}

std::string latest(const std::string& run) {
  std::ifstream in(run + "/latest");
  std::string name;
  std::getline(in, name);
  return name;
}

// One tiny run, trained once for the whole suite.
class TrainedRun : public ::testing::Test {
 protected:
  // A failed training fails every test (an assertion here would only mark them skipped).
  static void SetUpTestSuite() {
    run_ = tmp("run");
    setup_ = moe_cmd("train" + kTiny + " --steps 3 --out " + run_);
    step_ = run_ + "/" + latest(run_);
  }
  void SetUp() override { ASSERT_EQ(setup_.code, 0) << "training the suite's run failed: " << setup_.out; }
  static void TearDownTestSuite() { fs::remove_all(run_); }
  static std::string run_, step_;
  static MoeResult setup_;
};
std::string TrainedRun::run_, TrainedRun::step_;
MoeResult TrainedRun::setup_;

nlohmann::json json_of(const MoeResult& r) {
  EXPECT_EQ(r.code, 0) << r.out;
  return nlohmann::json::parse(r.out);
}

TEST_F(TrainedRun, RunEvalInspectOnTheRunFolderEqualTheStepFolder) {
  EXPECT_EQ(latest(run_), "step-00000003");
  const std::string gen = " --no-ceiling --max-new-tokens 8 --prompt 'In the beginning'";
  auto a = json_of(moe_out("--json run --model " + run_ + gen)),
       b = json_of(moe_out("--json run --model " + step_ + gen));
  EXPECT_EQ(a["generated_ids"], b["generated_ids"]);
  EXPECT_EQ(a["text"], b["text"]);  // byte-level (vocab 256): the prompt is bytes, the text is bytes
  EXPECT_EQ(a["prompt_ids"].size(), 16u);

  const std::string ids = " --ids 73,110,32,116,104,101,32,98,101,103,105,110,110,105,110,103";
  a = json_of(moe_out("--json eval --model " + run_ + ids));
  b = json_of(moe_out("--json eval --model " + step_ + ids));
  EXPECT_EQ(a["model"], step_);
  EXPECT_EQ(a["mean_cross_entropy"], b["mean_cross_entropy"]);

  a = json_of(moe_out("--json inspect " + run_))["models"][0];
  b = json_of(moe_out("--json inspect " + step_))["models"][0];
  a.erase("name");
  b.erase("name");
  EXPECT_EQ(a, b);
  EXPECT_FALSE(a["checkpoint_check"].is_null()) << "the run folder's checkpoint was not cross-checked";
}

TEST_F(TrainedRun, QuantizeAndBenchTakeTheRunFolder) {
  const std::string out = tmp("q") + ".gguf";
  MoeResult r = moe_cmd("quantize --model " + run_ + " --out " + out + " --type Q8_0");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(out));
  fs::remove(out);
  r = moe_out("--json bench model -m " + run_ + " --prompt 4 --decode 2 --repetitions 1");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["weights"], step_);
  r = moe_out("--json bench serve -m " + run_ + " --streams 1,2 --prompt 4 --decode 2");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["model"], step_);
}

TEST_F(TrainedRun, AStaleLatestIsAClearError) {
  const std::string run = tmp("stale");
  fs::create_directories(run);
  fs::copy(step_, run + "/step-00000003");
  std::ofstream(run + "/latest") << "step-00000009\n";
  for (const char* cmd : {"eval --ids 1,2,3 --model ", "run --prompt x --model ", "inspect "}) {
    const MoeResult r = moe_cmd(std::string(cmd) + run);
    EXPECT_NE(r.code, 0) << cmd;
    EXPECT_NE(r.out.find(run + "/latest names step-00000009, but " + run + "/step-00000009 does not exist"),
              std::string::npos)
        << cmd << ": " << r.out;
  }
  std::ofstream(run + "/latest") << "../elsewhere\n";
  MoeResult r = moe_cmd("eval --ids 1,2,3 --model " + run);
  EXPECT_NE(r.out.find("expected the name of a checkpoint folder"), std::string::npos) << r.out;
  fs::remove(run + "/latest");  // a run killed before its first checkpoint
  std::ofstream(run + "/metrics.jsonl") << "";
  r = moe_cmd("eval --ids 1,2,3 --model " + run);
  EXPECT_NE(r.out.find("a training run folder without a checkpoint yet"), std::string::npos) << r.out;
  fs::remove_all(run);
}

TEST(TrainResume, ALargerStepsExtendsTheRunAndMismatchesNameTheFlags) {
  const std::string run = tmp("extend");
  ASSERT_EQ(moe_cmd("train" + kTiny + " --steps 3 --out " + run).code, 0);
  MoeResult r = moe_cmd("train" + kTiny + " --steps 5 --resume --out " + run + " --lr 0.002");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--lr: the run used 0.003, this asks 0.002"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("aux_coef"), std::string::npos) << "internal keys shown: " << r.out;
  r = moe_cmd("train" + kTiny + " --steps 5 --resume --out " + run + " --rope-theta 5000");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--rope-theta (rope_theta): the run used 10000.0, this asks 5000.0"), std::string::npos)
      << r.out;
  r = moe_cmd("train" + kTiny + " --steps 2 --resume --out " + run);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--steps: the run used 3, this asks 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--stop-after"), std::string::npos) << r.out;

  r = moe::testing::run_moe("--threads 1 train" + kTiny + " --steps 5 --resume --out " + run, true);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(latest(run), "step-00000005");
  std::ifstream metrics(run + "/metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) ++lines;
  EXPECT_EQ(lines, 5);
  // The extended run is now a 5-step run: resuming it again needs --steps 5 or more.
  r = moe_cmd("train" + kTiny + " --steps 3 --resume --out " + run);
  EXPECT_NE(r.out.find("--steps: the run used 5, this asks 3"), std::string::npos) << r.out;
  fs::remove_all(run);
}

std::string ids_text(const std::vector<int>& ids, size_t begin, size_t end) {
  std::string s;
  for (size_t i = begin; i < end; ++i) {
    if (!s.empty()) s += ',';
    s += std::to_string(ids[i]);
  }
  return s;
}

TEST_F(TrainedRun, WindowedPerplexityEqualsEvaluationsByHand) {
  std::vector<int> ids;
  const std::string text = "And God said, Let there be light: and there was light. And God saw";
  for (unsigned char c : text) ids.push_back(c);
  const size_t T = ids.size();  // 66
  const std::string all = " --ids " + ids_text(ids, 0, T);
  auto eval = [&](const std::string& args) { return json_of(moe_out("--json eval --model " + run_ + args)); };
  auto sum_of = [&](size_t b, size_t e) {  // the summed cross-entropy of one pass over ids[b, e)
    const auto j = eval(" --ids " + ids_text(ids, b, e));
    return j["mean_cross_entropy"].get<double>() * static_cast<double>(e - b - 1);
  };

  // stride = context: separate chunks, each evaluated on its own.
  auto j = eval(all + " -c 16");
  double want = 0;
  int64_t scored = 0;
  for (size_t b = 0; b < T; b += 16) {
    const size_t e = std::min(T, b + 16);
    if (e - b >= 2) want += sum_of(b, e), scored += static_cast<int64_t>(e - b - 1);
  }
  EXPECT_EQ(j["windows"], 5);
  EXPECT_EQ(j["scored"], scored);
  EXPECT_NEAR(j["mean_cross_entropy"].get<double>() * scored, want, 1e-9 * want);
  EXPECT_NEAR(j["perplexity"].get<double>(), std::exp(want / scored), 1e-9 * std::exp(want / scored));
  EXPECT_FALSE(j.contains("cross_entropy")) << "per-token losses without --per-token";

  // Overlapping windows (context 16, stride 6): each scores the predictions after the previous end.
  j = eval(all + " --context 16 --stride 6 --per-token");
  want = 0;
  size_t prev_end = 0, windows = 0;
  for (size_t b = 0; b < T; b += 6) {
    const size_t e = std::min(T, b + 16), first = std::max(prev_end, b + 1);
    const auto w = eval(" --per-token --ids " + ids_text(ids, b, e));
    for (size_t t = first; t < e; ++t) want += w["cross_entropy"][t - 1 - b].get<double>();
    ++windows;
    prev_end = e;
    if (e == T) break;
  }
  EXPECT_EQ(j["windows"], windows);
  EXPECT_EQ(j["scored"], static_cast<int64_t>(T - 1));  // every token after the first, once
  EXPECT_EQ(j["cross_entropy"].size(), T - 1);
  EXPECT_NEAR(j["mean_cross_entropy"].get<double>() * static_cast<double>(T - 1), want, 1e-9 * want);

  // A context covering the text is one pass: the same figure as without --context.
  const auto whole = eval(all), one = eval(all + " -c 100");
  EXPECT_EQ(one["windows"], 1);
  EXPECT_EQ(whole["windows"], 1);
  EXPECT_NEAR(one["mean_cross_entropy"].get<double>(), whole["mean_cross_entropy"].get<double>(), 1e-12);
  EXPECT_FALSE(whole.contains("cross_entropy"));

  // Piped: no progress on stderr. Longer than max_position_embeddings (64) in one pass: a note.
  std::string long_ids = ids_text(ids, 0, T);
  long_ids += "," + long_ids;
  MoeResult r = moe_cmd("eval --model " + run_ + " -c 16 --ids " + long_ids);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("window 1/"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("note:"), std::string::npos) << r.out;
  r = moe_cmd("eval --model " + run_ + " --ids " + long_ids);
  EXPECT_NE(r.out.find(std::to_string(2 * T) +
                       " tokens in one pass exceed the model's max_position_embeddings 64; use -c 64"),
            std::string::npos)
      << r.out;
}

TEST_F(TrainedRun, WindowFlagsThatCannotWorkAreUsageErrors) {
  const std::string base = "eval --model " + run_ + " --ids 1,2,3,4,5,6";
  MoeResult r = moe_cmd(base + " -c 4 --logits-out " + tmp("l") + ".f32");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--logits-out"), std::string::npos) << r.out;
  r = moe_cmd(base + " -c 4 --stride 5");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--stride 5 exceeds --context 4"), std::string::npos) << r.out;
  r = moe_cmd(base + " --stride 2");
  EXPECT_EQ(r.code, 2) << r.out;
  r = moe_cmd(base + " -c 1");
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("context 1"), std::string::npos) << r.out;
}

TEST_F(TrainedRun, PlotJsonDescribesTheFilesAndPanels) {
  const std::string svg = tmp("plot") + ".svg";
  const MoeResult r = moe_out("--json plot " + run_ + " --out " + svg);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["files"][0]["path"], svg);
  EXPECT_EQ(j["panels"].size(), 2u);
  EXPECT_EQ(j["panels"][0]["panel"], "loss");
  EXPECT_EQ(j["panels"][1]["panel"], "expert_load");
  EXPECT_EQ(j["panels"][1]["layers"], 2);
  EXPECT_EQ(j["panels"][1]["experts"], 4);
  EXPECT_TRUE(fs::exists(svg));
  fs::remove(svg);
}

}  // namespace
