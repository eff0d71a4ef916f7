// HiddenDump (see hidden_dump.h): one file per tapped tensor, then index.json.
#include "model/hidden_dump.h"

#include <fmt/format.h>

#include <bit>
#include <filesystem>
#include <system_error>

#include "io/atomic_file.h"
#include "io/safetensors.h"  // write_file_atomic
#include "util/error.h"

namespace moe {

static_assert(std::endian::native == std::endian::little, "the dump files are little-endian f32 written as is");

HiddenDump::HiddenDump(std::string dir, int64_t n_layer, nlohmann::ordered_json settings)
    : dir_(std::move(dir)), settings_(std::move(settings)) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec || !std::filesystem::is_directory(dir_))
    fail("io", "{}: cannot create the folder for the tapped tensors ({})", dir_, ec ? ec.message() : "not a folder");
  for (int64_t n = 100; n <= n_layer - 1 && layer_digits_ < 19; n *= 10) ++layer_digits_;
}

ForwardTap HiddenDump::tap() {
  return [this](int64_t layer, std::string_view name, const TapView& view) { write(layer, name, view); };
}

void HiddenDump::write(int64_t layer, std::string_view name, const TapView& view) {
  if (layer == kModelTensor && name == tap::kEmbed) ++forward_;
  if (forward_ < 0) forward_ = 0;  // a tap that starts elsewhere still has a first forward
  std::string file = forward_ > 0 ? fmt::format("forward-{}.", forward_) : std::string();
  if (layer == kModelTensor) {
    file += fmt::format("{}.f32", name);
  } else {
    file += fmt::format("layer-{:0{}d}.{}.f32", layer, layer_digits_, name);
  }
  TempFile out(dir_ + "/" + file);
  out.write(view.data, static_cast<size_t>(view.rows * view.cols) * sizeof(float));
  out.commit();
  nlohmann::ordered_json entry{{"forward", forward_}};
  entry["layer"] = layer == kModelTensor ? nlohmann::ordered_json() : nlohmann::ordered_json(layer);
  entry["name"] = name;
  entry["shape"] = {view.rows, view.cols};
  entry["dtype"] = "f32";
  entry["file"] = file;
  index_.push_back(std::move(entry));
}

void HiddenDump::finish() {
  nlohmann::ordered_json j{{"format", "raw little-endian float32, row-major [rows, cols] per file"},
                           {"settings", settings_},
                           {"forwards", forward_ + 1},
                           {"tensors", index_}};
  write_file_atomic(dir_ + "/index.json", j.dump(2) + "\n");
}

}  // namespace moe
