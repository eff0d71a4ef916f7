// DeepSeek-V4 against its PyTorch reference (tests/reference/deepseek_v4_reference.py): the fixtures in the
// official and the transformers layout (the same weights) give the reference's logits and per-layer residual
// streams within 1e-4; decoding token by token, or prefilling in uneven chunks, gives the logits of one
// prefill; the greedy continuation matches; bad checkpoints fail with errors that name what is wrong.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "model/decoder.h"
#include "model/deepseek_v4.h"
#include "model/deepseek_v4_layer.h"
#include "runtime/thread_pool.h"
#include "spec/accounting.h"
#include "spec/tensor_registry.h"
#include "util/error.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& layout) {
  std::string dir = MOE_TEST_DATA_DIR;
  dir.append("/reference/fixtures/deepseek_v4/").append(layout);
  return dir;
}

struct Expected {
  std::vector<int32_t> prompt, greedy;
  std::vector<float> logits, decode, hidden;  // [T, V], [N, V], [L + 1, T, n D]
};

Expected expected(const std::string& dir) {
  const SafetensorsFile f = SafetensorsFile::open(dir + "/expected.safetensors");
  Expected e;
  for (int64_t v : f.view<int64_t>("prompt_ids", DType::kI64)) e.prompt.push_back(static_cast<int32_t>(v));
  for (int64_t v : f.view<int64_t>("greedy_ids", DType::kI64)) e.greedy.push_back(static_cast<int32_t>(v));
  e.logits = f.to_f32("logits");
  e.decode = f.to_f32("decode_logits");
  e.hidden = f.to_f32("hidden");
  return e;
}

// max |a - b| over n values, relative to max(1, max |b|).
double rel_err(const float* a, const float* b, int64_t n) {
  double scale = 1, worst = 0;
  for (int64_t i = 0; i < n; ++i) scale = std::max(scale, double(std::abs(b[i])));
  for (int64_t i = 0; i < n; ++i) {
    const double d = std::abs(double(a[i]) - b[i]);
    if (!(d <= worst)) worst = d;
  }
  return worst / scale;
}

class DeepseekV4Fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(DeepseekV4Fixture, PrefillMatchesReferenceLayerByLayer) {
  DeepseekV4Model model(fixture(GetParam()));
  EXPECT_EQ(model.hf_layout(), GetParam() == "hf");
  const Expected e = expected(fixture(GetParam()));
  const ModelSpec& s = model.spec();
  const int64_t T = static_cast<int64_t>(e.prompt.size()), V = s.vocab, W = s.dsv4.hc_mult * s.d_model;
  ASSERT_EQ(static_cast<int64_t>(e.hidden.size()), (s.n_layer + 1) * T * W);
  int64_t tapped = 0;
  const ForwardTap tap = [&](int64_t layer, std::string_view name, const TapView& v) {
    if (name != tap::kEmbed && name != tap::kHidden) return;
    ASSERT_EQ(v.rows, T);
    ASSERT_EQ(v.cols, W);
    const int64_t slot = layer == kModelTensor ? 0 : layer + 1;
    EXPECT_LT(rel_err(v.data, e.hidden.data() + slot * T * W, T * W), 1e-4) << name << " of layer " << layer;
    ++tapped;
  };
  Dsv4Cache cache = model.make_cache();
  std::vector<float> logits(static_cast<size_t>(T * V));
  model.forward(e.prompt.data(), T, cache, logits.data(), tap);
  EXPECT_EQ(tapped, s.n_layer + 1);
  EXPECT_LT(rel_err(logits.data(), e.logits.data(), T * V), 1e-4);
  EXPECT_EQ(cache.length(), T);
}

