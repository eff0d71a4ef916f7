// MoE blocks of Mixtral, Qwen2-MoE, Qwen3-MoE, DeepSeek-V3, OLMoE and gpt-oss against PyTorch
// fixtures written with Hugging Face semantics (tests/reference/make_moe_fixtures.py): same
// experts chosen, outputs within 1e-5. Weights are read from the fixtures' HF tensor names.
#include <gtest/gtest.h>

#include <string>

#include "io/safetensors.h"
#include "moe/moe_layer.h"
#include "moe/weight_layout.h"
#include "runtime/cpu_features.h"

namespace moe {
namespace {

std::string fixture_path(const std::string& family) {
  return std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/moe/" + family + ".safetensors";
}

// Owns the f32 copies of a fixture's tensors and builds the layer's views over them.
struct Fixture {
  SafetensorsFile file;
  std::map<std::string, std::vector<float>> t;
  int E = 0, K = 0;
  int64_t D = 0, F = 0, Fs = 0;

  explicit Fixture(const std::string& family) : file(SafetensorsFile::open(fixture_path(family))) {
    for (const TensorInfo& info : file.tensors()) {
      if (info.dtype == DType::kF32) t[info.name] = file.to_f32(info.name);
    }
    E = std::stoi(meta("n_expert"));
    K = std::stoi(meta("top_k"));
    D = std::stoll(meta("d_model"));
    F = std::stoll(meta("d_ff"));
    Fs = file.metadata().count("d_ff_shared") ? std::stoll(meta("d_ff_shared")) : 0;
  }
  std::string meta(const std::string& key) const { return file.metadata().at(key); }
  const float* p(const std::string& name) const { return t.at(name).data(); }
  WeightView view(const std::string& name, int64_t ld) const { return {p(name), DType::kF32, ld}; }

