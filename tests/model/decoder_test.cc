// Golden tests of the whole decoder against tests/reference/make_model_fixtures.py: for every
// family, the prompt logits (1e-4), the 20-token greedy continuation (identical), each decode
// step's logits (1e-4), incremental decode vs full recomputation (1e-5); and the bad inputs.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/random_checkpoint.h"
#include "common/temp_folder.h"
#include "io/safetensors.h"
#include "model/decoder.h"
#include "model/sampler.h"
#include "model/weights.h"
#include "runtime/cpu_features.h"
#include "spec/tensor_registry.h"
#include "util/dtype.h"
#include "util/error.h"

namespace moe {
namespace {

std::string fixture_dir(const std::string& family) {
  // Built with append: GCC 12 reports a false -Warray-bounds on the chained operator+ form.
  std::string dir = MOE_TEST_DATA_DIR;
  dir.append("/reference/fixtures/models/").append(family);
  return dir;
}

double max_abs_diff(const float* a, const float* b, size_t n) {
  double worst = 0;
  for (size_t i = 0; i < n; ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  return worst;
}

class DecoderGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(DecoderGolden, MatchesPyTorch) {
  const std::string dir = fixture_dir(GetParam());
  Decoder model(dir);
  const SafetensorsFile expected = SafetensorsFile::open(dir + "/expected.safetensors");
  const auto prompt64 = expected.view<int64_t>("prompt_ids", DType::kI64);
  const auto greedy64 = expected.view<int64_t>("greedy_ids", DType::kI64);
  const std::vector<int32_t> prompt(prompt64.begin(), prompt64.end()), want(greedy64.begin(), greedy64.end());
  const std::vector<float> want_logits = expected.to_f32("logits"), want_decode = expected.to_f32("decode_logits");
  const int64_t T = static_cast<int64_t>(prompt.size()), N = static_cast<int64_t>(want.size());
  const int64_t V = model.spec().vocab;

  KvCache cache = model.make_cache(T + N);
  std::vector<float> logits(T * V);  // [T, V]
  model.forward(prompt.data(), T, cache, logits.data());
  EXPECT_LT(max_abs_diff(logits.data(), want_logits.data(), logits.size()), 1e-4) << "prompt logits";

  std::vector<int32_t> generated;
  std::vector<float> step(logits.end() - V, logits.end());
  double worst_decode = 0;
  for (int64_t i = 0; i < N; ++i) {
    worst_decode = std::max(worst_decode, max_abs_diff(step.data(), want_decode.data() + i * V, V));
    generated.push_back(argmax(step.data(), V));
    if (i + 1 < N) model.forward(&generated.back(), 1, cache, step.data());
  }
  EXPECT_LT(worst_decode, 1e-4) << "decode logits";
  EXPECT_EQ(generated, want);

  // Incremental decode (what just ran) equals one full pass over prompt + generated[:-1].
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), generated.begin(), generated.end() - 1);
  KvCache full_cache = model.make_cache(T + N);
  std::vector<float> full(seq.size() * V);  // [T + N - 1, V]
  model.forward(seq.data(), static_cast<int64_t>(seq.size()), full_cache, full.data());
  KvCache inc = model.make_cache(T + N);
  model.forward(prompt.data(), T, inc, logits.data());
  double worst_inc = max_abs_diff(logits.data(), full.data(), T * V);
  for (int64_t i = 0; i + 1 < N; ++i) {
    model.forward(&generated[i], 1, inc, step.data());
    worst_inc = std::max(worst_inc, max_abs_diff(step.data(), full.data() + (T + i) * V, V));
  }
  // 1e-5 relative to the logit scale (f32 rounding of the m = 1 and m = T kernel blockings differs).
  double scale = 1.0;
  for (float l : full) scale = std::max(scale, double(std::abs(l)));
  EXPECT_LT(worst_inc, 1e-5 * scale) << "incremental vs full";
}

INSTANTIATE_TEST_SUITE_P(Families, DecoderGolden,
                         ::testing::Values("llama", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe",
                                           "deepseek_v2_lite", "deepseek_v3", "deepseek_v3_hf", "gpt_oss", "glm4_moe",
                                           "dots1", "ernie4_5_moe", "granitemoe", "granitemoeshared", "phimoe", "dbrx",
                                           "llama4_text", "deepseek_v2_hf", "jetmoe", "minimax", "minimax_rotary"),
                         [](const auto& info) { return std::string(info.param); });

// LongRoPE (PhiMoE): a sequence no longer than original_max_position_embeddings (8 in the fixture) runs on
// the short factors; once it grows past it every position switches to the long ones and the cached prefix
// is recomputed, so decoding across the boundary equals a fresh pass over the whole sequence.
TEST(Decoder, LongRopeShortFactorsAndTheSwitch) {
  const std::string dir = fixture_dir("phimoe");
  Decoder model(dir);
  const SafetensorsFile expected = SafetensorsFile::open(dir + "/expected.safetensors");
  const auto prompt64 = expected.view<int64_t>("prompt_ids", DType::kI64);
  const std::vector<int32_t> prompt(prompt64.begin(), prompt64.end());
  const std::vector<float> want_short = expected.to_f32("short_logits");
  const int64_t V = model.spec().vocab, n = static_cast<int64_t>(want_short.size()) / V;
  ASSERT_LE(n, model.spec().rope.original_max_position);
  KvCache cache = model.make_cache(16);
  std::vector<float> logits(n * V);  // [n, V]
  model.forward(prompt.data(), n, cache, logits.data());
  EXPECT_LT(max_abs_diff(logits.data(), want_short.data(), logits.size()), 1e-4) << "short factors";
  // Decode one token at a time across the boundary; each step must equal a fresh pass over the prefix.
  std::vector<float> step(V), fresh;
  for (int64_t len = n + 1; len <= 12; ++len) {
    model.forward(&prompt[len - 1], 1, cache, step.data());
    KvCache again = model.make_cache(16);
    fresh.resize(len * V);
    model.forward(prompt.data(), len, again, fresh.data());
    EXPECT_LT(max_abs_diff(step.data(), fresh.data() + (len - 1) * V, V), 1e-4) << "length " << len;
  }
  EXPECT_EQ(cache.length(), 12);
  // The prompt's last logits (long factors) are the golden ones.
  const std::vector<float> want = expected.to_f32("logits");
  EXPECT_LT(max_abs_diff(step.data(), want.data() + 11 * V, V), 1e-4);
}

// The multimodal Llama 4 checkpoint (Llama4ForConditionalGeneration) keeps the text model under
// "language_model." next to a vision tower: the same text weights in that layout give the same logits,
// and the vision tensors are not read.
TEST(Decoder, Llama4MultimodalWrapperRunsItsTextModel) {
  namespace fs = std::filesystem;
  const std::string src = fixture_dir("llama4_text");
  const fs::path dst = fs::path(::testing::TempDir()) / "llama4_wrapper";
  fs::create_directories(dst);
  const nlohmann::json text = nlohmann::json::parse(std::ifstream(src + "/config.json"));
  const nlohmann::json wrapper = {
      {"model_type", "llama4"},    {"architectures", {"Llama4ForConditionalGeneration"}},
      {"text_config", text},       {"vision_config", {{"model_type", "llama4_vision_model"}, {"hidden_size", 8}}},
      {"boi_token_index", 200080}, {"torch_dtype", "float32"}};
  std::ofstream(dst / "config.json") << wrapper.dump(2);
  const SafetensorsFile file = SafetensorsFile::open(src + "/model.safetensors");
  std::vector<TensorToWrite> tensors;
  std::vector<std::string> names;
  names.reserve(file.tensors().size());
  for (const TensorInfo& t : file.tensors()) names.push_back("language_model." + t.name);
  size_t i = 0;
  for (const TensorInfo& t : file.tensors()) tensors.push_back({names[i++], t.dtype, t.shape, file.bytes(t.name)});
  const TensorInfo& any = file.tensors().front();
  tensors.push_back({"vision_model.patch_embedding.weight", any.dtype, any.shape, file.bytes(any.name)});
  write_safetensors((dst / "model.safetensors").string(), tensors);

  Decoder plain(src), wrapped(dst.string());
  EXPECT_TRUE(wrapped.spec().multimodal_wrapper);
  const std::vector<int32_t> ids = {5, 17, 99, 3, 120, 42, 7};
  const int64_t V = plain.spec().vocab, T = static_cast<int64_t>(ids.size());
  std::vector<float> a(T * V), b(T * V);
  KvCache ca = plain.make_cache(T), cb = wrapped.make_cache(T);
  plain.forward(ids.data(), T, ca, a.data());
  wrapped.forward(ids.data(), T, cb, b.data());
  EXPECT_EQ(max_abs_diff(a.data(), b.data(), a.size()), 0.0);
}

TEST(Decoder, BadTokensAreErrors) {
  Decoder model(fixture_dir("qwen3_moe"));
  KvCache cache = model.make_cache(4);
  std::vector<float> logits(8 * model.spec().vocab);
  const std::vector<int32_t> bad = {1, 256}, neg = {-1}, many = {1, 2, 3, 4, 5};
  EXPECT_THROW(model.forward(bad.data(), 0, cache, logits.data()), Error);  // empty
  EXPECT_THROW(model.forward(bad.data(), 2, cache, logits.data()), Error);  // id out of range
  EXPECT_THROW(model.forward(neg.data(), 1, cache, logits.data()), Error);
  EXPECT_THROW(model.forward(many.data(), 5, cache, logits.data()), Error);  // longer than the context
}

// Copies a fixture with one tensor dropped or reshaped.
std::string broken_copy(const std::string& family, const std::string& victim, bool reshape) {
  namespace fs = std::filesystem;
  const std::string src = fixture_dir(family);
  static const testing::ProcessTempFolder folder("moe_decoder_test_broken");
  const fs::path dst = folder / (family + (reshape ? "_shape" : "_missing"));
  fs::create_directories(dst);
  fs::copy_file(src + "/config.json", dst / "config.json", fs::copy_options::overwrite_existing);
  const SafetensorsFile file = SafetensorsFile::open(src + "/model.safetensors");
  std::vector<TensorToWrite> tensors;
  for (const TensorInfo& t : file.tensors()) {
    if (t.name == victim && !reshape) continue;
    TensorToWrite w{t.name, t.dtype, t.shape, file.bytes(t.name)};
    if (t.name == victim) w.shape = {t.shape[1], t.shape[0]};
    tensors.push_back(w);
  }
  write_safetensors((dst / "model.safetensors").string(), tensors);
  return dst.string();
}

void expect_error_naming(const std::string& dir, const std::string& name) {
  try {
    Decoder model(dir);
    ADD_FAILURE() << "loaded a broken checkpoint " << dir;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

TEST(Decoder, ExtraTensorAndUnsupportedQuantizationAreErrors) {
  namespace fs = std::filesystem;
  const std::string src = fixture_dir("gpt_oss");
  const fs::path extra = fs::path(::testing::TempDir()) / "extra_gpt_oss";
  fs::create_directories(extra);
  fs::copy_file(src + "/config.json", extra / "config.json", fs::copy_options::overwrite_existing);
  const SafetensorsFile file = SafetensorsFile::open(src + "/model.safetensors");
  std::vector<TensorToWrite> tensors;
  for (const TensorInfo& t : file.tensors()) tensors.push_back({t.name, t.dtype, t.shape, file.bytes(t.name)});
  const std::string bogus = "model.layers.0.mlp.bogus.weight";
  tensors.push_back({bogus, DType::kF32, {4}, file.bytes("model.layers.0.self_attn.sinks")});
  write_safetensors((extra / "model.safetensors").string(), tensors);
  expect_error_naming(extra.string(), bogus);

  const fs::path mxfp4 = fs::path(::testing::TempDir()) / "mxfp4_gpt_oss";
  fs::create_directories(mxfp4);
  nlohmann::json config = nlohmann::json::parse(std::ifstream(src + "/config.json"));
  config["quantization_config"] = {{"quant_method", "mxfp4"}};
  std::ofstream(mxfp4 / "config.json") << config.dump(2);
  fs::copy_file(src + "/model.safetensors", mxfp4 / "model.safetensors", fs::copy_options::overwrite_existing);
  expect_error_naming(mxfp4.string(), "mxfp4");
}

TEST(Decoder, MissingOrMisshapenTensorIsAnErrorNamingIt) {
  const std::string victim = "model.layers.1.mlp.experts.3.up_proj.weight";
  expect_error_naming(broken_copy("qwen3_moe", victim, false), victim);
  expect_error_naming(broken_copy("qwen3_moe", victim, true), victim);
}

// Copies a fixture with every weight rounded to bf16: stored as BF16 (as_bf16) or as the
// rounded values in F32.
std::string rounded_copy(const std::string& family, bool as_bf16) {
  namespace fs = std::filesystem;
  const std::string src = fixture_dir(family);
  static const testing::ProcessTempFolder folder("moe_decoder_test_rounded");
  const fs::path dst = folder / (family + (as_bf16 ? "_bf16" : "_f32"));
  fs::create_directories(dst);
  fs::copy_file(src + "/config.json", dst / "config.json", fs::copy_options::overwrite_existing);
  const SafetensorsFile file = SafetensorsFile::open(src + "/model.safetensors");
  std::vector<std::vector<uint8_t>> blobs;
  std::vector<TensorToWrite> tensors;
  for (const TensorInfo& t : file.tensors()) {
    const std::vector<float> v = file.to_f32(t.name);
    std::vector<uint8_t> bytes(v.size() * (as_bf16 ? 2 : 4));
    for (size_t i = 0; i < v.size(); ++i) {
      const uint16_t h = f32_to_bf16(v[i]);
      if (as_bf16) {
        std::memcpy(&bytes[2 * i], &h, 2);
      } else {
        const float r = bf16_to_f32(h);
        std::memcpy(&bytes[4 * i], &r, 4);
      }
    }
    blobs.push_back(std::move(bytes));
    tensors.push_back({t.name, as_bf16 ? DType::kBF16 : DType::kF32, t.shape, blobs.back()});
  }
  write_safetensors((dst / "model.safetensors").string(), tensors);
  return dst.string();
}

// gpt-oss: its fused, interleaved experts are re-laid out in bf16 (not widened), a path of their own.
TEST(Decoder, Bf16WeightsMatchTheirF32Rounding) {
  for (const char* family : {"qwen3_moe", "deepseek_v3", "gpt_oss"}) {
    SCOPED_TRACE(family);
    Decoder bf16(rounded_copy(family, true)), f32(rounded_copy(family, false));
    const std::vector<int32_t> ids = {5, 17, 99, 3, 250, 42};
    const int64_t V = f32.spec().vocab, T = static_cast<int64_t>(ids.size());
    std::vector<float> a(T * V), b(T * V);
    KvCache ca = bf16.make_cache(T), cb = f32.make_cache(T);
    bf16.forward(ids.data(), T, ca, a.data());
    f32.forward(ids.data(), T, cb, b.data());
    // AVX512_BF16 multiplies bf16 weights with activations rounded to bf16 (vdpbf16ps): close,
    // not exact. Every other path widens the weights exactly. A layout bug would be off by O(1).
    const double tolerance = active_isa() == Isa::kAvx512Bf16 ? 0.1 : 1e-4;
    EXPECT_LT(max_abs_diff(a.data(), b.data(), a.size()), tolerance);
  }
}

TEST(Decoder, StatsReportTheRoutingOfEveryMoeLayer) {
  Decoder model(fixture_dir("deepseek_v3"));  // layer 0 dense, layers 1-2 MoE with K = 3
  const std::vector<int32_t> ids = {7, 8, 9, 10};
  KvCache cache = model.make_cache(8);
  std::vector<float> logits(4 * model.spec().vocab);
  ForwardStats stats;
  model.forward(ids.data(), 4, cache, logits.data(), &stats);
  ASSERT_EQ(stats.expert_ids.size(), 3u);
  EXPECT_TRUE(stats.expert_ids[0].empty());
  for (int l = 1; l < 3; ++l) {
    EXPECT_EQ(stats.expert_ids[l].size(), 4u * 3);
    int64_t routed = 0;
    for (int64_t n : stats.moe_layers[l].tokens_per_expert) routed += n;
    EXPECT_EQ(routed, 4 * 3);
    for (int32_t e : stats.expert_ids[l]) EXPECT_TRUE(e >= 0 && e < 16);
  }
  EXPECT_EQ(cache.length(), 4);
}

// Quantizes one [N, K] matrix to FP8 E4M3 with per-block scales; returns (codes, scales, dequantized).
struct Fp8Matrix {
  std::vector<uint8_t> codes;
  std::vector<float> scales, dequantized;
};
Fp8Matrix quantize_fp8(const std::vector<float>& w, int64_t N, int64_t K, int64_t block) {
  const int64_t sr = (N + block - 1) / block, sc = (K + block - 1) / block;
  Fp8Matrix m{std::vector<uint8_t>(N * K), std::vector<float>(sr * sc, 0.0f), std::vector<float>(N * K)};
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < K; ++j) {
      float& s = m.scales[(i / block) * sc + j / block];
      s = std::max(s, std::abs(w[i * K + j]) / 448.0f);
    }
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < K; ++j) {
      const float s = m.scales[(i / block) * sc + j / block];
      m.codes[i * K + j] = f32_to_f8e4m3(s > 0 ? w[i * K + j] / s : 0.0f);
      m.dequantized[i * K + j] = f8e4m3_to_f32(m.codes[i * K + j]) * s;
    }
  return m;
}

// Writes src (an f32 checkpoint) as a block-scaled FP8 checkpoint in q_dir (every matrix the registry
// marks FP8 quantized with `block` x `block` scales) and the same weights dequantized, in f32, in d_dir.
void write_fp8_pair(const std::string& src, const std::filesystem::path& q_dir, const std::filesystem::path& d_dir,
                    int64_t block) {
  namespace fs = std::filesystem;
  nlohmann::json config = nlohmann::json::parse(std::ifstream(src + "/config.json"));
  fs::create_directories(q_dir);
  fs::create_directories(d_dir);
  std::ofstream(d_dir / "config.json") << config.dump(2);
  config["quantization_config"] = {{"activation_scheme", "dynamic"},
                                   {"fmt", "e4m3"},
                                   {"quant_method", "fp8"},
                                   {"weight_block_size", {block, block}}};
  std::ofstream(q_dir / "config.json") << config.dump(2);
  const TensorRegistry registry = build_registry(parse_model_spec(config, "fp8 test"));
  std::map<std::string, std::string> scale_name;
  for (const TensorEntry& e : registry.tensors)
    if (!e.scale_of.empty()) scale_name[e.scale_of] = e.name;
  ASSERT_FALSE(scale_name.empty());

  const SafetensorsFile file = SafetensorsFile::open(src + "/model.safetensors");
  std::deque<std::vector<uint8_t>> blobs;
  auto keep = [&](const void* p, size_t n) -> std::span<const uint8_t> {
    const auto* b = static_cast<const uint8_t*>(p);
    return blobs.emplace_back(b, b + n);
  };
  std::vector<TensorToWrite> q_tensors, d_tensors;
  for (const TensorInfo& t : file.tensors()) {
    const std::vector<float> v = file.to_f32(t.name);
    const auto it = scale_name.find(t.name);
    if (it == scale_name.end()) {
      const auto bytes = keep(v.data(), v.size() * 4);
      q_tensors.push_back({t.name, DType::kF32, t.shape, bytes});
      d_tensors.push_back({t.name, DType::kF32, t.shape, bytes});
      continue;
    }
    const Fp8Matrix m = quantize_fp8(v, t.shape[0], t.shape[1], block);
    q_tensors.push_back({t.name, DType::kF8E4M3, t.shape, keep(m.codes.data(), m.codes.size())});
    q_tensors.push_back({it->second,
                         DType::kF32,
                         {(t.shape[0] + block - 1) / block, (t.shape[1] + block - 1) / block},
                         keep(m.scales.data(), m.scales.size() * 4)});
    d_tensors.push_back({t.name, DType::kF32, t.shape, keep(m.dequantized.data(), m.dequantized.size() * 4)});
  }
  write_safetensors((q_dir / "model.safetensors").string(), q_tensors);
  write_safetensors((d_dir / "model.safetensors").string(), d_tensors);
}

// The FP8 model's logits equal the dequantized f32 model's (f32 compute on both) and differ from the
// original's (the weights really were quantized).
void expect_fp8_matches_dequantized(const std::string& src, const std::string& q_dir, const std::string& d_dir) {
  Decoder fp8(q_dir), dequantized(d_dir), original(src);
  const std::vector<int32_t> ids = {5, 17, 99, 3, 250, 42, 7, 8, 9, 10, 11, 12};  // prefill and decode paths
  const int64_t V = original.spec().vocab, T = static_cast<int64_t>(ids.size());
  std::vector<float> a(T * V), b(T * V), c(T * V);
  KvCache ca = fp8.make_cache(T + 1), cb = dequantized.make_cache(T + 1), cc = original.make_cache(T);
  fp8.forward(ids.data(), T, ca, a.data());
  dequantized.forward(ids.data(), T, cb, b.data());
  original.forward(ids.data(), T, cc, c.data());
  double scale = 0.0;
  for (float v : b) scale = std::max(scale, double(std::abs(v)));
  EXPECT_LT(max_abs_diff(a.data(), b.data(), a.size()), 1e-5 * scale + 1e-5);
  EXPECT_GT(max_abs_diff(a.data(), c.data(), a.size()), 1e-3);
  for (float v : a) ASSERT_FALSE(std::isnan(v));
  // One decode step (m = 1: the streaming FP8 kernel).
  std::vector<float> la(V), lb(V);
  const int32_t next = 77;
  fp8.forward(&next, 1, ca, la.data());
  dequantized.forward(&next, 1, cb, lb.data());
  EXPECT_LT(max_abs_diff(la.data(), lb.data(), V), 1e-5 * scale + 1e-5);
}

// 16 x 16 blocks on the tiny fixture: rows shorter than the 128-column blocks FP8 is held in, so these
// matrices are dequantized to f32 at load (the fallback).
TEST(Decoder, Fp8BlockScaledWeightsMatchTheirDequantizedValues) {
  namespace fs = std::filesystem;
  const std::string src = fixture_dir("deepseek_v3");
  const fs::path q_dir = fs::path(::testing::TempDir()) / "fp8_deepseek_v3";
  const fs::path d_dir = fs::path(::testing::TempDir()) / "fp8_dequantized_deepseek_v3";
  write_fp8_pair(src, q_dir, d_dir, 16);
  expect_fp8_matches_dequantized(src, q_dir.string(), d_dir.string());
}

// 128 x 128 blocks as DeepSeek-V3 / Kimi-K2 / Qwen3-FP8 ship them, on models whose row lengths are
// multiples of 128: the matrices stay FP8 in memory (F8_E4M3_B128) and the FP8 kernels compute on them.
TEST(Decoder, Fp8CheckpointsStayFp8AndComputeLikeTheirDequantizedWeights) {
  namespace fs = std::filesystem;
  for (const std::string family : {"deepseek_v3", "qwen3_moe"}) {
    SCOPED_TRACE(family);
    nlohmann::json config = nlohmann::json::parse(std::ifstream(fixture_dir(family) + "/config.json"));
    config["hidden_size"] = 128;
    config["intermediate_size"] = 256;
    config["moe_intermediate_size"] = 128;
    if (family == "deepseek_v3") {
      config["q_lora_rank"] = 128;
      config["kv_lora_rank"] = 128;
      config["qk_nope_head_dim"] = 32;
      config["qk_rope_head_dim"] = 16;
      config["v_head_dim"] = 32;  // o_proj rows: 4 heads x 32 = 128
    } else {
      config["head_dim"] = 32;
    }
    const fs::path base = fs::path(::testing::TempDir()) / ("fp8_128_" + family);
    moe::testing::write_random_checkpoint((base / "f32").string(), config, 11);
    write_fp8_pair((base / "f32").string(), base / "fp8", base / "deq", 128);
    {
      const ModelSpec spec = load_model_spec((base / "fp8").string());
      WeightStore store((base / "fp8").string(), spec);
      const std::string expert = family == "deepseek_v3" ? "model.layers.1.mlp.experts.3.down_proj.weight"
                                                         : "model.layers.1.mlp.experts.3.down_proj.weight";
      EXPECT_EQ(store.matrix(expert).dtype, DType::kF8E4M3_B128);
      EXPECT_EQ(store.matrix("model.layers.0.self_attn.o_proj.weight").dtype, DType::kF8E4M3_B128);
    }
    expect_fp8_matches_dequantized((base / "f32").string(), (base / "fp8").string(), (base / "deq").string());
  }
}

}  // namespace
}  // namespace moe
