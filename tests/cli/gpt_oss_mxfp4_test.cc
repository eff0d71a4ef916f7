// gpt-oss as released: MXFP4 experts in *_blocks / *_scales (quantization_config mxfp4) are read as MXFP4
// and computed on as such. A random checkpoint's experts are quantized to MXFP4 and written twice: in the
// released layout (blocks: element 2i in byte i's low nibble, gate and up rows interleaved) and dequantized
// as f32 in the plain layout. The MXFP4 checkpoint must be within the 8-bit activations' error of the f32
// one (a wrong nibble order or gate/up split is far outside it), and close to the GGUF that `moe quantize
// --type MXFP4` makes from the f32 one (the same FP4 codes; attention and head there in Q8_0).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "cli/gguf_test_configs.h"
#include "cli/moe_process.h"
#include "io/safetensors.h"
#include "kernels/quant_blocks.h"
#include "spec/model_spec.h"
#include "spec/tensor_registry.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// One [rows, cols] matrix quantized to MXFP4 (GGUF block layout) and back.
std::vector<float> mxfp4_round_trip(std::vector<float> m, int64_t rows, int64_t cols, std::vector<uint8_t>* q) {
  q->assign(static_cast<size_t>(rows * dtype_row_bytes(DType::kMXFP4, cols)), 0);
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* qr = q->data() + r * dtype_row_bytes(DType::kMXFP4, cols);
    quantize_row(DType::kMXFP4, m.data() + r * cols, qr, cols);
    dequantize_row(DType::kMXFP4, qr, m.data() + r * cols, cols);
  }
  return m;
}

// GGUF MXFP4 block (scale, then element j low / j + 16 high) -> the release's 16 bytes (element 2i low,
// 2i + 1 high) and its scale.
void to_release_layout(const uint8_t* gguf_block, uint8_t* blocks16, uint8_t* scale) {
  *scale = gguf_block[0];
  const auto nib = [gguf_block](int e) { return e < 16 ? gguf_block[1 + e] & 15 : gguf_block[1 + e - 16] >> 4; };
  for (int i = 0; i < 16; ++i) blocks16[i] = static_cast<uint8_t>(nib(2 * i) | (nib(2 * i + 1) << 4));
}

