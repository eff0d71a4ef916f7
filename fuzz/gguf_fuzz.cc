// Fuzzes the GGUF reader: magic, version, counts, every metadata value type (nested arrays
// included), tensor dims, ggml types, offsets, alignment, overlaps and duplicate names, then the
// typed getters, the tensor views and GGUF metadata -> ModelSpec (`moe run --model x.gguf`).
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "io/gguf.h"
#include "io/gguf_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static moe::fuzz::MemFile file("model.gguf");
  const std::string& path = file.write(data, size);
  moe::fuzz::expect_moe_errors_only("GgufFile::open", [&] {
    const moe::GgufFile f = moe::GgufFile::open(path);
    for (const std::string& key : f.keys()) {
      const moe::GgufValue* v = f.find(key);
      moe::fuzz::check(v != nullptr, "every listed key is found");
      moe::fuzz::expect_moe_errors_only("getters", [&] {
        (void)f.opt_int(key);
        (void)f.opt_float(key);
        (void)f.opt_bool(key);
        (void)f.opt_str(key);
        (void)f.opt_num_array(key);
      });
    }
    for (const moe::GgufTensor& t : f.tensors()) {
      moe::fuzz::check(f.bytes(t).size() == t.nbytes, "bytes() spans the tensor");
      moe::fuzz::check(f.find_tensor(t.name) == &t, "find_tensor finds each tensor");
      (void)t.shape();
    }
    moe::fuzz::expect_moe_errors_only("gguf_model_spec", [&] { (void)moe::gguf_model_spec(f); });
  });
  return 0;
}
