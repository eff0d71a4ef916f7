// The registry against real safetensors headers: the reference fixture checkpoints (written by
// tests/reference/make_model_fixtures.py with Hugging Face names) match tensor for tensor and
// their element count equals the registry total; written checkpoints with a missing, extra,
// mis-shaped or mis-typed tensor list each problem; FP8 scales count as bytes, not parameters.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>

#include "common/temp_folder.h"
#include "io/registry_check.h"
#include "io/safetensors.h"
#include "spec/accounting.h"
#include "spec/model_spec.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

std::string temp_dir(const std::string& name) {
  static const testing::ProcessTempFolder folder("moe_registry_check");
  const fs::path p = folder / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

// Writes every registry tensor (zeros) to dir/model.safetensors, with optional edits.
void write_checkpoint(const std::string& dir, const TensorRegistry& reg,
                      const std::function<void(std::vector<TensorToWrite>&)>& edit = {}) {
  std::vector<TensorToWrite> ts;
  for (const TensorEntry& e : reg.tensors) ts.push_back({e.name, e.dtype, e.shape, {}});
  if (edit) edit(ts);
  size_t max_bytes = 0;
  for (const auto& t : ts) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    max_bytes = std::max(max_bytes, static_cast<size_t>(n) * dtype_size(t.dtype));
  }
  static std::vector<uint8_t> zeros;
  zeros.assign(max_bytes, 0);
  for (auto& t : ts) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    t.bytes = {zeros.data(), static_cast<size_t>(n) * dtype_size(t.dtype)};
  }
  write_safetensors(dir + "/model.safetensors", ts);
}

TEST(RegistryCheck, ReferenceFixturesMatchTheRegistryExactly) {
  const fs::path root = fs::path(MOE_TEST_DATA_DIR) / "reference/fixtures/models";
  ASSERT_TRUE(fs::exists(root));
  int n = 0;
  for (const auto& d : fs::directory_iterator(root)) {
    if (!fs::exists(d.path() / "model.safetensors")) continue;
    SCOPED_TRACE(d.path().string());
    const ModelSpec spec = load_model_spec(d.path().string());
    const RegistryCheck c = check_checkpoint_dir(spec, d.path().string());
    EXPECT_TRUE(c.ok()) << render_check(c);
    const ParamCounts counts = count_params(spec, build_registry(spec));
    // The fixtures are saved without the MTP module, like transformers does.
    EXPECT_EQ(c.header_params, counts.total_params);
    EXPECT_EQ(c.header_elements, counts.total_params);
    EXPECT_EQ(c.registry_params, counts.total_params);
    ++n;
  }
  EXPECT_GE(n, 9);
}

nlohmann::json tiny_v3_fp8() {
  return {{"model_type", "deepseek_v3"},
          {"num_hidden_layers", 2},
          {"hidden_size", 256},
          {"num_attention_heads", 2},
          {"vocab_size", 300},
          {"intermediate_size", 384},
          {"moe_intermediate_size", 128},
          {"n_routed_experts", 4},
          {"n_group", 1},
          {"topk_group", 1},
          {"n_shared_experts", 1},
          {"num_experts_per_tok", 2},
          {"first_k_dense_replace", 1},
          {"q_lora_rank", 192},
          {"kv_lora_rank", 128},
          {"qk_nope_head_dim", 32},
          {"qk_rope_head_dim", 16},
          {"v_head_dim", 32},
          {"topk_method", "noaux_tc"},
          {"scoring_func", "sigmoid"},
          {"num_nextn_predict_layers", 1},
          {"quantization_config", {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"weight_block_size", {128, 128}}}}};
}

TEST(RegistryCheck, Fp8CheckpointScalesAreBytesNotParameters) {
  const ModelSpec spec = parse_model_spec(tiny_v3_fp8(), "tiny_v3");
  const TensorRegistry reg = build_registry(spec);
  const std::string dir = temp_dir("fp8");
  write_checkpoint(dir, reg);
  const RegistryCheck c = check_checkpoint_dir(spec, dir);
  EXPECT_TRUE(c.ok()) << render_check(c);
  EXPECT_TRUE(c.missing_mtp.empty());
  const ParamCounts counts = count_params(spec, reg);
  EXPECT_EQ(c.header_params, counts.total_params_with_mtp);
  EXPECT_EQ(c.header_scale_bytes, counts.quant_scale_bytes);
  EXPECT_GT(c.header_scale_bytes, 0);
  EXPECT_EQ(c.header_bytes, counts.bytes_with_mtp);
  EXPECT_EQ(c.format, WeightFormat::kCheckpoint);
}

TEST(RegistryCheck, ListsMissingUnexpectedWrongShapeAndDtype) {
  nlohmann::json cfg = {{"model_type", "mixtral"},  {"num_hidden_layers", 2},   {"hidden_size", 32},
                        {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"intermediate_size", 64},
                        {"num_local_experts", 4},   {"num_experts_per_tok", 2}, {"vocab_size", 50},
                        {"torch_dtype", "float32"}};
  const ModelSpec spec = parse_model_spec(cfg, "tiny_mixtral");
  const TensorRegistry reg = build_registry(spec);
  const std::string dir = temp_dir("broken");
  write_checkpoint(dir, reg, [](std::vector<TensorToWrite>& ts) {
    std::erase_if(
        ts, [](const TensorToWrite& t) { return t.name == "model.layers.1.block_sparse_moe.experts.3.w2.weight"; });
    for (auto& t : ts) {
      if (t.name == "model.layers.0.self_attn.k_proj.weight") t.shape = {32, 32};
      if (t.name == "model.norm.weight") t.dtype = DType::kBF16;
    }
    ts.push_back({"model.layers.0.mlp.extra.weight", DType::kF32, {4}, {}});
  });
  const RegistryCheck c = check_checkpoint_dir(spec, dir);
  EXPECT_FALSE(c.ok());
  EXPECT_EQ(c.missing, (std::vector<std::string>{"model.layers.1.block_sparse_moe.experts.3.w2.weight"}));
  EXPECT_EQ(c.unexpected, (std::vector<std::string>{"model.layers.0.mlp.extra.weight"}));
  ASSERT_EQ(c.wrong_shape.size(), 1u);
  EXPECT_EQ(c.wrong_shape[0].expected, "[16, 32]");
  EXPECT_EQ(c.wrong_shape[0].found, "[32, 32]");
  ASSERT_EQ(c.wrong_dtype.size(), 1u);
  EXPECT_EQ(c.wrong_dtype[0].name, "model.norm.weight");
  const std::string text = render_check(c);
  EXPECT_NE(text.find("missing (1)"), std::string::npos) << text;
  EXPECT_NE(text.find("wrong shape (1)"), std::string::npos) << text;
  EXPECT_NE(text.find("4 problems"), std::string::npos) << text;
}

}  // namespace
}  // namespace moe