TEST_P(DeepseekV4Fixture, DecodeTokenByTokenMatchesReferenceAndGreedy) {
  DeepseekV4Model model(fixture(GetParam()));
  const Expected e = expected(fixture(GetParam()));
  const int64_t T = static_cast<int64_t>(e.prompt.size()), V = model.spec().vocab;
  const int64_t N = static_cast<int64_t>(e.greedy.size());
  Dsv4Cache cache = model.make_cache();
  std::vector<float> logits(static_cast<size_t>(T * V));
  model.forward(e.prompt.data(), T, cache, logits.data());
  std::vector<float> step(logits.end() - V, logits.end());
  for (int64_t i = 0; i < N; ++i) {
    EXPECT_LT(rel_err(step.data(), e.decode.data() + i * V, V), 1e-4) << "step " << i;
    EXPECT_EQ(std::max_element(step.begin(), step.end()) - step.begin(), e.greedy[i]) << "step " << i;
    model.forward(&e.greedy[i], 1, cache, step.data());
  }
}

// Feeding the prompt one token at a time, or in chunks that end inside compressor windows, gives the
// logits of the single prefill: the cache carries the window rows and the compressors' pending windows.
TEST_P(DeepseekV4Fixture, ChunkedAndTokenByTokenPrefillEqualOnePrefill) {
  DeepseekV4Model model(fixture(GetParam()));
  const Expected e = expected(fixture(GetParam()));
  const int64_t T = static_cast<int64_t>(e.prompt.size()), V = model.spec().vocab;
  Dsv4Cache whole = model.make_cache();
  std::vector<float> ref(static_cast<size_t>(T * V));
  model.forward(e.prompt.data(), T, whole, ref.data());
  for (const std::vector<int64_t>& cuts : {std::vector<int64_t>{1}, std::vector<int64_t>{5, 13, 27, 30}}) {
    Dsv4Cache cache = model.make_cache();
    std::vector<float> got(static_cast<size_t>(T * V));
    for (int64_t t = 0; t < T;) {
      int64_t n = cuts.size() == 1 ? 1 : T - t;
      for (int64_t c : cuts)
        if (c > t) {
          n = c - t;
          break;
        }
      model.forward(e.prompt.data() + t, n, cache, got.data() + t * V);
      t += n;
    }
    EXPECT_LT(rel_err(got.data(), ref.data(), T * V), 1e-5) << cuts.size() << " cuts";
  }
  Dsv4Cache last = model.make_cache();  // only the last position's logits: the same row
  std::vector<float> row(static_cast<size_t>(V));
  model.forward(e.prompt.data(), T, last, row.data(), {}, nullptr, true);
  EXPECT_LT(rel_err(row.data(), ref.data() + (T - 1) * V, V), 1e-6);
  EXPECT_EQ(last.length(), T);
}

INSTANTIATE_TEST_SUITE_P(Layouts, DeepseekV4Fixture, ::testing::Values("official", "hf"));

// The indexer's top-k against a sort by (score descending, entry ascending), with many ties (scores drawn from
// a few values) and without, at odd sizes.
TEST(DeepseekV4, TopEntriesKeepTheHighestAndTheLowerOfTies) {
  std::mt19937 rng(3);
  std::vector<float> values;
  std::vector<int32_t> got;
  for (int64_t n : {1, 2, 7, 64, 513, 4099})
    for (int levels : {2, 5, 0}) {
      std::vector<float> score(static_cast<size_t>(n));
      for (float& v : score)
        v = levels ? static_cast<float>(rng() % levels) : std::uniform_real_distribution<float>(-1, 1)(rng);
      for (int64_t k : {int64_t{1}, (n + 2) / 3, n}) {
        std::vector<int32_t> want(static_cast<size_t>(n));
        std::iota(want.begin(), want.end(), 0);
        std::sort(want.begin(), want.end(),
                  [&](int32_t a, int32_t b) { return score[a] > score[b] || (score[a] == score[b] && a < b); });
        want.resize(static_cast<size_t>(k));
        std::sort(want.begin(), want.end());
        dsv4::top_entries(score.data(), n, k, values, got);
        EXPECT_EQ(got, want) << "n " << n << " k " << k << " levels " << levels;
      }
    }
  // Long rows select among the values above a bar drawn from a strided sample; here the sampled entries are the
  // 1,024 highest, fewer than k: the selection falls back to every value.
  const int64_t n = 65536, k = 2000;
  std::vector<float> score(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) score[j] = static_cast<float>(j % 64 == 0 ? 2.0 : (j % 997) / 997.0);
  std::vector<int32_t> want(static_cast<size_t>(n));
  std::iota(want.begin(), want.end(), 0);
  std::stable_sort(want.begin(), want.end(), [&](int32_t a, int32_t b) { return score[a] > score[b]; });
  want.resize(static_cast<size_t>(k));
  std::sort(want.begin(), want.end());
  dsv4::top_entries(score.data(), n, k, values, got);
  EXPECT_EQ(got, want);
}

