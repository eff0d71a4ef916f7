// DeepSeek GGUFs from newer converters store MLA's kv_b_proj split per head into attn_k_b [H, r, nope] and
// attn_v_b [H, v, r]. The deepseek_v3 fixture goes through `moe quantize --type F32` (kv_b whole), then the
// file is rewritten with every attn_kv_b split that way: `moe eval` gives the same logits on both (the
// loader folds the halves back, exactly in f32), and `moe inspect` counts the split file's tensors as it
// stores them (the same parameters and bytes, no tensor missing).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/gguf_test_configs.h"
#include "cli/moe_process.h"
#include "io/gguf.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The split halves of one kv_b [H * (nope + v), r] (f32): k_b[h][c][i] = kv[h * (nope + v) + i][c],
// v_b[h][j][c] = kv[h * (nope + v) + nope + j][c].
void split_kv_b(const float* kv, int64_t H, int64_t r, int64_t nope, int64_t v, std::vector<float>* k_b,
                std::vector<float>* v_b) {
  k_b->assign(size_t(H * r * nope), 0.0f);
  v_b->assign(size_t(H * v * r), 0.0f);
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t i = 0; i < nope; ++i)
      for (int64_t c = 0; c < r; ++c) (*k_b)[size_t((h * r + c) * nope + i)] = kv[(h * (nope + v) + i) * r + c];
    for (int64_t j = 0; j < v; ++j)
      for (int64_t c = 0; c < r; ++c) (*v_b)[size_t((h * v + j) * r + c)] = kv[(h * (nope + v) + nope + j) * r + c];
  }
}

void write_split(const std::string& whole, const std::string& split, const json& config) {
  const int64_t H = config["num_attention_heads"], r = config["kv_lora_rank"];
  const int64_t nope = config["qk_nope_head_dim"], v = config["v_head_dim"];
  const GgufFile src = GgufFile::open(whole);
  GgufWriter w;
  for (const std::string& k : src.keys())
    if (k != "general.alignment") w.set(k, *src.find(k));
  std::vector<std::vector<uint8_t>> data;  // per written tensor
  for (const GgufTensor& t : src.tensors()) {
    const auto b = src.bytes(t);
    const std::string suffix = "attn_kv_b.weight";
    if (t.name.size() > suffix.size() && t.name.ends_with(suffix)) {
      ASSERT_EQ(t.shape(), (std::vector<int64_t>{H * (nope + v), r})) << t.name;
      std::vector<float> kv(b.size() / 4), k_b, v_b;
      std::memcpy(kv.data(), b.data(), b.size());
      split_kv_b(kv.data(), H, r, nope, v, &k_b, &v_b);
      const std::string blk = t.name.substr(0, t.name.size() - suffix.size());
      w.add_tensor(blk + "attn_k_b.weight", {H, r, nope}, DType::kF32);
      data.emplace_back(reinterpret_cast<const uint8_t*>(k_b.data()),
                        reinterpret_cast<const uint8_t*>(k_b.data() + k_b.size()));
      w.add_tensor(blk + "attn_v_b.weight", {H, v, r}, DType::kF32);
      data.emplace_back(reinterpret_cast<const uint8_t*>(v_b.data()),
                        reinterpret_cast<const uint8_t*>(v_b.data() + v_b.size()));
      continue;
    }
    ASSERT_EQ(ggml_type_info(t.ggml_type)->dtype, DType::kF32) << t.name;
    w.add_tensor(t.name, t.shape(), DType::kF32);
    data.emplace_back(b.begin(), b.end());
  }
  w.write(split, [&](size_t i, std::vector<uint8_t>& out) { out = data[i]; });
}

TEST(GgufSplitKvB, LoadsAsTheWholeKvBAndInspectCountsTheHalves) {
  const fs::path dir = fs::temp_directory_path() / ("moe_gguf_split_kv_b_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string hf = std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/models/deepseek_v3";
  const std::string whole = (dir / "whole.gguf").string(), split = (dir / "split.gguf").string();
  auto q = testing::run_moe("quantize --no-progress --model " + hf + " --out " + whole + " --type F32", true);
  ASSERT_EQ(q.code, 0) << q.out;
  write_split(whole, split, json::parse(std::ifstream(hf + "/config.json")));
  ASSERT_FALSE(HasFailure());
  const std::string ids = "3,17,101,42,9,77,5,63";
  std::vector<float> logits[2];
  int i = 0;
  for (const std::string& f : {whole, split}) {
    const std::string out = (dir / (std::to_string(i) + ".logits")).string();
    auto r = testing::run_moe("eval --model " + f + " --ids " + ids + " --logits-out " + out, true);
    ASSERT_EQ(r.code, 0) << r.out;
    logits[i++] = testing::read_f32(out);
  }
  ASSERT_FALSE(logits[0].empty());
  EXPECT_EQ(logits[0], logits[1]) << "the split halves fold back into the same kv_b";
  json m[2];
  i = 0;
  for (const std::string& f : {whole, split}) {
    auto r = testing::run_moe("--json inspect " + f);
    ASSERT_EQ(r.code, 0) << r.out;
    m[i++] = json::parse(r.out)["models"][0];
  }
  for (const char* key : {"total_params", "activated_params"}) EXPECT_EQ(m[0][key], m[1][key]) << key;
  EXPECT_EQ(m[0]["weights"]["checkpoint_bytes"], m[1]["weights"]["checkpoint_bytes"]);
  for (const char* key : {"params", "bytes"})
    EXPECT_EQ(m[0]["breakdown"]["attention"][key], m[1]["breakdown"]["attention"][key]) << key;
  EXPECT_EQ(m[1]["breakdown"]["attention"]["tensors"].get<int>(),
            m[0]["breakdown"]["attention"]["tensors"].get<int>() + 3)
      << "kv_b_proj counted as its two halves in each of the 3 layers";
  EXPECT_TRUE(m[1]["spec"]["notes"].empty()) << m[1]["spec"]["notes"];
  const auto t = testing::run_moe("--json inspect --tensors " + split);
  ASSERT_EQ(t.code, 0) << t.out;
  int halves = 0;
  const json listed = json::parse(t.out);
  for (const json& e : listed["models"][0]["tensors"])
    halves += e["name"].get<std::string>().ends_with("attn_k_b.gguf") ||
              e["name"].get<std::string>().ends_with("attn_v_b.gguf");
  EXPECT_EQ(halves, 2 * 3) << "two halves per layer of the 3-layer fixture";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moe
