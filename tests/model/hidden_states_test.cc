// The decoder's named intermediate tensors (model/forward_tap.h): every fixture's residual stream,
// layer by layer, against the PyTorch reference's `hidden` (tests/common/hidden_states.h), the names
// and order of the tapped tensors, that they add up to the residual stream, that a planted error is
// named at the first layer it touches, and `moe eval --dump-hidden`'s writer (model/hidden_dump.h).
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/hidden_states.h"
#include "io/safetensors.h"
#include "model/decoder.h"
#include "model/hidden_dump.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

std::string models_dir() {
  std::string dir = MOE_TEST_DATA_DIR;  // appended: GCC 12 warns falsely on the chained operator+ form
  dir.append("/reference/fixtures/models");
  return dir;
}

TEST(HiddenStates, EveryFixtureMatchesLayerByLayer) {
  int checked = 0;
  for (const auto& e : fs::directory_iterator(models_dir())) {
    if (!testing::fixture_has_hidden(e.path().string())) continue;
    SCOPED_TRACE(e.path().filename().string());
    Decoder model(e.path().string());
    const auto d = testing::first_hidden_divergence(model, e.path().string());
    EXPECT_FALSE(d) << (d ? d->describe() : "");
    ++checked;
  }
  EXPECT_GE(checked, 21) << "fixtures with hidden states under " << models_dir();
}

struct Tapped {
  int64_t layer;
  std::string name;
  std::vector<float> values;
  int64_t rows, cols;
};

std::vector<Tapped> tap_all(Decoder& model, const std::vector<int32_t>& ids) {
  std::vector<Tapped> out;
  model.set_tap([&](int64_t layer, std::string_view name, const TapView& v) {
    out.push_back({layer, std::string(name), std::vector<float>(v.data, v.data + v.rows * v.cols), v.rows, v.cols});
  });
  KvCache cache = model.make_cache(static_cast<int64_t>(ids.size()));
  std::vector<float> logits(ids.size() * static_cast<size_t>(model.spec().vocab));  // [T, V]
  model.forward(ids.data(), static_cast<int64_t>(ids.size()), cache, logits.data());
  return out;
}

// DeepSeek-V3's fixture: layer 0 dense, layers 1 and 2 MoE.
TEST(HiddenStates, NamesOrderAndShapes) {
  Decoder model(models_dir() + "/deepseek_v3");
  const std::vector<int32_t> ids = {3, 1, 4, 1, 5};
  const std::vector<Tapped> t = tap_all(model, ids);
  const int64_t L = model.spec().n_layer, D = model.spec().d_model;
  ASSERT_EQ(L, 3);
  ASSERT_EQ(t.size(), size_t(2 + 5 * L));
  EXPECT_EQ(std::tie(t.front().layer, t.front().name), std::make_tuple(kModelTensor, std::string("embed")));
  EXPECT_EQ(std::tie(t.back().layer, t.back().name), std::make_tuple(kModelTensor, std::string("final_norm")));
  for (int64_t l = 0; l < L; ++l) {
    const std::vector<std::string> want = {"attn_norm", "attn_out", "ffn_norm", l == 0 ? "ffn_out" : "moe_out",
                                           "hidden"};
    for (size_t j = 0; j < want.size(); ++j) {
      const Tapped& x = t[size_t(1 + 5 * l) + j];
      EXPECT_EQ(x.layer, l);
      EXPECT_EQ(x.name, want[j]);
      EXPECT_EQ(x.rows, 5);
      EXPECT_EQ(x.cols, D);
    }
    // The residual stream: hidden = previous + attn_out + ffn/moe out (no multipliers in this family).
    const std::vector<float>& prev = t[size_t(l == 0 ? 0 : 5 * l)].values;
    const Tapped &attn = t[size_t(2 + 5 * l)], &ffn = t[size_t(4 + 5 * l)], &hidden = t[size_t(5 + 5 * l)];
    double worst = 0;
    for (size_t i = 0; i < prev.size(); ++i)
      worst = std::max(worst, std::abs(double(prev[i]) + attn.values[i] + ffn.values[i] - hidden.values[i]));
    EXPECT_LT(worst, 1e-5) << "layer " << l;
  }
  // An empty tap turns it off.
  int calls = 0;
  model.set_tap([&](int64_t, std::string_view, const TapView&) { ++calls; });
  model.set_tap({});
  KvCache cache = model.make_cache(5);
  std::vector<float> logits(5 * size_t(model.spec().vocab));
  model.forward(ids.data(), 5, cache, logits.data());
  EXPECT_EQ(calls, 0);
}

