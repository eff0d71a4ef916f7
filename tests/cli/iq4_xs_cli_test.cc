// IQ4_XS end to end without llama.cpp (tests/cli/gguf_llamacpp_test.cc holds the comparisons with it): a random
// Qwen3-MoE checkpoint at 256-wide sizes through `moe quantize --type IQ4_XS` holds IQ4_XS matrices (the output
// Q6_K, norms and router F32); `moe eval` on it stays within the 4-bit quantization noise of the F32 file's
// logits; `moe run` and `moe bench model` run on it (bench rates prefill against the int8 dot peak of IQ4_XS
// experts); and the file cut inside an IQ4_XS tensor, or with an IQ4_XS tensor whose rows are not 256-blocks,
// is `moe: [gguf]` naming the file and the tensor, exit 1.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/gguf_test_configs.h"
#include "cli/moe_process.h"
#include "common/random_checkpoint.h"
#include "io/gguf.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class Iq4XsCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("moe_iq4_xs_cli_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    json c = testing::fixture_config("qwen3_moe");
    c["vocab_size"] = 512;
    c["hidden_size"] = 256;
    c["num_attention_heads"] = 4;
    c["num_key_value_heads"] = 2;
    c["head_dim"] = 64;
    c["intermediate_size"] = 512;
    c["moe_intermediate_size"] = 256;
    c["torch_dtype"] = "float32";
    testing::write_random_checkpoint((dir_ / "hf").string(), c, 91, /*confident=*/true);
    for (const char* type : {"F32", "IQ4_XS"}) {
      const auto q = testing::run_moe(
          "quantize --no-progress --model " + (dir_ / "hf").string() + " --out " + gguf(type) + " --type " + type,
          true);
      ASSERT_EQ(q.code, 0) << q.out;
    }
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string gguf(const std::string& type) { return (dir_ / ("m_" + type + ".gguf")).string(); }

  static fs::path dir_;
};
fs::path Iq4XsCli::dir_;

TEST_F(Iq4XsCli, QuantizeWritesIq4XsMatrices) {
  const GgufFile f = GgufFile::open(gguf("IQ4_XS"));
  int iq4 = 0;
  for (const GgufTensor& t : f.tensors()) {
    const std::string type = ggml_type_info(t.ggml_type)->name;
    if (t.name == "output.weight") {
      EXPECT_EQ(type, "Q6_K");
    }
    if (t.name.find("_exps.") != std::string::npos || t.name.find("attn_q.") != std::string::npos) {
      EXPECT_EQ(type, "IQ4_XS") << t.name;
      EXPECT_EQ(t.nbytes, static_cast<uint64_t>(t.numel() / 256 * 136)) << t.name;
    }
    iq4 += type == "IQ4_XS";
  }
  EXPECT_GT(iq4, 6);
  EXPECT_EQ(*f.opt_int("general.file_type"), 30);  // LLAMA_FTYPE_MOSTLY_IQ4_XS
}

// `inspect FILE.gguf` counts the bytes as the file stores them: the IQ4_XS file's experts are 136 / 256 bytes
// per weight, its head Q6_K, and the weight bytes are the file's tensors (the F32 file's are 4 per weight).
TEST_F(Iq4XsCli, InspectCountsTheFileBytes) {
  json m[2];
  int i = 0;
  for (const char* type : {"F32", "IQ4_XS"}) {
    const auto r = testing::run_moe("--json inspect " + gguf(type));
    ASSERT_EQ(r.code, 0) << r.out;
    m[i++] = json::parse(r.out)["models"][0];
  }
  EXPECT_EQ(m[0]["total_params"], m[1]["total_params"]);
  EXPECT_EQ(m[0]["activated_params"], m[1]["activated_params"]);
  EXPECT_EQ(m[0]["file_dtypes"], json({{"F32", m[0]["n_tensors"]}}));
  EXPECT_TRUE(m[1]["file_dtypes"].contains("IQ4_XS") && m[1]["file_dtypes"].contains("Q6_K")) << m[1]["file_dtypes"];
  const json& experts = m[1]["breakdown"]["routed_expert"];
  EXPECT_EQ(experts["bytes"].get<double>(), experts["params"].get<double>() / 256 * 136);
  EXPECT_EQ(m[0]["breakdown"]["routed_expert"]["bytes"].get<double>(), 4 * experts["params"].get<double>());
  for (int k = 0; k < 2; ++k) {
    const double file = double(fs::file_size(gguf(k ? "IQ4_XS" : "F32")));
    const double counted = m[k]["weights"]["checkpoint_bytes"].get<double>();
    EXPECT_LE(counted, file);
    EXPECT_GE(counted, 0.8 * file) << "the tensors' bytes are most of the file (the rest is its header)";
  }
  const auto text = testing::run_moe("inspect " + gguf("IQ4_XS"));
  EXPECT_NE(text.out.find("storage       as the file stores it:"), std::string::npos) << text.out;
}

