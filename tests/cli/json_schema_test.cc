// docs/CLI.md is the contract of every `--json` output: one object on stdout, indented, with the
// top-level keys the page lists for the command, units in the names, counts as integers and null
// (not 0.0) for what was not measured. Each command below runs once and is held to the page.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "cli/moe_process.h"

namespace {

using moe::testing::run_moe;
using nlohmann::ordered_json;

std::string fixture(const char* name) { return std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/models/" + name; }

// "### `moe X`" heading -> the keys of its "Keys: `a`, `b`" line.
std::map<std::string, std::vector<std::string>> documented_keys() {
  std::ifstream in(std::string(MOE_SOURCE_DIR) + "/docs/CLI.md");
  std::map<std::string, std::vector<std::string>> out;
  std::string line, heading;
  const std::regex head(R"(^### `moe ([^`]+)`\s*$)"), key("`([a-z0-9_]+)`");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_match(line, m, head)) heading = m[1];
    if (line.rfind("Keys: ", 0) != 0 || heading.empty()) continue;
    std::vector<std::string>& keys = out[heading];
    for (std::sregex_iterator it(line.begin(), line.end(), key), end; it != end; ++it) keys.push_back((*it)[1]);
  }
  return out;
}

// The documented command -> the arguments that run it cheaply on the test fixtures.
std::map<std::string, std::string> invocations(const std::string& tmp) {
  const std::string model = fixture("qwen3_moe");
  const std::string tok = std::string(MOE_TOKENIZER_FIXTURES) + "/qwen3";
  return {
      {"info", "info"},
      {"inspect", "inspect " + model},
      {"inspect --list", "inspect --list"},
      {"bench ceilings", "bench ceilings -r 1 --stream-mib 8 --sgemm-n 64"},
      {"bench layer",
       "bench layer --d-model 64 --d-ff 32 --experts 8 --experts-per-token 2 --shared-experts 0 --dtype f32 --tokens 1 "
       "-r 1 --max-weight-gib 0.05 --no-dense"},
      {"bench model", "bench model -m " + model + " -p 4 -n 2 -r 1"},
      {"bench serve", "bench serve -m " + model + " --streams 1 -p 4 -n 2 -r 1"},
      {"run", "run -m " + model + " --prompt-ids 1,2,3 -n 3 --no-ceiling"},
      {"eval", "eval -m " + model + " --ids 1,2,3,4,5,6 -c 4 --stride 2"},
      {"plot", "plot " + tmp + "/run -o " + tmp + "/plot.svg"},
      {"tokenize", "tokenize --tokenizer " + tok + " --text 'Hello, world'"},
      {"detokenize", "detokenize --tokenizer " + tok + " --ids 9707,11,1879"},
      {"train",
       "train --layers 1 --d-model 16 --heads 2 --kv-heads 1 --head-dim 8 --experts 4 --experts-per-token 2 --d-ff 16 "
       "--max-seq 16 --seq 16 --batch 2 --steps 2 --eval-batches 1 --no-progress --no-mfu"},
      {"quantize", "quantize -m " + model + " -o " + tmp + "/q.gguf --type q8_0 --no-progress"},
  };
}

// Units belong at the end of a name, spelled one way (docs/CLI.md "Names").
bool bad_unit_name(const std::string& key) {
  static const std::regex bad(R"((gbps|gflops|seconds|per_second|percent|_gb$|_mb$))");
  return std::regex_search(key, bad);
}

// Counts are integers: n_*, *_params, *_bytes, *_tokens, tokens.
bool is_count_name(const std::string& key) {
  static const std::regex count(R"(^(n_[a-z0-9_]+|[a-z0-9_]*_params|[a-z0-9_]*_bytes|[a-z0-9_]*_tokens|tokens)$)");
  return std::regex_match(key, count);
}

void check_tree(const ordered_json& j, const std::string& path, std::vector<std::string>& problems) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      if (bad_unit_name(k)) problems.push_back(path + "." + k + ": unit spelled against docs/CLI.md");
      if (is_count_name(k) && !(v.is_number_integer() || v.is_null() || v.is_array() || v.is_object()))
        problems.push_back(path + "." + k + ": a count that is not an integer: " + v.dump());
      check_tree(v, path + "." + k, problems);
    }
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) check_tree(j[i], path + "[" + std::to_string(i) + "]", problems);
  } else if (j.is_number_float() && !std::isfinite(j.get<double>())) {
    problems.push_back(path + ": not finite");
  }
}

class JsonSchema : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = std::filesystem::temp_directory_path() / ("moe_json_schema_" + std::to_string(::getpid()));
    std::filesystem::create_directories(tmp_);
  }
  void TearDown() override { std::filesystem::remove_all(tmp_); }
  std::filesystem::path tmp_;
};

