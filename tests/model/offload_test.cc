// Experts served from disk (--mem-budget): logits bit-identical to the all-in-memory decoder at every pool
// size, from the smallest (one MoE layer's experts) to all of them, over a prompt and greedy decode steps,
// for safetensors fixtures of several families and a Q8_0 GGUF; budgets too small and layouts that are
// re-laid out at load are errors naming what to do.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "common/random_checkpoint.h"
#include "model/decoder.h"
#include "model/gguf_export.h"
#include "util/error.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& family) {
  return std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/models/" + family;
}

DecoderOptions offload_options(int64_t slots, bool prefetch = true) {
  DecoderOptions o;
  o.pack_cache = PackCacheOptions{.enabled = false, .dir = {}};
  o.offload.mem_budget = uint64_t{1} << 40;
  o.offload.slots = slots;
  o.offload.prefetch = prefetch;
  return o;
}

// Prompt logits and 12 greedy steps' logits of one decoder.
std::vector<float> run(Decoder& d) {
  const int64_t V = d.spec().vocab;
  std::vector<int32_t> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(static_cast<int32_t>((i * 37 + 5) % V));
  KvCache cache = d.make_cache(32);
  std::vector<float> all(size_t(ids.size() * V));
  d.forward(ids.data(), static_cast<int64_t>(ids.size()), cache, all.data());
  std::vector<float> step(all.end() - V, all.end());
  for (int s = 0; s < 12; ++s) {
    const int32_t next = static_cast<int32_t>(std::max_element(step.begin(), step.end()) - step.begin());
    d.forward(&next, 1, cache, step.data());
    all.insert(all.end(), step.begin(), step.end());
  }
  return all;
}

void expect_identical(const std::string& path) {
  DecoderOptions plain;
  plain.pack_cache = PackCacheOptions{.enabled = false, .dir = {}};
  Decoder ref(path, plain);
  const std::vector<float> want = run(ref);
  const ModelSpec& s = ref.spec();
  int64_t moe_layers = 0;
  for (const LayerSpec& l : s.layers) moe_layers += l.is_moe;
  for (int64_t slots : {s.n_expert, s.n_expert + 3, s.n_expert * moe_layers}) {
    for (bool prefetch : {true, false}) {
      Decoder off(path, offload_options(slots, prefetch));
      ASSERT_NE(off.offload(), nullptr);
      const std::vector<float> got = run(off);
      ASSERT_EQ(got.size(), want.size());
      EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
          << path << ": " << slots << " slots, prefetch " << prefetch << " changed the logits";
      const OffloadReport r = off.offload()->report();
      EXPECT_EQ(r.slots, std::min(slots, s.n_expert * moe_layers));
      EXPECT_GT(r.stats.requests, 0);
      EXPECT_GT(r.stats.bytes_read, 0u);
      if (slots == s.n_expert * moe_layers) {
        EXPECT_LE(r.stats.misses, s.n_expert * moe_layers);  // every expert read once at most
      }
    }
  }
}

TEST(Offload, BitIdenticalLogitsAtEveryPoolSize) {
  for (const char* f :
       {"qwen3_moe", "mixtral", "deepseek_v3", "glm4_moe", "ernie4_5_moe", "granitemoeshared", "phimoe", "olmoe"}) {
    SCOPED_TRACE(f);
    expect_identical(fixture(f));
  }
}

TEST(Offload, BitIdenticalFromAQ8Gguf) {
  const fs::path dir = fs::temp_directory_path() / ("moe_offload_gguf_" + std::to_string(getpid()));
  fs::remove_all(dir);
  nlohmann::json c = nlohmann::json::parse(std::ifstream(fixture("qwen3_moe") + "/config.json"));
  c["vocab_size"] = 512;
  c["hidden_size"] = 256;
  c["head_dim"] = 64;
  c["num_attention_heads"] = 4;
  c["num_key_value_heads"] = 2;
  c["intermediate_size"] = 512;
  c["moe_intermediate_size"] = 256;
  c["torch_dtype"] = "float32";
  testing::write_random_checkpoint((dir / "hf").string(), c, 3);
  const std::string gguf = (dir / "m.gguf").string();
  quantize_to_gguf((dir / "hf").string(), gguf, QuantizeOptions{});
  expect_identical(gguf);
  fs::remove_all(dir);
}

// Pre-gating cannot predict random routing: the look-ahead's precision falls below kMinPrecision and
// its reads are withheld (they would only waste disk bandwidth), while outputs stay bit-identical.
TEST(Offload, LookAheadThatMissesStopsReading) {
  const fs::path dir = fs::temp_directory_path() / ("moe_offload_look_" + std::to_string(getpid()));
  fs::remove_all(dir);
  nlohmann::json c = nlohmann::json::parse(std::ifstream(fixture("qwen3_moe") + "/config.json"));
  c["num_experts"] = 64;  // random top-2 of 64: the look-ahead is right about 3% of the time
  c["num_hidden_layers"] = 3;
  c["torch_dtype"] = "float32";
  testing::write_random_checkpoint(dir.string(), c, 5);
  for (bool uniform : {true, false}) {
    DecoderOptions plain;
    plain.pack_cache = PackCacheOptions{.enabled = false, .dir = {}};
    plain.uniform_routing_seed = uniform ? 7 : 0;
    Decoder ref(dir.string(), plain);
    DecoderOptions o = offload_options(64 + 8);
    o.uniform_routing_seed = plain.uniform_routing_seed;
    Decoder off(dir.string(), o);
    const std::vector<float> want = run(ref), got = run(off);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << "uniform " << uniform;
    const OffloadReport r = off.offload()->report();
    const PrefetchLayerStats look = r.prefetch_total();
    EXPECT_EQ(look.predictions, 2 * 13);  // layers 1 and 2, the prompt and 12 steps
    EXPECT_GT(look.predicted, 0);
    if (uniform) {
      EXPECT_LT(look.precision(), ExpertOffload::kMinPrecision);
      EXPECT_GE(look.withheld, look.predictions / 2) << "reads kept being issued for a look-ahead that misses";
    }
    int64_t withheld = 0;
    for (const PrefetchLayerStats& l : r.prefetch) withheld += l.withheld;
    EXPECT_EQ(withheld, look.withheld);
    EXPECT_EQ(r.prefetch[0].predictions, 0);  // nothing looks ahead to the first layer
  }
  fs::remove_all(dir);
}

TEST(Offload, ErrorsNameWhatToDo) {
  DecoderOptions o = offload_options(0);
  o.offload.mem_budget = 4096;  // less than anything
  try {
    Decoder d(fixture("qwen3_moe"), o);
    FAIL() << "a 4 KB budget loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--mem-budget"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("give at least"), std::string::npos) << e.what();
  }
  try {
    Decoder d(fixture("qwen3_moe"), offload_options(3));  // fewer slots than one layer's 8 experts
    FAIL() << "3 slots for 8 experts loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("one MoE layer"), std::string::npos) << e.what();
  }
  try {
    Decoder d(fixture("dbrx"), offload_options(0));  // w2 is transposed at load: not a file view
    FAIL() << "DBRX experts offloaded from safetensors";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("moe quantize"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moe
