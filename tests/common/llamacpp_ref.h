// llama.cpp as a reference peer in tests: ggml's quantize / dequantize functions from the prebuilt
// libggml-base.so that scripts/install-llamacpp.sh installs (npm @node-llama-cpp/linux-x64), loaded with
// dlopen so the tests need no llama.cpp headers. A missing install fails the test with the command to run
// (MOE_NO_LLAMACPP=1 skips instead, for machines without npm).
#pragma once

#include <dlfcn.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "util/dtype.h"

namespace moe::testing {

// ggml's type ids (ggml.h, enum ggml_type) of our block and float dtypes.
inline int ggml_type_id(DType t) {
  switch (t) {
    case DType::kF32:
      return 0;
    case DType::kF16:
      return 1;
    case DType::kQ4_0:
      return 2;
    case DType::kQ4_1:
      return 3;
    case DType::kQ5_0:
      return 6;
    case DType::kQ5_1:
      return 7;
    case DType::kQ8_0:
      return 8;
    case DType::kQ4_K:
      return 12;
    case DType::kQ5_K:
      return 13;
    case DType::kQ6_K:
      return 14;
    case DType::kBF16:
      return 30;
    case DType::kMXFP4:
      return 39;
    case DType::kIQ4_XS:
      return 23;
    default:
      return -1;
  }
}

inline std::string llamacpp_lib_dir() {
  if (const char* d = std::getenv("MOE_LLAMACPP_DIR")) return std::string(d) + "/lib";
#ifdef MOE_LLAMACPP_LIB_DIR
  return MOE_LLAMACPP_LIB_DIR;
#else
  return ".llamacpp/lib";
#endif
}

class GgmlRef {
 public:
  using QuantizeChunk = size_t (*)(int type, const float* src, void* dst, int64_t start, int64_t nrows,
                                   int64_t n_per_row, const float* imatrix);
  using DequantizeRow = void (*)(const void* src, float* dst, int64_t k);

  // The library, or null when it is not installed (use MOE_GGML_REF below in tests).
  static GgmlRef* instance() {
    static GgmlRef ref;
    return ref.handle_ ? &ref : nullptr;
  }

  QuantizeChunk quantize_chunk = nullptr;
  DequantizeRow dequantize(DType t) const {
    const char* names[] = {"dequantize_row_q4_0",  "dequantize_row_q4_1",  "dequantize_row_q5_0", "dequantize_row_q5_1",
                           "dequantize_row_q8_0",  "dequantize_row_q4_K",  "dequantize_row_q5_K", "dequantize_row_q6_K",
                           "dequantize_row_mxfp4", "dequantize_row_iq4_xs"};
    const DType types[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,  DType::kQ8_0,
                           DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kMXFP4, DType::kIQ4_XS};
    for (int i = 0; i < 10; ++i)
      if (types[i] == t) return reinterpret_cast<DequantizeRow>(dlsym(handle_, names[i]));
    return nullptr;
  }

 private:
  GgmlRef() {
    handle_ = dlopen((llamacpp_lib_dir() + "/libggml-base.so").c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle_) quantize_chunk = reinterpret_cast<QuantizeChunk>(dlsym(handle_, "ggml_quantize_chunk"));
    if (!quantize_chunk) handle_ = nullptr;
  }
  void* handle_ = nullptr;
};

}  // namespace moe::testing

// Declares `var` as the ggml reference, or ends the test: failed, or skipped under MOE_NO_LLAMACPP.
#define MOE_GGML_REF(var)                                                                                \
  ::moe::testing::GgmlRef* var = ::moe::testing::GgmlRef::instance();                                    \
  if (!var) {                                                                                            \
    if (std::getenv("MOE_NO_LLAMACPP")) GTEST_SKIP() << "MOE_NO_LLAMACPP set: llama.cpp checks skipped"; \
    FAIL() << "llama.cpp reference not found in " << ::moe::testing::llamacpp_lib_dir()                  \
           << ": run scripts/install-llamacpp.sh (make test does), or set MOE_NO_LLAMACPP=1 to skip";    \
  }