TEST_F(JsonSchema, EveryDocumentedCommandPrintsItsKeys) {
  const auto docs = documented_keys();
  const auto runs = invocations(tmp_.string());
  // `moe plot` draws a training run: a two-step one.
  ASSERT_EQ(run_moe("--threads 1 " + runs.at("train") + " -o " + tmp_.string() + "/run").code, 0);
  ASSERT_GE(docs.size(), 10u) << "docs/CLI.md lost its \"Keys:\" lines";
  for (const auto& [command, args] : runs)
    EXPECT_TRUE(docs.count(command)) << "docs/CLI.md documents no keys for `moe " << command << "`";
  for (const auto& [command, keys] : docs) {
    SCOPED_TRACE("moe " + command);
    ASSERT_TRUE(runs.count(command)) << "no invocation for the documented `moe " << command << "`";
    const auto r = run_moe("--threads 2 " + runs.at(command) + " --json");
    ASSERT_EQ(r.code, 0) << r.out;
    ASSERT_GE(r.out.size(), 4u);
    EXPECT_EQ(r.out.substr(0, 4), "{\n  ") << "one indented object";
    EXPECT_EQ(r.out.back(), '\n');
    ordered_json j;
    ASSERT_NO_THROW(j = ordered_json::parse(r.out)) << r.out;  // one value, nothing after it
    ASSERT_TRUE(j.is_object());
    std::vector<std::string> got;
    for (const auto& [k, v] : j.items()) got.push_back(k);
    EXPECT_EQ(got, keys) << "the top-level keys differ from docs/CLI.md";
    std::vector<std::string> problems;
    check_tree(j, "", problems);
    for (const std::string& p : problems) ADD_FAILURE() << p;
  }
}

