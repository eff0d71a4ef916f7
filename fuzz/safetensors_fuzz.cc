// Fuzzes a whole .safetensors file: the 8-byte header length, the JSON header (dtypes, shapes,
// offsets, overlaps, duplicate names, __metadata__) and the tensor views over the data section,
// through the full open() and the header-only reader `moe inspect` uses.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static moe::fuzz::MemFile file("safetensors");
  const std::string& path = file.write(data, size);
  moe::fuzz::expect_moe_errors_only("SafetensorsFile::open", [&] {
    const moe::SafetensorsFile f = moe::SafetensorsFile::open(path);
    for (const moe::TensorInfo& t : f.tensors()) {
      const auto bytes = f.bytes(t.name);
      moe::fuzz::check(bytes.size() == t.nbytes(), "bytes() spans the tensor's byte range");
      if (moe::dtype_is_float(t.dtype) && t.nbytes() <= (1u << 20)) (void)f.to_f32(t.name);
    }
  });
  moe::fuzz::expect_moe_errors_only("SafetensorsFile::open_header_only",
                                    [&] { (void)moe::SafetensorsFile::open_header_only(path); });
  return 0;
}