// Bit-identical logits ([T, V] each), else how many differ and where the first is (a whole-vector
// EXPECT_EQ prints thousands of values and hides that).
void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b, int64_t V) {
  ASSERT_EQ(a.size(), b.size());
  size_t differ = 0, first = a.size();
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) == 0) continue;
    if (differ++ == 0) first = i;
  }
  EXPECT_EQ(differ, 0u) << "first at token " << first / V << ", id " << first % V << ": " << a[first] << " vs "
                        << b[first] << " (" << num_threads() << " threads)";
}

TEST(DeepseekV4, BothLayoutsGiveTheSameLogits) {
  DeepseekV4Model a(fixture("official")), b(fixture("hf"));
  const Expected e = expected(fixture("official"));
  const int64_t T = static_cast<int64_t>(e.prompt.size()), V = a.spec().vocab;
  std::vector<float> la(static_cast<size_t>(T * V)), lb(la.size());
  Dsv4Cache ca = a.make_cache(), cb = b.make_cache();
  a.forward(e.prompt.data(), T, ca, la.data());
  b.forward(e.prompt.data(), T, cb, lb.data());
  expect_same_bits(la, lb, V);
}

// A copy of a fixture with config.json edited or one tensor dropped.
std::string broken_copy(const std::string& layout, const std::string& tag, const nlohmann::json& config_patch,
                        const std::string& drop = "") {
  const fs::path dir = fs::temp_directory_path() / ("moe_dsv4_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(fixture(layout) + "/config.json"));
  cfg.merge_patch(config_patch);
  std::ofstream(dir / "config.json") << cfg.dump(2);
  const SafetensorsFile src = SafetensorsFile::open(fixture(layout) + "/model.safetensors");
  std::vector<TensorToWrite> keep;
  for (const TensorInfo& t : src.tensors())
    if (t.name != drop) keep.push_back({t.name, t.dtype, t.shape, src.bytes(t.name)});
  write_safetensors((dir / "model.safetensors").string(), keep);
  return dir.string();
}

void expect_error(const std::string& dir, const std::vector<std::string>& parts) {
  try {
    DeepseekV4Model model(dir);
    ADD_FAILURE() << "no error for " << dir;
  } catch (const Error& err) {
    for (const std::string& p : parts) EXPECT_NE(std::string(err.what()).find(p), std::string::npos) << err.what();
  }
  fs::remove_all(dir);
}

TEST(DeepseekV4, BadCheckpointsAreNamed) {
  expect_error(broken_copy("official", "drop", nlohmann::json::object(), "layers.1.attn.indexer.wq_b.weight"),
               {"missing tensor layers.1.attn.indexer.wq_b.weight"});
  expect_error(
      broken_copy("hf", "drop_hf", nlohmann::json::object(), "model.layers.2.self_attn.compressor.kv_proj.weight"),
      {"missing tensor model.layers.2.self_attn.compressor.kv_proj.weight"});
  expect_error(broken_copy("official", "ratios", {{"compress_ratios", {0, 4, 8}}}),
               {"compress_ratios", "has 3 entries", "expected num_hidden_layers + num_nextn_predict_layers = 4"});
  // A ratio that changes a compressor's shape: layer 2's ape is [8, 16], ratio 4 would need [4, 32].
  expect_error(broken_copy("official", "shape", {{"compress_ratios", {0, 4, 4, 4}}}), {"layers.2.attn.compressor.ape"});
  // fp8 in the config, f32 in the file: named.
  expect_error(broken_copy("official", "fp8", {{"quantization_config", {{"quant_method", "fp8"}}}}),
               {"layers.0.attn.wq_a.weight is stored as F32, expected F8_E4M3"});
  expect_error(broken_copy("hf", "fp8_hf", {{"quantization_config", {{"quant_method", "fp8"}}}}), {"official layout"});
  expect_error(broken_copy("official", "topk0", {{"index_topk", 0}}), {"index_topk", "must be at least 1"});
}

// The hf fixture's config as transformers' DeepseekV4Config.save_pretrained writes it: layer_types with
// compress_rates instead of compress_ratios, mlp_layer_types instead of num_hash_layers, partial_rotary_factor
// instead of qk_rope_head_dim, rope_parameters nested per rope type (main, compress) instead of rope_scaling.
nlohmann::json transformers_config_patch() {
  const nlohmann::json compress = {{"rope_type", "yarn"},
                                   {"factor", 4},
                                   {"original_max_position_embeddings", 16},
                                   {"beta_fast", 32},
                                   {"beta_slow", 1},
                                   {"attention_factor", 1.0},
                                   {"rope_theta", 160000},
                                   {"partial_rotary_factor", 0.5}};
  return {{"compress_ratios", nullptr},
          {"num_hash_layers", nullptr},
          {"qk_rope_head_dim", nullptr},
          {"rope_scaling", nullptr},
          {"topk_method", nullptr},
          {"layer_types",
           {"sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention",
            "compressed_sparse_attention"}},
          {"compress_rates", {{"compressed_sparse_attention", 4}, {"heavily_compressed_attention", 8}}},
          {"mlp_layer_types", {"hash_moe", "hash_moe", "moe", "moe"}},
          {"partial_rotary_factor", 0.5},
          {"rope_parameters",
           {{"main", {{"rope_type", "default"}, {"rope_theta", 10000}, {"partial_rotary_factor", 0.5}}},
            {"compress", compress}}},
          {"output_router_logits", false},
          {"router_aux_loss_coef", 0.001},
          {"router_jitter_noise", 0.0},
          {"initializer_range", 0.02},
          {"use_cache", true},
          {"pad_token_id", nullptr},
          {"mlp_bias", false},
          {"attention_dropout", 0.0}};
}

TEST(DeepseekV4, TransformersConfigGivesTheSameModel) {
  const std::string dir = broken_copy("hf", "transformers_config", transformers_config_patch());
  DeepseekV4Model ours(fixture("hf")), theirs(dir);
  const ModelSpec &a = ours.spec(), &b = theirs.spec();
  EXPECT_EQ(b.dsv4.compress_ratios, a.dsv4.compress_ratios);
  EXPECT_EQ(b.dsv4.num_hash_layers, 2);
  EXPECT_EQ(b.mla.qk_rope_head_dim, 8);
  EXPECT_EQ(b.rope.theta, a.rope.theta);
  EXPECT_EQ(b.dsv4.compress_rope_theta, a.dsv4.compress_rope_theta);
  EXPECT_EQ(b.rope.type, RopeType::kYarn);
  EXPECT_EQ(b.rope.factor, a.rope.factor);
  EXPECT_EQ(b.rope.original_max_position, a.rope.original_max_position);
  EXPECT_EQ(b.rope.beta_fast, a.rope.beta_fast);
  EXPECT_EQ(b.rope.beta_slow, a.rope.beta_slow);
  EXPECT_TRUE(b.unknown_keys.empty()) << fmt::format("{}", fmt::join(b.unknown_keys, ", "));
  const Expected e = expected(fixture("hf"));
  const int64_t T = static_cast<int64_t>(e.prompt.size()), V = a.vocab;
  std::vector<float> la(static_cast<size_t>(T * V)), lb(la.size());
  Dsv4Cache ca = ours.make_cache(), cb = theirs.make_cache();
  ours.forward(e.prompt.data(), T, ca, la.data());
  theirs.forward(e.prompt.data(), T, cb, lb.data());
  expect_same_bits(la, lb, V);
  fs::remove_all(dir);
  // Its errors name the field.
  nlohmann::json bad = transformers_config_patch();
  bad["layer_types"][2] = "full_attention";
  expect_error(broken_copy("hf", "tf_type", bad), {"layer_types[2]", "full_attention"});
  bad = transformers_config_patch();
  bad["mlp_layer_types"] = {"hash_moe", "moe", "hash_moe", "moe"};
  expect_error(broken_copy("hf", "tf_hash", bad), {"mlp_layer_types[2]", "hash_moe after a moe layer"});
  bad = transformers_config_patch();
  bad["layer_types"] = {"sliding_attention"};
  expect_error(broken_copy("hf", "tf_len", bad), {"layer_types", "has 1 entries"});
}

// FP8 linears with E8M0 128x128 block scales and FP4 (E2M1) experts with E8M0 scales per 32, as the released
// checkpoints store them; the reference runs the dequantised weights. The FP8 matrices here are narrower than the
// 128-wide FP8 row format and are widened to f32 at load. With the FP4 experts widened too, every weight is
// exactly the reference's: 1e-4 (a wrong nibble order or scale is far outside it).
TEST(DeepseekV4, QuantisedCheckpointDecodesExactly) {
  Dsv4Options exact;
  exact.fp4_as_f32 = true;
  DeepseekV4Model model(fixture("quantised"), exact);
  EXPECT_TRUE(model.spec().quant.experts_fp4);
  const Expected e = expected(fixture("quantised"));
  const int64_t T = static_cast<int64_t>(e.prompt.size()), V = model.spec().vocab;
  Dsv4Cache cache = model.make_cache();
  std::vector<float> logits(static_cast<size_t>(T * V));
  model.forward(e.prompt.data(), T, cache, logits.data());
  EXPECT_LT(rel_err(logits.data(), e.logits.data(), T * V), 1e-4);
}

// As the engine runs them, the FP4 experts are MXFP4 with 8-bit activations: after the first block (hash-routed,
// so no routing choice can flip) the streams are within that rounding of the reference (measured 0.7%), and
// the logits of the 4-block model within 10% of their scale (measured 4.5%: later routers see the rounding).
TEST(DeepseekV4, QuantisedCheckpointRunsOnMxfp4Kernels) {
  DeepseekV4Model model(fixture("quantised"));
  const Expected e = expected(fixture("quantised"));
  const int64_t T = static_cast<int64_t>(e.prompt.size()), V = model.spec().vocab;
  const int64_t W = model.spec().dsv4.hc_mult * model.spec().d_model;
  double first_block = -1;
  const ForwardTap tap = [&](int64_t layer, std::string_view name, const TapView& v) {
    if (name == tap::kHidden && layer == 0) first_block = rel_err(v.data, e.hidden.data() + T * W, T * W);
  };
  Dsv4Cache cache = model.make_cache();
  std::vector<float> logits(static_cast<size_t>(T * V));
  model.forward(e.prompt.data(), T, cache, logits.data(), tap);
  EXPECT_GT(first_block, 0);  // really rounded: not the widened path
  EXPECT_LT(first_block, 2e-2);
  EXPECT_LT(rel_err(logits.data(), e.logits.data(), T * V), 0.1);
}

// The K=V rows the engine keeps (window + compressed entries + indexer keys) are what the accounting's KV
// figure for V4 counts, at every length (f32 here: 4 bytes an element).
TEST(DeepseekV4, CacheHoldsWhatTheAccountingCounts) {
  DeepseekV4Model model(fixture("official"));
  const Expected e = expected(fixture("official"));
  const TensorRegistry reg = build_registry(model.spec());
  Dsv4Cache cache = model.make_cache();
  std::vector<float> logits(static_cast<size_t>(e.prompt.size() * model.spec().vocab));
  const uint64_t pending = cache.pending_bytes();
  EXPECT_GT(pending, 0u);
  for (int32_t id : e.prompt) {
    model.forward(&id, 1, cache, logits.data());
    Workload w;
    w.context = cache.length();
    w.kv_bytes_per_elem = 4;
    EXPECT_EQ(static_cast<double>(cache.kv_bytes()), compute_cost(model.spec(), reg, w).kv.bytes_at_context)
        << "at " << cache.length() << " tokens";
    EXPECT_EQ(cache.pending_bytes(), pending);
  }
}

// The cache in 16 bits (f16, bf16): exactly the accounting's 2-byte rows at every length; the logits within
// the rounding's reach of the f32 reference (and not equal to the f32 cache's); feeding the prompt token by token
// gives the logits of one prefill within the same reach (a forward's own K=V rows are rounded as the cache will
// hold them, but a last-bit difference of the batched projections can still round an element the other way).
TEST(DeepseekV4, SixteenBitCacheHoldsTheAccountingsBytesAndStaysNearTheReference) {
  DeepseekV4Model model(fixture("official"));
  const Expected e = expected(fixture("official"));
  const TensorRegistry reg = build_registry(model.spec());
  const int64_t T = static_cast<int64_t>(e.prompt.size()), V = model.spec().vocab;
  Dsv4Cache f32 = model.make_cache();
  std::vector<float> exact(static_cast<size_t>(T * V));
  model.forward(e.prompt.data(), T, f32, exact.data());
  for (const auto& [type, tol] : {std::pair{DType::kF16, 2e-3}, std::pair{DType::kBF16, 2e-2}}) {
    Dsv4Cache whole = model.make_cache(type);
    EXPECT_EQ(whole.kv_type(), type);
    std::vector<float> logits(static_cast<size_t>(T * V)), step(logits.size());
    model.forward(e.prompt.data(), T, whole, logits.data());
    EXPECT_LT(rel_err(logits.data(), e.logits.data(), T * V), tol) << dtype_name(type);
    std::printf("%s cache: logits within %.2e of the reference\n", std::string(dtype_name(type)).c_str(),
                rel_err(logits.data(), e.logits.data(), T * V));
    EXPECT_GT(rel_err(logits.data(), exact.data(), T * V), 0.0) << dtype_name(type) << ": as the f32 cache";
    Dsv4Cache cache = model.make_cache(type);
    for (int64_t t = 0; t < T; ++t) {
      model.forward(&e.prompt[t], 1, cache, step.data() + t * V);
      Workload w;
      w.context = cache.length();
      w.kv_bytes_per_elem = 2;
      EXPECT_EQ(static_cast<double>(cache.kv_bytes()), compute_cost(model.spec(), reg, w).kv.bytes_at_context)
          << dtype_name(type) << " at " << cache.length() << " tokens";
    }
    EXPECT_LT(rel_err(step.data(), logits.data(), T * V), tol) << dtype_name(type);
    EXPECT_EQ(cache.pending_bytes(), f32.pending_bytes());
  }
  EXPECT_THROW(model.make_cache(DType::kQ8_0), Error);
}

// The same at a long context: 4096 tokens (max_position_embeddings), 512 windows of the sliding window,
// 1024 CSA entries and 512 HCA entries per compressed layer, compared at every length.
TEST(DeepseekV4, CacheHoldsWhatTheAccountingCountsAtALongContext) {
  DeepseekV4Model model(fixture("official"));
  const TensorRegistry reg = build_registry(model.spec());
  Dsv4Cache cache = model.make_cache();
  const int64_t V = model.spec().vocab, n = model.spec().max_position;
  std::vector<float> logits(static_cast<size_t>(V));
  for (int64_t t = 0; t < n; ++t) {
    const int32_t id = static_cast<int32_t>((t * 7919 + 13) % V);
    model.forward(&id, 1, cache, logits.data());
    Workload w;
    w.context = cache.length();
    w.kv_bytes_per_elem = 4;
    ASSERT_EQ(static_cast<double>(cache.kv_bytes()), compute_cost(model.spec(), reg, w).kv.bytes_at_context)
        << "at " << cache.length() << " tokens";
  }
  EXPECT_EQ(cache.length(), n);
}

// `moe run` / `moe eval` reach the model through a Decoder: same logits, a KvCache that carries the state,
// and that cannot go back to a prefix.
TEST(DeepseekV4, DecoderRunsItWithAKvCache) {
  Decoder dec(fixture("hf"));
  const Expected e = expected(fixture("hf"));
  const int64_t T = static_cast<int64_t>(e.prompt.size()), V = dec.spec().vocab;
  KvCache cache = dec.make_cache(T + 4);
  std::vector<float> logits(static_cast<size_t>(T * V));
  dec.forward(e.prompt.data(), T, cache, logits.data());
  EXPECT_LT(rel_err(logits.data(), e.logits.data(), T * V), 1e-4);
  std::vector<float> step(static_cast<size_t>(V));
  dec.forward(&e.greedy[0], 1, cache, step.data());
  EXPECT_LT(rel_err(step.data(), e.decode.data() + V, V), 1e-4);
  EXPECT_EQ(cache.length(), T + 1);
  EXPECT_THROW(cache.truncate(T), Error);
  cache.reset();  // starts over: a fresh state at the next forward
  dec.forward(e.prompt.data(), T, cache, logits.data());
  EXPECT_LT(rel_err(logits.data(), e.logits.data(), T * V), 1e-4);
  EXPECT_THROW(dec.forward(e.prompt.data(), 5, cache, logits.data()), Error);  // past max_tokens
}

// A copied KvCache owns a copy of the V4 state: both continue alike, and neither disturbs the other.
TEST(DeepseekV4, CopiedCacheHasItsOwnState) {
  Decoder dec(fixture("hf"));
  const Expected e = expected(fixture("hf"));
  const int64_t T = static_cast<int64_t>(e.prompt.size()), V = dec.spec().vocab;
  KvCache a = dec.make_cache(T + 4);
  std::vector<float> logits(static_cast<size_t>(T * V)), sa(static_cast<size_t>(V)), sb(sa);
  dec.forward(e.prompt.data(), T, a, logits.data());
  KvCache b = a;
  dec.forward(&e.greedy[0], 1, a, sa.data());
  dec.forward(&e.greedy[0], 1, b, sb.data());  // would be refused if b shared a's advanced state
  EXPECT_EQ(sa, sb);
  EXPECT_LT(rel_err(sb.data(), e.decode.data() + V, V), 1e-4);
  KvCache c = dec.make_cache(T + 4);
  c = a;
  dec.forward(&e.greedy[1], 1, c, sb.data());
  dec.forward(&e.greedy[1], 1, a, sa.data());
  EXPECT_EQ(sa, sb);
}

TEST(DeepseekV4, BadTokensAreNamed) {
  DeepseekV4Model model(fixture("official"));
  Dsv4Cache cache = model.make_cache();
  std::vector<float> logits(static_cast<size_t>(model.spec().vocab));
  const int32_t bad = static_cast<int32_t>(model.spec().vocab);
  EXPECT_THROW(model.forward(&bad, 1, cache, logits.data()), Error);
  EXPECT_THROW(model.forward(&bad, 0, cache, logits.data()), Error);
  EXPECT_EQ(cache.length(), 0);
}

}  // namespace
}  // namespace moe