TEST_F(JsonSchema, NotMeasuredIsNull) {
  auto r = run_moe("run -m " + fixture("qwen3_moe") + " --prompt-ids 1,2,3 -n 3 --no-ceiling --json");
  ASSERT_EQ(r.code, 0) << r.out;
  ordered_json j = ordered_json::parse(r.out);
  EXPECT_TRUE(j["read_ceiling_gb_per_s"].is_null());
  EXPECT_TRUE(j["roofline_fraction"].is_null());
  EXPECT_EQ(j["roofline_fraction_note"], "no read ceiling measured");
  // Nothing decoded: no decode rate, no bytes per decode token.
  r = run_moe("run -m " + fixture("qwen3_moe") + " --prompt-ids 1,2,3 -n 1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  j = ordered_json::parse(r.out);
  EXPECT_TRUE(j["decode_tokens_per_s"].is_null()) << j["decode_tokens_per_s"];
  EXPECT_TRUE(j["weight_bytes_per_decode_token"].is_null());
  EXPECT_TRUE(j["prefill_tokens_per_s"].is_number());
  EXPECT_TRUE(j["roofline_fraction"].is_null());
  EXPECT_EQ(j["roofline_fraction_note"], "no decode step");
}

TEST_F(JsonSchema, CacheResidentDecodeHasNoDramFraction) {
  // The fixture's decode step touches a few hundred KB: the cores' own L2 caches hold it, so the
  // fraction of the DRAM read ceiling is null and the note says why (never a silent 117%).
  const auto r = run_moe("bench model -m " + fixture("qwen3_moe") + " -p 4 -n 4 -r 1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const ordered_json j = ordered_json::parse(r.out);
  EXPECT_TRUE(j["decode_fraction_of_bandwidth_floor"].is_null());
  EXPECT_NE(j["decode_fraction_of_bandwidth_floor_note"].get<std::string>().find("last-level cache"),
            std::string::npos);
  const auto text = run_moe("bench model -m " + fixture("qwen3_moe") + " -p 4 -n 4 -r 1");
  EXPECT_NE(text.out.find("fit in the"), std::string::npos) << text.out;
}

TEST_F(JsonSchema, BenchModelCountsWhatThePrefillComputedAndTheCacheHeld) {
  // The prefill computes the LM head at the last position of its pass only: the FLOPs it reports are the
  // accounting's prompt FLOPs (logits at every position) less the head on the other 3 positions. The cache it
  // held after the run is the accounting's KV figure at that length (an f32 cache: a float32 checkpoint).
  const auto r = run_moe("bench model -m " + fixture("qwen3_moe") + " -p 4 -n 2 -r 1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const ordered_json j = ordered_json::parse(r.out);
  const auto c = run_moe("inspect " + fixture("qwen3_moe") + " --context 4 --json");
  ASSERT_EQ(c.code, 0) << c.out;
  const ordered_json cost = ordered_json::parse(c.out)["models"][0]["cost"];
  const double head = 2.0 * 256 * 48;  // vocab x hidden, untied
  EXPECT_EQ(j["prefill_flops_executed"].get<double>(), cost["prefill_flops"].get<double>() - 3 * head);
  const int64_t held = j["kv_cache_tokens"].get<int64_t>();
  EXPECT_GE(held, 4);
  EXPECT_EQ(j["kv_cache_type"], "F32");
  const auto k = run_moe("inspect " + fixture("qwen3_moe") + " --context " + std::to_string(held) + " --json");
  const ordered_json kv = ordered_json::parse(k.out)["models"][0]["kv_cache"];
  EXPECT_EQ(j["kv_cache_bytes"].get<double>(), j["kv_cache_bytes_accounting"].get<double>());
  EXPECT_EQ(j["kv_cache_bytes_accounting"].get<double>(), 2 * kv["bytes_at_context"].get<double>()) << kv.dump();
  // --no-warmup: every run timed (long prompts); the text says so.
  const auto nw = run_moe("bench model -m " + fixture("qwen3_moe") + " -p 4 -n 2 -r 1 --no-warmup");
  ASSERT_EQ(nw.code, 0) << nw.out;
  EXPECT_NE(nw.out.find("medians of 1 runs, no warm-up"), std::string::npos) << nw.out;
}

TEST_F(JsonSchema, InspectIsOneShapeForOneAndSeveralModels) {
  const auto one = run_moe("inspect mixtral-8x7b --json");
  const auto two = run_moe("inspect mixtral-8x7b qwen3-30b-a3b --json");
  ASSERT_EQ(one.code, 0);
  ASSERT_EQ(two.code, 0);
  const ordered_json a = ordered_json::parse(one.out), b = ordered_json::parse(two.out);
  ASSERT_EQ(a["models"].size(), 1u);
  ASSERT_EQ(b["models"].size(), 2u);
  EXPECT_EQ(a["models"][0], b["models"][0]);
  EXPECT_TRUE(a["models"][0]["checkpoint_check"].is_null());
  EXPECT_FALSE(a["models"][0]["published"].is_null());
  EXPECT_FALSE(a["models"][0].contains("tensors"));
  // --tensors adds the tensor list to the JSON too.
  const auto t = run_moe("inspect " + fixture("qwen3_moe") + " --tensors --json");
  ASSERT_EQ(t.code, 0);
  const ordered_json tj = ordered_json::parse(t.out)["models"][0];
  ASSERT_TRUE(tj["tensors"].is_array());
  EXPECT_EQ(tj["tensors"].size(), tj["n_tensors"].get<size_t>());
  EXPECT_TRUE(tj["tensors"][0].contains("shape"));
  EXPECT_TRUE(tj["published"].is_null());
  EXPECT_FALSE(tj["checkpoint_check"].is_null());
}

TEST_F(JsonSchema, StdinAndShortFlags) {
  // `-` reads a config.json from stdin; the same report as the file.
  const std::string cfg = fixture("mixtral") + "/config.json";
  const auto piped = moe::testing::run_shell("cat " + cfg + " | " + MOE_BINARY + " inspect - --json");
  const auto file = run_moe("inspect " + cfg + " --json");
  ASSERT_EQ(piped.code, 0) << piped.out;
  ordered_json a = ordered_json::parse(piped.out)["models"][0], b = ordered_json::parse(file.out)["models"][0];
  a.erase("name");
  b.erase("name");
  EXPECT_EQ(a, b);
  // -f - reads the prompt from stdin; -m -p -n -t are --model --prompt --max-new-tokens --threads.
  const auto piped_prompt = moe::testing::run_shell("printf abc | " + std::string(MOE_BINARY) + " -t 1 run -m " +
                                                    fixture("qwen3_moe") + " -f - -n 2 --no-ceiling --json");
  const auto flag_prompt = run_moe("-t 1 run -m " + fixture("qwen3_moe") + " -p abc -n 2 --no-ceiling --json");
  ASSERT_EQ(piped_prompt.code, 0) << piped_prompt.out;
  ASSERT_EQ(flag_prompt.code, 0) << flag_prompt.out;
  EXPECT_EQ(ordered_json::parse(piped_prompt.out)["prompt_ids"], ordered_json::parse(flag_prompt.out)["prompt_ids"]);
  EXPECT_EQ(ordered_json::parse(piped_prompt.out)["generated_ids"].size(), 2u);
  const auto ev1 = moe::testing::run_shell("echo '1 2 3 4' | " + std::string(MOE_BINARY) + " eval -m " +
                                           fixture("qwen3_moe") + " --ids-file - --json");
  const auto ev2 = run_moe("eval -m " + fixture("qwen3_moe") + " --ids 1,2,3,4 --json");
  ASSERT_EQ(ev1.code, 0) << ev1.out;
  EXPECT_EQ(ordered_json::parse(ev1.out)["perplexity"], ordered_json::parse(ev2.out)["perplexity"]);
}

TEST_F(JsonSchema, TrainWithoutMfuSaysNull) {
  const auto r = run_moe(
      "--threads 1 train --layers 1 --d-model 16 --heads 2 --kv-heads 1 --head-dim 8 --experts 4 "
      "--experts-per-token 2 --d-ff 16 --max-seq 16 --seq 16 --batch 2 --steps 2 --eval-batches 1 --no-progress "
      "--no-mfu --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const ordered_json j = ordered_json::parse(r.out);
  EXPECT_TRUE(j["mfu"].is_null());
  EXPECT_TRUE(j["out"].is_null());
  EXPECT_TRUE(j["final_loss"].is_number());
}

}  // namespace
