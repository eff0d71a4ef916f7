// Layer by layer against a reference: runs a fixture's prompt through a Decoder with its tap
// (model/forward_tap.h) and compares what the fixture holds of the residual stream (expected.safetensors
// `hidden` [L + 1, T, D]: the embeddings, then every layer's output before the final norm) with the
// tapped "embed" and per-layer "hidden" tensors, in forward order, so a mismatch names the first layer
// and tensor that diverge instead of only "the logits differ".
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "io/safetensors.h"
#include "model/decoder.h"
#include "util/dtype.h"
#include "util/error.h"

namespace moe::testing {

struct HiddenDivergence {
  int64_t layer = kModelTensor;  // kModelTensor for "embed"
  std::string name;              // the tap's name: "embed" or "hidden"
  double max_abs = 0;            // the largest |moe - reference| of the tensor
  double tolerance = 0;
  int64_t token = 0, dim = 0;  // where it is
  std::string describe() const {
    return fmt::format("first divergence: {} {}: max |diff| {:.3g} > {:.3g} at token {}, dim {}",
                       layer == kModelTensor ? std::string("model") : fmt::format("layer {}", layer), name, max_abs,
                       tolerance, token, dim);
  }
};

// True when the fixture folder's expected.safetensors holds `hidden`.
inline bool fixture_has_hidden(const std::string& dir) {
  const std::string path = dir + "/expected.safetensors";
  if (!std::filesystem::exists(path)) return false;
  const SafetensorsFile file = SafetensorsFile::open(path);  // named: tensors() refers into it
  for (const TensorInfo& t : file.tensors())
    if (t.name == "hidden") return true;
  return false;
}

// Runs the fixture's prompt_ids through `model` (a fresh cache) and returns the first tapped tensor whose
// values differ from the fixture's by more than tol * max(1, max |reference|) of that tensor, or nullopt
// when every one agrees. Throws when the fixture's `hidden` does not have the model's shape [L + 1, T, D].
inline std::optional<HiddenDivergence> first_hidden_divergence(Decoder& model, const std::string& fixture_dir,
                                                               double tol = 1e-4) {
  const SafetensorsFile expected = SafetensorsFile::open(fixture_dir + "/expected.safetensors");
  const auto prompt64 = expected.view<int64_t>("prompt_ids", DType::kI64);
  const std::vector<int32_t> prompt(prompt64.begin(), prompt64.end());
  const std::vector<float> want = expected.to_f32("hidden");  // [L + 1, T, D]
  const int64_t T = static_cast<int64_t>(prompt.size()), D = model.spec().d_model, L = model.spec().n_layer;
  if (static_cast<int64_t>(want.size()) != (L + 1) * T * D)
    fail("test", "{}: hidden has {} values, expected [{} + 1, {}, {}]", fixture_dir, want.size(), L, T, D);
  std::optional<HiddenDivergence> first;
  int64_t compared = 0;
  model.set_tap([&](int64_t layer, std::string_view name, const TapView& v) {
    const bool embed = layer == kModelTensor && name == tap::kEmbed;
    if (first || !(embed || name == tap::kHidden)) return;
    if (v.rows != T || v.cols != D)
      fail("test", "{} of layer {} is [{}, {}], not [{}, {}]", name, layer, v.rows, v.cols, T, D);
    const float* ref = want.data() + (embed ? 0 : layer + 1) * T * D;  // [T, D]
    double scale = 1, worst = -1;
    int64_t at = 0;
    for (int64_t i = 0; i < T * D; ++i) scale = std::max(scale, double(std::abs(ref[i])));
    for (int64_t i = 0; i < v.rows * v.cols; ++i) {
      const double d = std::abs(double(v.data[i]) - ref[i]);
      if (!(d <= worst)) worst = d, at = i;  // NaN counts as the worst
    }
    ++compared;
    if (!(worst <= tol * scale)) first = HiddenDivergence{layer, std::string(name), worst, tol * scale, at / D, at % D};
  });
  KvCache cache = model.make_cache(T);
  std::vector<float> logits(static_cast<size_t>(T * model.spec().vocab));  // [T, V]
  model.forward(prompt.data(), T, cache, logits.data());
  model.set_tap({});
  if (compared != L + 1 && !first) fail("test", "{}: the tap gave {} of the {} tensors", fixture_dir, compared, L + 1);
  return first;
}

}  // namespace moe::testing
