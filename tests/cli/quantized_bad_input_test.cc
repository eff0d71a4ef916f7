// Malformed quantized models, at the model level (the GGUF reader's own cases are in tests/io/gguf_test.cc):
// a GGUF written by moe quantize from a random checkpoint is rewritten with one thing wrong (a key missing or
// of the wrong type, an impossible setting, a tensor missing, misshapen, of an unsupported type, extra or
// beyond the layers), and an FP8 / MXFP4 safetensors checkpoint likewise (NaN codes, non-finite scales,
// scales missing or misshapen). Each must be a moe::Error naming the file and the key or tensor (and, for
// one of each kind, `moe eval` must exit 1 with "moe: [gguf]" / "moe: [weights]"), never a crash or a model
// that loads.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/gguf_test_configs.h"
#include "cli/moe_process.h"
#include "common/random_checkpoint.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/decoder.h"
#include "model/gguf_export.h"
#include "spec/config_reader.h"
#include "spec/tensor_registry.h"
#include "util/error.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

fs::path test_dir() {
  static const fs::path d = [] {
    fs::path p = fs::path(::testing::TempDir()) / ("quantized_bad_input_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
  }();
  return d;
}

// A valid Q8_0 GGUF of a small Qwen3-MoE model, made once.
const std::string& good_gguf() {
  static const std::string path = [] {
    nlohmann::json config = testing::fixture_config("qwen3_moe");
    config["hidden_size"] = 64;
    config["moe_intermediate_size"] = 64;
    config["intermediate_size"] = 64;
    config["head_dim"] = 32;
    const std::string hf = (test_dir() / "qwen3").string();
    moe::testing::write_random_checkpoint(hf, config, 11);
    const std::string out = (test_dir() / "qwen3.q8_0.gguf").string();
    quantize_to_gguf(hf, out, QuantizeOptions{.type = "Q8_0", .progress = {}});
    return out;
  }();
  return path;
}

// A rewritten copy of good_gguf(): edit_kv may change or erase metadata, edit_tensors the tensor list (a
// tensor whose shape or type changed gets zero bytes; others keep theirs).
struct Rewrite {
  std::function<void(std::vector<std::pair<std::string, GgufValue>>&)> kv;
  std::function<void(std::vector<GgufTensor>&)> tensors;
};

std::string rewrite(const std::string& name, const Rewrite& edit) {
  const GgufFile src = GgufFile::open(good_gguf());
  std::vector<std::pair<std::string, GgufValue>> kv;
  for (const std::string& k : src.keys())
    if (k != "general.alignment") kv.emplace_back(k, *src.find(k));
  std::vector<GgufTensor> tensors = src.tensors();
  if (edit.kv) edit.kv(kv);
  if (edit.tensors) edit.tensors(tensors);
  GgufWriter w;
  for (auto& [k, v] : kv) w.set(k, v);
  for (const GgufTensor& t : tensors) {
    const GgmlTypeInfo* info = ggml_type_info(t.ggml_type);
    if (info->dtype) {
      w.add_tensor(t.name, t.shape(), *info->dtype);
    } else {  // a type moe does not compute on (IQ4_NL): written as Q4_0 (same block size), the id patched below
      EXPECT_EQ(info->block_bytes, 18);
      w.add_tensor(t.name, t.shape(), DType::kQ4_0);
    }
  }
  const std::string path = (test_dir() / (name + ".gguf")).string();
  w.write(path, [&](size_t i, std::vector<uint8_t>& out) {
    const GgufTensor& t = tensors[i];
    const GgufTensor* orig = src.find_tensor(t.name);
    if (orig && orig->ne == t.ne && orig->ggml_type == t.ggml_type) {
      const auto b = src.bytes(*orig);
      out.assign(b.begin(), b.end());
    } else {
      const GgmlTypeInfo* info = ggml_type_info(t.ggml_type);
      out.assign(static_cast<size_t>(t.numel() / info->block_elems * info->block_bytes), uint8_t{0});
    }
  });
  for (const GgufTensor& t : tensors) {  // patch the type ids written as a stand-in
    if (ggml_type_info(t.ggml_type)->dtype) continue;
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    std::string bytes{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
    const size_t at = bytes.find(t.name) + t.name.size() + 4 + 8 * t.ne.size();
    const uint32_t id = static_cast<uint32_t>(t.ggml_type);
    f.seekp(static_cast<std::streamoff>(at));
    f.write(reinterpret_cast<const char*>(&id), 4);
  }
  return path;
}

void erase_key(std::vector<std::pair<std::string, GgufValue>>& kv, const std::string& key) {
  std::erase_if(kv, [&](const auto& p) { return p.first == key; });
}
void set_key(std::vector<std::pair<std::string, GgufValue>>& kv, const std::string& key, GgufValue v) {
  for (auto& p : kv)
    if (p.first == key) p.second = v;
}
GgufTensor& tensor(std::vector<GgufTensor>& ts, const std::string& name) {
  for (GgufTensor& t : ts)
    if (t.name == name) return t;
  ADD_FAILURE() << "no tensor " << name;
  return ts.front();
}

void expect_load_error(const std::string& path, const std::vector<std::string>& needles) {
  try {
    Decoder d(path);
    ADD_FAILURE() << path << " loaded";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    for (const std::string& n : needles)
      EXPECT_NE(what.find(n), std::string::npos) << "want '" << n << "' in: " << what;
  }
}

struct Case {
  std::string name;
  Rewrite edit;
  std::vector<std::string> needles;
};

TEST(QuantizedBadInput, GgufModelsNameTheKeyOrTensor) {
  ASSERT_NO_THROW(Decoder{good_gguf()});
  const std::vector<Case> cases = {
      {"no_arch", {[](auto& kv) { erase_key(kv, "general.architecture"); }, {}}, {"general.architecture", "missing"}},
      {"bad_arch",
       {[](auto& kv) { set_key(kv, "general.architecture", GgufValue::str("bert")); }, {}},
       {"general.architecture", "\"bert\" is not supported"}},
      {"arch_type",
       {[](auto& kv) { set_key(kv, "general.architecture", GgufValue::u32(3)); }, {}},
       {"general.architecture"}},
      {"no_block_count", {[](auto& kv) { erase_key(kv, "qwen3moe.block_count"); }, {}}, {"qwen3moe.block_count"}},
      {"block_count_type",
       {[](auto& kv) { set_key(kv, "qwen3moe.block_count", GgufValue::str("two")); }, {}},
       {"qwen3moe.block_count"}},
      {"no_expert_ffn",
       {[](auto& kv) { erase_key(kv, "qwen3moe.expert_feed_forward_length"); }, {}},
       {"qwen3moe.expert_feed_forward_length"}},
      {"topk_gt_experts",
       {[](auto& kv) { set_key(kv, "qwen3moe.expert_used_count", GgufValue::u32(99)); }, {}},
       {"99"}},
      {"heads_zero", {[](auto& kv) { set_key(kv, "qwen3moe.attention.head_count", GgufValue::u32(0)); }, {}}, {}},
      {"missing_tensor",
       {{},
        [](auto& ts) {
          std::erase_if(ts, [](const GgufTensor& t) { return t.name == "blk.1.ffn_down_exps.weight"; });
        }},
       {"missing", "blk.1.ffn_down_exps.weight"}},
      {"missing_embedding",
       {{}, [](auto& ts) { std::erase_if(ts, [](const GgufTensor& t) { return t.name == "token_embd.weight"; }); }},
       {"token_embd.weight"}},
      {"wrong_shape",
       {{}, [](auto& ts) { tensor(ts, "blk.0.attn_q.weight").ne[1] += 32; }},
       {"blk.0.attn_q.weight", "shape"}},
      {"expert_2d",
       {{},
        [](auto& ts) {
          GgufTensor& t = tensor(ts, "blk.0.ffn_up_exps.weight");
          t.ne = {t.ne[0], t.ne[1] * t.ne[2]};
        }},
       {"blk.0.ffn_up_exps.weight"}},
      {"iq_type",
       {{}, [](auto& ts) { tensor(ts, "blk.0.attn_output.weight").ggml_type = 20; }},  // IQ4_NL
       {"blk.0.attn_output.weight", "not supported"}},
      {"extra_tensor",
       {{},
        [](auto& ts) {
          GgufTensor t = tensor(ts, "output_norm.weight");
          t.name = "blk.0.something_else.weight";
          ts.push_back(t);
        }},
       {"blk.0.something_else.weight", "not part of"}},
      {"beyond_layers",
       {{},
        [](auto& ts) {
          GgufTensor t = tensor(ts, "blk.0.attn_norm.weight");
          t.name = "blk.7.attn_norm.weight";
          ts.push_back(t);
        }},
       {"blk.7.attn_norm.weight", "block_count"}},
      {"router_type_norm",
       {{}, [](auto& ts) { tensor(ts, "blk.0.attn_norm.weight").ne[0] += 1; }},
       {"blk.0.attn_norm.weight"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string path;
    try {
      path = rewrite(c.name, c.edit);
    } catch (const Error& e) {  // the writer itself refused: still an error, not a file
      ADD_FAILURE() << "writer refused " << c.name << ": " << e.what();
      continue;
    }
    expect_load_error(path, c.needles);
  }
  // A model file cut short.
  const std::string cut = (test_dir() / "cut.gguf").string();
  fs::copy_file(good_gguf(), cut, fs::copy_options::overwrite_existing);
  fs::resize_file(cut, fs::file_size(cut) - 1000);
  expect_load_error(cut, {"runs past"});
  EXPECT_GE(cases.size() + 1, 15u);
}

TEST(QuantizedBadInput, CliExitsOneWithTheGgufError) {
  const std::string path = rewrite(
      "cli_missing", {{}, [](auto& ts) {
                        std::erase_if(ts, [](const GgufTensor& t) { return t.name == "blk.0.ffn_gate_inp.weight"; });
                      }});
  const auto r = moe::testing::run_moe("eval --model " + path + " --ids 1,2,3", true);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("moe: [gguf]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("blk.0.ffn_gate_inp.weight"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("Segmentation"), std::string::npos) << r.out;
}

// FP8 block-scaled safetensors (DeepSeek-V3 / Qwen3-FP8 layout) with one thing wrong. The checkpoint is a
// random Qwen3-MoE model whose matrices are FP8 with 128 x 128 scale blocks; edit(name, codes or scales)
// may change a tensor's bytes, dtype or shape, or drop it (return false).
struct St {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};
using StEdit = std::function<bool(St&)>;

std::string write_fp8(const std::string& name, const StEdit& edit) {
  static const std::string src = [] {
    nlohmann::json config = testing::fixture_config("qwen3_moe");
    config["hidden_size"] = 128;
    config["moe_intermediate_size"] = 128;
    config["intermediate_size"] = 128;
    config["head_dim"] = 64;
    const std::string dir = (test_dir() / "qwen3_f32").string();
    moe::testing::write_random_checkpoint(dir, config, 12);
    return dir;
  }();
  const fs::path dir = test_dir() / name;
  fs::create_directories(dir);
  nlohmann::json config = nlohmann::json::parse(std::ifstream(src + "/config.json"));
  config["quantization_config"] = {
      {"activation_scheme", "dynamic"}, {"fmt", "e4m3"}, {"quant_method", "fp8"}, {"weight_block_size", {128, 128}}};
  std::ofstream(dir / "config.json") << config.dump(2);
  const TensorRegistry registry = build_registry(parse_model_spec(config, "fp8 test"));
  std::map<std::string, std::string> scale_name;
  for (const TensorEntry& e : registry.tensors)
    if (!e.scale_of.empty()) scale_name[e.scale_of] = e.name;
  const SafetensorsFile file = SafetensorsFile::open(src + "/model.safetensors");
  std::vector<St> out;
  for (const TensorInfo& t : file.tensors()) {
    const std::vector<float> v = file.to_f32(t.name);
    const auto it = scale_name.find(t.name);
    if (it == scale_name.end()) {
      out.push_back({t.name, DType::kF32, t.shape, {}});
      out.back().bytes.resize(v.size() * 4);
      std::memcpy(out.back().bytes.data(), v.data(), v.size() * 4);
      continue;
    }
    const int64_t N = t.shape[0], K = t.shape[1], sr = (N + 127) / 128, sc = (K + 127) / 128;
    std::vector<float> scales(static_cast<size_t>(sr * sc), 0.0f);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < K; ++j) {
        float& s = scales[(i / 128) * sc + j / 128];
        s = std::max(s, std::abs(v[i * K + j]) / 448.0f);
      }
    St codes{t.name, DType::kF8E4M3, t.shape, std::vector<uint8_t>(static_cast<size_t>(N * K))};
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < K; ++j) {
        const float s = scales[(i / 128) * sc + j / 128];
        codes.bytes[i * K + j] = f32_to_f8e4m3(s > 0 ? v[i * K + j] / s : 0.0f);
      }
    out.push_back(std::move(codes));
    out.push_back({it->second, DType::kF32, {sr, sc}, std::vector<uint8_t>(scales.size() * 4)});
    std::memcpy(out.back().bytes.data(), scales.data(), scales.size() * 4);
  }
  std::vector<TensorToWrite> w;
  for (St& t : out)
    if (!edit || edit(t)) w.push_back({t.name, t.dtype, t.shape, {t.bytes.data(), t.bytes.size()}});
  write_safetensors((dir / "model.safetensors").string(), w);
  return dir.string();
}

TEST(QuantizedBadInput, Fp8CheckpointsNameTheTensor) {
  const std::string ok = write_fp8("fp8_ok", {});
  ASSERT_NO_THROW(Decoder{ok});
  const std::string w = "model.layers.0.mlp.experts.1.down_proj.weight";
  const std::string s = w + "_scale_inv";
  auto put_f32 = [](St& t, size_t i, float v) { std::memcpy(t.bytes.data() + 4 * i, &v, 4); };
  struct FpCase {
    std::string name;
    StEdit edit;
    std::vector<std::string> needles;
  };
  const std::vector<FpCase> cases = {
      {"nan_code",
       [&](St& t) {
         if (t.name == w) t.bytes[300] = 0x7f;
         return true;
       },
       {w, "NaN code"}},
      {"inf_scale",
       [&](St& t) {
         if (t.name == s) put_f32(t, 0, INFINITY);
         return true;
       },
       {s, "finite"}},
      {"nan_scale",
       [&](St& t) {
         if (t.name == s) put_f32(t, 0, NAN);
         return true;
       },
       {s, "finite"}},
      {"missing_scale", [&](St& t) { return t.name != s; }, {s, "missing"}},
      {"scale_shape",
       [&](St& t) {
         if (t.name == s) {
           t.shape = {1, 2};
           t.bytes.resize(8);
         }
         return true;
       },
       {s, "shape"}},
      {"scale_dtype",
       [&](St& t) {
         if (t.name == s) t.dtype = DType::kI32;
         return true;
       },
       {s}},
      {"weight_dtype",
       [&](St& t) {
         if (t.name == w) t.dtype = DType::kU8;
         return true;
       },
       {w}},
  };
  for (const FpCase& c : cases) {
    SCOPED_TRACE(c.name);
    expect_load_error(write_fp8("fp8_" + c.name, c.edit), c.needles);
  }
  const auto r = moe::testing::run_moe("eval --model " + test_dir().string() + "/fp8_nan_code --ids 1,2", true);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("moe: [weights]"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace moe
