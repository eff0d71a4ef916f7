// `moe eval --dump-hidden DIR`: every tensor a forward taps (model/forward_tap.h) written as
// DIR/layer-LL.NAME.f32 (the model's own tensors: DIR/NAME.f32), raw little-endian f32 [rows, cols],
// each file written whole or not at all, and DIR/index.json listing them (name, layer, shape, file)
// with the settings of the command that wrote them. A second forward's files get "forward-N."
// in front of the name.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "model/forward_tap.h"

namespace moe {

class HiddenDump {
 public:
  // Creates dir (and its parents) when missing; n_layer sets the width of the layer numbers (at
  // least 2 digits) so the file names sort in layer order. settings: copied into index.json.
  HiddenDump(std::string dir, int64_t n_layer, nlohmann::ordered_json settings);

  // The callback to hand to Decoder::set_tap; it refers to this object, which must outlive its use.
  ForwardTap tap();
  // Writes DIR/index.json (atomically); call after the last forward.
  void finish();

  int64_t n_files() const { return static_cast<int64_t>(index_.size()); }
  const std::string& dir() const { return dir_; }

 private:
  void write(int64_t layer, std::string_view name, const TapView& view);

  std::string dir_;
  int layer_digits_ = 2;
  nlohmann::ordered_json settings_;
  nlohmann::ordered_json index_ = nlohmann::ordered_json::array();
  int64_t forward_ = -1;  // index of the forward being written (an "embed" tensor starts the next one)
};

}  // namespace moe
