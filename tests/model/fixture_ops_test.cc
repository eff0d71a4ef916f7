// The ops against the PyTorch golden fixtures (tests/reference/make_model_fixtures.py):
// RoPE tables of every family from its config.json through ModelSpec, and a whole dense
// decoder (Llama with llama3 rope and tied embeddings; Qwen3 with per-head QK-norm) assembled
// from norm / rope / attention / KV cache / matmul: prompt logits, greedy continuation, and
// incremental decode against full recomputation.
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "kernels/matmul.h"
#include "model/attention.h"
#include "model/kv_cache.h"
#include "model/norm.h"
#include "model/rope.h"
#include "model/sampler.h"
#include "spec/model_spec.h"

namespace moe {
namespace {

std::string fixture_dir(const std::string& family) {
  return std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/models/" + family;
}

TEST(FixtureOps, RopeTablesOfEveryFamilyMatchPython) {
  for (const char* family :
       {"llama", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v2_lite", "deepseek_v3", "gpt_oss"}) {
    SCOPED_TRACE(family);
    const ModelSpec spec = load_model_spec(fixture_dir(family));
    const int64_t dim = spec.is_mla ? spec.mla.qk_rope_head_dim : spec.head_dim;
    const RopeTable table = make_rope_table(rope_config_from_spec(spec.rope, dim));
    const SafetensorsFile expected = SafetensorsFile::open(fixture_dir(family) + "/expected.safetensors");
    const std::vector<float> inv_freq = expected.to_f32("rope_inv_freq");
    ASSERT_EQ(table.inv_freq.size(), inv_freq.size());
    for (size_t i = 0; i < inv_freq.size(); ++i) EXPECT_NEAR(table.inv_freq[i], inv_freq[i], 1e-6 * inv_freq[i]);
    EXPECT_NEAR(table.attention_scaling, expected.to_f32("rope_attention_scaling")[0], 1e-6);
    EXPECT_EQ(rope_style_from_spec(spec.rope) == RopeStyle::kInterleaved, spec.is_mla);
  }
}

// A dense Llama-style decoder written with the ops, reading weights by their HF names.
class DenseDecoder {
 public:
  explicit DenseDecoder(const std::string& dir)
      : spec_(load_model_spec(dir)), file_(SafetensorsFile::open(dir + "/model.safetensors")) {
    rope_ = make_rope_table(rope_config_from_spec(spec_.rope, spec_.head_dim));
  }
  const ModelSpec& spec() const { return spec_; }

  // Runs T tokens after the cached ones; returns logits [T, V].
  std::vector<float> forward(const std::vector<int64_t>& ids, KvCache& cache) {
    const int64_t T = static_cast<int64_t>(ids.size()), D = spec_.d_model, V = spec_.vocab;
    const int64_t H = spec_.n_head, Hkv = spec_.n_head_kv, Dh = spec_.head_dim, F = spec_.n_ff;
    const float eps = static_cast<float>(spec_.norm_eps);
    const std::vector<float>& embed = w("model.embed_tokens.weight");
    std::vector<float> h(T * D), x(T * D), q(T * H * Dh), k(T * Hkv * Dh), v(T * Hkv * Dh), o(T * H * Dh);
    std::vector<float> g(T * F), u(T * F);  // [T, F]
    for (int64_t t = 0; t < T; ++t) std::copy_n(embed.data() + ids[t] * D, D, h.data() + t * D);
    const int64_t past = cache.length();
    for (int64_t l = 0; l < spec_.n_layer; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      rms_norm(h.data(), w(p + "input_layernorm.weight").data(), x.data(), T, D, eps);
      linear(x, p + "self_attn.q_proj.weight", q, T, H * Dh, D, false);
      linear(x, p + "self_attn.k_proj.weight", k, T, Hkv * Dh, D, false);
      linear(x, p + "self_attn.v_proj.weight", v, T, Hkv * Dh, D, false);
      if (spec_.qk_norm == QkNorm::kPerHead) {
        rms_norm(q.data(), w(p + "self_attn.q_norm.weight").data(), q.data(), T * H, Dh, eps);
        rms_norm(k.data(), w(p + "self_attn.k_norm.weight").data(), k.data(), T * Hkv, Dh, eps);
      }
      apply_rope(q.data(), T, past, RopeLayout{H, Dh, H * Dh, RopeStyle::kHalfSplit}, rope_);
      apply_rope(k.data(), T, past, RopeLayout{Hkv, Dh, Hkv * Dh, RopeStyle::kHalfSplit}, rope_);
      cache.store(l, k.data(), v.data(), T);
      AttentionTensors at{q.data(), cache.keys(l), cache.values(l), o.data(), T, past + T};
      attention_forward(at, AttentionShape{H, Hkv, Dh, Dh}, AttentionOptions{1.0f / std::sqrt(float(Dh))});
      linear(o, p + "self_attn.o_proj.weight", h, T, D, H * Dh, true);
      rms_norm(h.data(), w(p + "post_attention_layernorm.weight").data(), x.data(), T, D, eps);
      linear(x, p + "mlp.gate_proj.weight", g, T, F, D, false);
      linear(x, p + "mlp.up_proj.weight", u, T, F, D, false);
      for (int64_t i = 0; i < T * F; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
      linear(g, p + "mlp.down_proj.weight", h, T, D, F, true);
    }
    cache.advance(T);
    rms_norm(h.data(), w("model.norm.weight").data(), x.data(), T, D, eps);
    std::vector<float> logits(T * V);  // [T, V]
    linear(x, spec_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight", logits, T, V, D, false);
    return logits;
  }

 private:
  const std::vector<float>& w(const std::string& name) {
    auto it = weights_.find(name);
    if (it == weights_.end()) it = weights_.emplace(name, file_.to_f32(name)).first;
    return it->second;
  }
  void linear(const std::vector<float>& a, const std::string& name, std::vector<float>& c, int64_t m, int64_t n,
              int64_t k, bool accumulate) {
    matmul_nt(a.data(), k, WeightView{w(name).data(), DType::kF32, k}, c.data(), n, MatmulShape{m, n, k}, accumulate);
  }

  ModelSpec spec_;
  SafetensorsFile file_;
  RopeTable rope_;
  std::map<std::string, std::vector<float>> weights_;
};

void check_dense_family(const std::string& family) {
  const std::string dir = fixture_dir(family);
  DenseDecoder model(dir);
  const SafetensorsFile expected = SafetensorsFile::open(dir + "/expected.safetensors");
  auto prompt_span = expected.view<int64_t>("prompt_ids", DType::kI64);
  auto greedy_span = expected.view<int64_t>("greedy_ids", DType::kI64);
  const std::vector<int64_t> prompt(prompt_span.begin(), prompt_span.end());
  const std::vector<float> want_logits = expected.to_f32("logits"), want_decode = expected.to_f32("decode_logits");
  const int64_t V = model.spec().vocab, T = static_cast<int64_t>(prompt.size());
  const int64_t N = static_cast<int64_t>(greedy_span.size());

  KvCache full_cache(model.spec().n_layer, T, model.spec().n_head_kv * model.spec().head_dim,
                     model.spec().n_head_kv * model.spec().head_dim);
  const std::vector<float> logits = model.forward(prompt, full_cache);
  double worst = 0;
  for (size_t i = 0; i < logits.size(); ++i) worst = std::max(worst, double(std::abs(logits[i] - want_logits[i])));
  EXPECT_LT(worst, 1e-4) << family << " prompt logits";

  // Greedy decode with the cache; every step's logits against Python's and the ids identical.
  KvCache cache(model.spec().n_layer, T + N, full_cache.k_row(), full_cache.v_row());
  std::vector<float> step = model.forward(prompt, cache);
  std::vector<float> last(step.end() - V, step.end());
  std::vector<int64_t> generated;
  double worst_decode = 0;
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t j = 0; j < V; ++j)
      worst_decode = std::max(worst_decode, double(std::abs(last[j] - want_decode[i * V + j])));
    generated.push_back(argmax(last.data(), V));
    if (i + 1 < N) last = model.forward({generated.back()}, cache);
  }
  EXPECT_LT(worst_decode, 1e-4) << family << " decode logits";
  EXPECT_EQ(generated, std::vector<int64_t>(greedy_span.begin(), greedy_span.end())) << family;

  // Incremental decode equals one full recomputation over prompt + generated[:-1].
  std::vector<int64_t> seq = prompt;
  seq.insert(seq.end(), generated.begin(), generated.end() - 1);
  KvCache again(model.spec().n_layer, T + N, full_cache.k_row(), full_cache.v_row());
  const std::vector<float> all = model.forward(seq, again);
  KvCache inc(model.spec().n_layer, T + N, full_cache.k_row(), full_cache.v_row());
  model.forward(prompt, inc);
  double worst_inc = 0;
  for (int64_t i = 0; i + 1 < N; ++i) {
    const std::vector<float> row = model.forward({generated[i]}, inc);
    for (int64_t j = 0; j < V; ++j) worst_inc = std::max(worst_inc, double(std::abs(row[j] - all[(T + i) * V + j])));
  }
  // 1e-5 relative to the logit scale: the f32 rounding of two different kernel blockings (m = 1
  // streaming vs m = T GEMM) grows with the magnitude of the activations.
  double scale = 1.0;
  for (float l : all) scale = std::max(scale, double(std::abs(l)));
  EXPECT_LT(worst_inc, 1e-5 * scale) << family << " incremental vs full";
}

TEST(FixtureOps, DenseLlamaMatchesPython) { check_dense_family("llama"); }
TEST(FixtureOps, DenseQwen3MatchesPython) { check_dense_family("qwen3"); }

}  // namespace
}  // namespace moe
