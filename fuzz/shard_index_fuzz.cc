// Fuzzes model.safetensors.index.json over a folder of two fixed shards (tensors a, b in the first,
// c in the second): weight_map entries that name missing shards, other folders, devices, tensors
// the shards lack, a tensor twice, and JSON that is not an index at all.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>

#include "fuzz_util.h"
#include "io/safetensors.h"

namespace {

namespace fs = std::filesystem;

fs::path make_folder() {
  char tmpl[] = "/tmp/moe_fuzz_index_XXXXXX";
  if (mkdtemp(tmpl) == nullptr) std::abort();
  const fs::path dir(tmpl);
  const float v[3] = {1, 2, 3};
  const auto* b = reinterpret_cast<const uint8_t*>(v);
  moe::write_safetensors((dir / "model-00001-of-00002.safetensors").string(),
                         {{"a", moe::DType::kF32, {2}, {b, 8}}, {"b", moe::DType::kF32, {1}, {b + 8, 4}}});
  moe::write_safetensors((dir / "model-00002-of-00002.safetensors").string(), {{"c", moe::DType::kF32, {3}, {b, 12}}});
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fs::path dir = make_folder();
  static const struct Cleanup {
    ~Cleanup() { fs::remove_all(dir); }
  } cleanup;
  {
    std::ofstream out(dir / "model.safetensors.index.json", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  for (bool header_only : {false, true}) {
    moe::fuzz::expect_moe_errors_only("Checkpoint::open", [&] {
      const moe::Checkpoint c = moe::Checkpoint::open(dir.string(), header_only);
      for (const std::string& name : c.tensor_names()) moe::fuzz::check(c.info(name).name == name, "info(name)");
    });
  }
  return 0;
}