TEST_F(Iq4XsCli, EvalIsWithinQuantizationNoiseOfF32) {
  const std::string ids = "5,17,301,42,99,7,256,3,480,11";
  std::vector<float> logits[2];
  int i = 0;
  for (const char* type : {"F32", "IQ4_XS"}) {
    const std::string out = gguf(type) + ".logits";
    const auto e = testing::run_moe("eval --model " + gguf(type) + " --ids " + ids + " --logits-out " + out, true);
    ASSERT_EQ(e.code, 0) << e.out;
    logits[i++] = testing::read_f32(out);
  }
  ASSERT_EQ(logits[0].size(), logits[1].size());
  ASSERT_FALSE(logits[0].empty());
  double diff = 0, size = 0;
  for (size_t k = 0; k < logits[0].size(); ++k) {
    ASSERT_TRUE(std::isfinite(logits[1][k]));
    diff += (double(logits[1][k]) - logits[0][k]) * (double(logits[1][k]) - logits[0][k]);
    size += double(logits[0][k]) * logits[0][k];
  }
  std::printf("[ iq4_xs ] rms |IQ4_XS - F32| logits: %.2f%% of rms logit\n", 100 * std::sqrt(diff / size));
  EXPECT_LT(std::sqrt(diff / size), 0.15) << "IQ4_XS logits far from the F32 file's";
  EXPECT_GT(std::sqrt(diff / size), 1e-4) << "IQ4_XS logits equal F32's: not quantized?";
}

TEST_F(Iq4XsCli, RunAndBenchModel) {
  const auto r = testing::run_moe("--json run --no-ceiling --quiet --temperature 0 --max-new-tokens 8 --model " +
                                  gguf("IQ4_XS") + " --prompt-ids 5,17,301");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json::parse(r.out)["generated_ids"].size(), 8u);
  const auto b = testing::run_moe("--json bench model --model " + gguf("IQ4_XS") +
                                  " --prompt 8 --decode 2 --repetitions 1 --no-warmup");
  ASSERT_EQ(b.code, 0) << b.out;
  const json j = json::parse(b.out);
  EXPECT_EQ(j["matmul_peak_stored_dtype"], "IQ4_XS") << b.out;
  EXPECT_GT(j["decode_tokens_per_s"].get<double>(), 0);
}

// `moe eval` on a broken copy: exit 1, "moe: [gguf]", the file and the tensor named.
void expect_gguf_error(const std::string& path, const std::string& tensor, const std::string& what) {
  const auto e = testing::run_moe("eval --model " + path + " --ids 1,2", true);
  EXPECT_EQ(e.code, 1) << e.out;
  EXPECT_NE(e.out.find("moe: [gguf]"), std::string::npos) << e.out;
  EXPECT_NE(e.out.find(path), std::string::npos) << e.out;
  EXPECT_NE(e.out.find(tensor), std::string::npos) << e.out;
  EXPECT_NE(e.out.find(what), std::string::npos) << e.out;
}

TEST_F(Iq4XsCli, TruncatedOrMisshapenIq4XsTensorIsAnError) {
  const GgufFile f = GgufFile::open(gguf("IQ4_XS"));
  const GgufTensor* last = nullptr;  // the IQ4_XS tensor whose data comes last
  for (const GgufTensor& t : f.tensors())
    if (t.ggml_type == 23 && (!last || t.offset > last->offset)) last = &t;
  ASSERT_NE(last, nullptr);
  std::ifstream in(gguf("IQ4_XS"), std::ios::binary);
  std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  const std::string cut = (dir_ / "cut.gguf").string();
  const size_t keep = size_t(f.data_offset() + last->offset + last->nbytes / 2);  // half a tensor
  std::ofstream(cut, std::ios::binary).write(bytes.data(), std::streamsize(keep));
  expect_gguf_error(cut, last->name, "runs past");

  // A row of 64 elements in an IQ4_XS tensor: ne[0] patched from 256 to 64 in the header.
  std::vector<char> bad = bytes;
  const std::string name = last->name;
  const size_t at = std::string(bad.begin(), bad.end()).find(name) + name.size() + 4;  // n_dims, then ne[0]
  int64_t ne0 = 0;
  std::memcpy(&ne0, bad.data() + at, 8);
  ASSERT_EQ(ne0 % 256, 0);
  ne0 = 64;
  std::memcpy(bad.data() + at, &ne0, 8);
  const std::string rows = (dir_ / "rows.gguf").string();
  std::ofstream(rows, std::ios::binary).write(bad.data(), std::streamsize(bad.size()));
  expect_gguf_error(rows, name, "IQ4_XS");
}

}  // namespace
}  // namespace moe