TEST(GptOssMxfp4, ReleasedLayoutEqualsTheGgufOfTheSameCodes) {
  const fs::path dir = fs::temp_directory_path() / ("moe_gptoss_mxfp4_" + std::to_string(getpid()));
  fs::remove_all(dir);
  std::ifstream cin(std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/models/gpt_oss/config.json");
  json c = json::parse(cin);
  c.update({{"vocab_size", 512},
            {"hidden_size", 256},
            {"num_attention_heads", 4},
            {"num_key_value_heads", 2},
            {"head_dim", 64},
            {"intermediate_size", 256},
            {"torch_dtype", "float32"}});
  const ModelSpec spec = parse_model_spec(c, "test");
  const int64_t E = spec.n_expert, D = spec.d_model, F = spec.n_ff_expert;
  RegistryOptions ro;
  ro.include_mtp = false;
  ro.format = WeightFormat::kDense;
  ro.dense_dtype = DType::kF32;
  const TensorRegistry reg = build_registry(spec, ro);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> dense;       // the f32 checkpoint's tensors
  std::vector<std::vector<uint8_t>> released;  // the MXFP4 checkpoint's expert tensors
  std::vector<TensorToWrite> f32_tensors, mx_tensors;
  dense.reserve(reg.tensors.size());
  released.reserve(4 * reg.tensors.size());
  for (const TensorEntry& t : reg.tensors) {
    std::vector<float>& v = dense.emplace_back(static_cast<size_t>(t.numel()));
    const float scale =
        t.role == Role::kNorm ? 0.0f : (t.role == Role::kRouter ? 8.0f : 1.0f) / std::sqrt(float(t.shape.back()));
    for (float& x : v) x = t.role == Role::kNorm ? 1.0f : scale * normal(rng);
    const bool gate_up = t.name.ends_with("experts.gate_up_proj"), down = t.name.ends_with("experts.down_proj");
    if (!gate_up && !down) {
      const auto* bytes = reinterpret_cast<const uint8_t*>(v.data());
      f32_tensors.push_back({t.name, DType::kF32, t.shape, {bytes, v.size() * 4}});
      mx_tensors.push_back(f32_tensors.back());
      continue;
    }
    // Per expert, the Linear matrix [out, in]: gate_up's rows 2f (gate) and 2f + 1 (up) of [2F, D]; down [D, F].
    const int64_t out = gate_up ? 2 * F : D, in = gate_up ? D : F;
    std::vector<uint8_t>& blocks = released.emplace_back(static_cast<size_t>(E * out * (in / 32) * 16));
    std::vector<uint8_t>& scales = released.emplace_back(static_cast<size_t>(E * out * (in / 32)));
    for (int64_t e = 0; e < E; ++e) {
      std::vector<float> lin(static_cast<size_t>(out * in));  // [out, in]
      for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i) lin[size_t(o * in + i)] = scale * normal(rng);
      std::vector<uint8_t> q;
      lin = mxfp4_round_trip(lin, out, in, &q);
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t b = 0; b < in / 32; ++b) {
          const int64_t blk = (e * out + o) * (in / 32) + b;
          to_release_layout(q.data() + (o * (in / 32) + b) * 17, blocks.data() + blk * 16, scales.data() + blk);
        }
        for (int64_t i = 0; i < in; ++i)  // the plain layout is transposed: [E, in, out]
          v[size_t((e * in + i) * out + o)] = lin[size_t(o * in + i)];
      }
    }
    f32_tensors.push_back({t.name, DType::kF32, t.shape, {reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4}});
    const std::string base = t.name;
    mx_tensors.push_back({base + "_blocks", DType::kU8, {E, out, in / 32, 16}, {blocks.data(), blocks.size()}});
    mx_tensors.push_back({base + "_scales", DType::kU8, {E, out, in / 32}, {scales.data(), scales.size()}});
  }
  fs::create_directories(dir / "f32");
  fs::create_directories(dir / "mxfp4");
  std::ofstream(dir / "f32" / "config.json") << c.dump(2);
  json cq = c;
  cq["quantization_config"] = {
      {"quant_method", "mxfp4"},
      {"modules_to_not_convert",
       {"model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"}}};
  std::ofstream(dir / "mxfp4" / "config.json") << cq.dump(2);
  write_safetensors((dir / "f32" / "model.safetensors").string(), f32_tensors);
  write_safetensors((dir / "mxfp4" / "model.safetensors").string(), mx_tensors);

  const std::string ids = "3,77,500,12,9,41,260,8,301,2,99,7";
  const auto eval = [&](const std::string& model, const std::string& out) {
    auto r = testing::run_moe("eval --model " + model + " --ids " + ids + " --logits-out " + out, true);
    EXPECT_EQ(r.code, 0) << r.out;
    return testing::read_f32(out);
  };
  const std::string gguf = (dir / "mx.gguf").string();
  auto q = testing::run_moe(
      "quantize --no-progress --model " + (dir / "f32").string() + " --out " + gguf + " --type MXFP4", true);
  ASSERT_EQ(q.code, 0) << q.out;
  const std::vector<float> released_logits = eval((dir / "mxfp4").string(), (dir / "a.bin").string());
  const std::vector<float> gguf_logits = eval(gguf, (dir / "b.bin").string());
  const std::vector<float> f32_logits = eval((dir / "f32").string(), (dir / "c.bin").string());
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(released_logits.size(), gguf_logits.size());
  // The released checkpoint keeps attention and the head in f32, the GGUF MXFP4 mixture stores them in Q8_0
  // (as llama.cpp's MXFP4_MOE): the experts' codes are the same, the rest differs by Q8_0's error.
  double diff = 0, size = 0, diff32 = 0;
  for (size_t i = 0; i < released_logits.size(); ++i) {
    ASSERT_TRUE(std::isfinite(released_logits[i]));
    diff = std::max(diff, std::fabs(double(released_logits[i]) - gguf_logits[i]));
    diff32 = std::max(diff32, std::fabs(double(released_logits[i]) - f32_logits[i]));
    size = std::max(size, std::fabs(double(f32_logits[i])));
  }
  EXPECT_LE(diff32, 0.03 * size) << "MXFP4 experts vs their dequantized f32 values";
  EXPECT_LE(diff, 0.1 * size) << "the released layout vs moe quantize's GGUF of the same codes";
  // `bench model` rates prefill against the peak of the experts' stored type: MXFP4, not the U8 of *_blocks.
  const auto bench = testing::run_moe("--json bench model --model " + (dir / "mxfp4").string() +
                                      " --prompt 2 --decode 1 --repetitions 1 --no-warmup");
  ASSERT_EQ(bench.code, 0) << bench.out;
  EXPECT_EQ(json::parse(bench.out)["matmul_peak_stored_dtype"], "MXFP4") << bench.out;
  // The same on the GGUF, whose experts the loader names per expert (the registry has gpt-oss's fused ones).
  const auto gbench =
      testing::run_moe("--json bench model --model " + gguf + " --prompt 2 --decode 1 --repetitions 1 --no-warmup");
  ASSERT_EQ(gbench.code, 0) << gbench.out;
  EXPECT_EQ(json::parse(gbench.out)["matmul_peak_stored_dtype"], "MXFP4") << gbench.out;
  // `inspect` on the GGUF counts the file's bytes (MXFP4 experts, Q8_0 attention and head, F32 norms) and the
  // parameters of the released checkpoint.
  const auto gi = testing::run_moe("--json inspect " + gguf),
             ri = testing::run_moe("--json inspect " + (dir / "mxfp4").string());
  ASSERT_EQ(gi.code, 0) << gi.out;
  ASSERT_EQ(ri.code, 0) << ri.out;
  const json g = json::parse(gi.out)["models"][0], r = json::parse(ri.out)["models"][0];
  EXPECT_EQ(g["total_params"], r["total_params"]);
  EXPECT_EQ(g["activated_params"], r["activated_params"]);
  EXPECT_TRUE(g["file_dtypes"].contains("MXFP4") && g["file_dtypes"].contains("Q8_0")) << g["file_dtypes"];
  const double file = double(fs::file_size(gguf)), counted = g["weights"]["checkpoint_bytes"].get<double>();
  EXPECT_LE(counted, file);
  EXPECT_GE(counted, 0.9 * file) << "the tensors' bytes are most of the file (the rest is its header)";
  const json& experts = g["breakdown"]["routed_expert"];
  EXPECT_NEAR(experts["bytes"].get<double>() / experts["params"].get<double>(), 17.0 / 32, 0.05)
      << "MXFP4 experts: 17 bytes per 32 weights (and their f32 biases)";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moe