  // Per-expert tensors "<prefix>.{e}.<name>.weight" (Mixtral w1/w3/w2, others gate/up/down_proj).
  ExpertWeights per_expert(const std::string& prefix) const {
    std::string names = meta("expert_names");
    const std::string g = names.substr(0, names.find(',')), rest = names.substr(names.find(',') + 1);
    const std::string u = rest.substr(0, rest.find(',')), d = rest.substr(rest.find(',') + 1);
    ExpertWeights w;
    w.d_model = D;
    w.d_ff = F;
    for (int e = 0; e < E; ++e) {
      const std::string base = prefix + "." + std::to_string(e) + ".";
      ExpertMatrices m;
      m.gate = view(base + g + ".weight", D);
      m.up = view(base + u + ".weight", D);
      m.down = view(base + d + ".weight", F);
      w.experts.push_back(m);
    }
    return w;
  }
  ExpertWeights shared(const std::string& prefix) const {
    ExpertWeights w;
    w.d_model = D;
    w.d_ff = Fs;
    w.experts.push_back({view(prefix + ".gate_proj.weight", D), view(prefix + ".up_proj.weight", D),
                         view(prefix + ".down_proj.weight", Fs)});
    return w;
  }
};

void expect_matches(const Fixture& fx, const MoeLayerConfig& cfg, const MoeLayerWeights& w, const std::string& what) {
  MoeLayer layer(cfg, w);
  const std::vector<float>& x = fx.t.at("input");
  const int64_t T = static_cast<int64_t>(x.size()) / fx.D;
  std::vector<float> out(T * fx.D);
  for (KernelPath path : {KernelPath::kDecode, KernelPath::kPrefill}) {
    RunOptions ro;
    ro.experts.path = path;
    ro.experts.prefill_row_block = 2;
    layer.forward(x.data(), T, out.data(), ro);
    const auto ids = fx.file.view<int32_t>("expected_ids", DType::kI32);
    ASSERT_EQ(ids.size(), layer.last_plan().expert_ids.size());
    for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(layer.last_plan().expert_ids[i], ids[i]) << what << " slot " << i;
    const std::vector<float>& want = fx.t.at("expected_output");
    for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(out[i], want[i], 1e-5) << what << " element " << i;
  }
}

MoeLayerConfig base_config(const Fixture& fx) {
  MoeLayerConfig cfg;
  cfg.d_model = fx.D;
  cfg.router.n_expert = fx.E;
  cfg.router.top_k = fx.K;
  cfg.router.norm_topk_prob = fx.file.metadata().count("norm_topk_prob") && fx.meta("norm_topk_prob") == "1";
  return cfg;
}

class MoeFixtures : public ::testing::Test {
 protected:
  void SetUp() override { prev_ = set_isa_override(Isa::kAvx512); }  // f32 weights: no bf16-dot rounding anyway
  void TearDown() override { set_isa_override(prev_); }
  Isa prev_ = Isa::kScalar;
};

TEST_F(MoeFixtures, Mixtral) {
  Fixture fx("mixtral");
  MoeLayerWeights w;
  w.router.weight = fx.view("gate.weight", fx.D);
  w.experts = fx.per_expert("experts");
  MoeLayerConfig cfg = base_config(fx);
  cfg.router.selection = Selection::kSoftmaxOverTopK;
  expect_matches(fx, cfg, w, "mixtral softmax over top-k");
  cfg.router.selection = Selection::kTopK;  // softmax, top-k, renormalize: the same numbers
  expect_matches(fx, cfg, w, "mixtral softmax + renormalize");
}

TEST_F(MoeFixtures, Qwen2MoeWithGatedSharedExpert) {
  Fixture fx("qwen2_moe");
  MoeLayerWeights w;
  w.router.weight = fx.view("gate.weight", fx.D);
  w.experts = fx.per_expert("experts");
  w.shared = fx.shared("shared_expert");
  w.shared_gate = fx.view("shared_expert_gate.weight", fx.D);
  expect_matches(fx, base_config(fx), w, "qwen2_moe");
}

TEST_F(MoeFixtures, Qwen3Moe) {
  Fixture fx("qwen3_moe");
  MoeLayerWeights w;
  w.router.weight = fx.view("gate.weight", fx.D);
  w.experts = fx.per_expert("experts");
  expect_matches(fx, base_config(fx), w, "qwen3_moe");
}

TEST_F(MoeFixtures, Olmoe) {
  Fixture fx("olmoe");
  MoeLayerWeights w;
  w.router.weight = fx.view("gate.weight", fx.D);
  w.experts = fx.per_expert("experts");
  expect_matches(fx, base_config(fx), w, "olmoe");
}

TEST_F(MoeFixtures, DeepseekV3GroupsBiasScaling) {
  Fixture fx("deepseek_v3");
  MoeLayerWeights w;
  w.router.weight = fx.view("gate.weight", fx.D);
  w.router.correction_bias = fx.p("gate.e_score_correction_bias");
  w.experts = fx.per_expert("experts");
  w.shared = fx.shared("shared_experts");
  MoeLayerConfig cfg = base_config(fx);
  cfg.router.scoring = ScoringFunc::kSigmoid;
  cfg.router.n_group = std::stoi(fx.meta("n_group"));
  cfg.router.topk_group = std::stoi(fx.meta("topk_group"));
  cfg.router.group_score = GroupScore::kTop2Sum;
  cfg.router.use_correction_bias = true;
  cfg.router.routed_scaling_factor = std::stof(fx.meta("routed_scaling_factor"));
  expect_matches(fx, cfg, w, "deepseek_v3");
}

TEST_F(MoeFixtures, GptOssClampedSwigluWithBiases) {
  Fixture fx("gpt_oss");
  const int E = fx.E;
  const int64_t D = fx.D, F = fx.F;
  std::vector<float> gate(E * F * D), up(E * F * D), down(E * D * F), gb(E * F), ub(E * F);  // [E, F, D] ...
  split_interleaved_gate_up(fx.p("experts.gate_up_proj"), fx.p("experts.gate_up_proj_bias"), E, D, F, gate.data(),
                            up.data(), gb.data(), ub.data());
  transpose_experts(fx.p("experts.down_proj"), E, F, D, down.data());
  MoeLayerWeights w;
  w.router.weight = fx.view("router.weight", D);
  w.router.bias = fx.p("router.bias");
  w.experts = ExpertWeights::stacked(E, D, F, DType::kF32, gate.data(), up.data(), down.data(), gb.data(), ub.data(),
                                     fx.p("experts.down_proj_bias"));
  MoeLayerConfig cfg = base_config(fx);
  cfg.router.selection = Selection::kSoftmaxOverTopK;
  cfg.activation = {GluKind::kSwiGLUOai, std::stof(fx.meta("alpha")), std::stof(fx.meta("limit"))};
  expect_matches(fx, cfg, w, "gpt_oss");
}

}  // namespace
}  // namespace moe