// A copy of the fixture whose tensor `victim` is scaled by 1.5 (its expected.safetensors kept).
std::string scaled_copy(const std::string& family, const std::string& victim) {
  const std::string src = models_dir() + "/" + family;
  const fs::path dst = fs::path(::testing::TempDir()) / ("hidden_scaled_" + family);
  fs::create_directories(dst);
  for (const char* f : {"config.json", "expected.safetensors"})
    fs::copy_file(src + "/" + f, dst / f, fs::copy_options::overwrite_existing);
  const SafetensorsFile file = SafetensorsFile::open(src + "/model.safetensors");
  std::vector<std::vector<float>> keep;
  keep.reserve(1);  // one victim: its bytes stay where TensorToWrite points
  std::vector<TensorToWrite> tensors;
  for (const TensorInfo& t : file.tensors()) {
    TensorToWrite w{t.name, t.dtype, t.shape, file.bytes(t.name)};
    if (t.name == victim) {
      keep.push_back(file.to_f32(t.name));
      for (float& v : keep.back()) v *= 1.5f;
      w.dtype = DType::kF32;
      w.bytes = {reinterpret_cast<const uint8_t*>(keep.back().data()), keep.back().size() * sizeof(float)};
    }
    tensors.push_back(w);
  }
  write_safetensors((dst / "model.safetensors").string(), tensors);
  return dst.string();
}

TEST(HiddenStates, APlantedErrorIsNamedAtItsLayer) {
  const std::string dir = scaled_copy("deepseek_v3", "model.layers.1.post_attention_layernorm.weight");
  Decoder model(dir);
  const auto d = testing::first_hidden_divergence(model, dir);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->layer, 1);
  EXPECT_EQ(d->name, "hidden");
  EXPECT_NE(d->describe().find("layer 1 hidden"), std::string::npos) << d->describe();
}

TEST(HiddenStates, DumpWritesEveryTensorAndAnIndex) {
  const fs::path dir = fs::path(::testing::TempDir()) / "hidden_dump";
  fs::remove_all(dir);
  Decoder model(models_dir() + "/qwen3_moe");
  const int64_t L = model.spec().n_layer, D = model.spec().d_model;
  std::vector<Tapped> want;
  {
    HiddenDump dump(dir.string(), L, {{"command", "test"}});
    model.set_tap(dump.tap());
    const std::vector<int32_t> ids = {7, 8, 9};
    KvCache cache = model.make_cache(4);
    std::vector<float> logits(4 * size_t(model.spec().vocab));
    model.forward(ids.data(), 3, cache, logits.data());
    model.forward(ids.data(), 1, cache, logits.data());  // a second forward: "forward-1." files
    model.set_tap({});
    dump.finish();
    want = tap_all(model, ids);
  }
  const nlohmann::json index = nlohmann::json::parse(std::ifstream(dir / "index.json"));
  EXPECT_EQ(index["settings"]["command"], "test");
  EXPECT_EQ(index["forwards"], 2);
  ASSERT_EQ(index["tensors"].size(), size_t(2 * (2 + 5 * L)));
  const nlohmann::json& last_hidden = index["tensors"][size_t(5 * L)];
  EXPECT_EQ(last_hidden["file"], "layer-01.hidden.f32");
  EXPECT_EQ(last_hidden["shape"], nlohmann::json::array({3, D}));
  EXPECT_EQ(index["tensors"][0]["file"], "embed.f32");
  EXPECT_TRUE(index["tensors"][0]["layer"].is_null());
  EXPECT_EQ(index["tensors"][size_t(2 + 5 * L)]["file"], "forward-1.embed.f32");
  // The first forward's files hold the tensors a tap sees, bit for bit.
  for (size_t i = 0; i < want.size(); ++i) {
    const std::string file = index["tensors"][i]["file"];
    std::ifstream in(dir / file, std::ios::binary);
    std::vector<float> got(want[i].values.size());
    in.read(reinterpret_cast<char*>(got.data()), std::streamsize(got.size() * sizeof(float)));
    EXPECT_EQ(in.gcount(), std::streamsize(got.size() * sizeof(float))) << file;
    EXPECT_EQ(in.peek(), EOF) << file;
    EXPECT_EQ(got, want[i].values) << file;
  }
  for (const auto& e : fs::directory_iterator(dir))  // nothing left half written
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

}  // namespace
}  // namespace moe
