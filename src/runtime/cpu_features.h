// CPU feature detection (cpuid + xgetbv) and the ISA level kernels dispatch on.
// MOE_ISA=scalar|avx2|avx512|avx512bf16 (or set_isa_override) caps the level for tests.
#pragma once

#include <string>

namespace moe {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_bf16 = false, avx512_vnni = false, avx_vnni = false;
  bool amx_tile = false, amx_bf16 = false, amx_int8 = false;
  std::string vendor, brand;
};

// Detected once; OS support for AVX/AVX-512 state is checked with xgetbv.
const CpuFeatures& cpu_features();

// Kernel ISA levels, each implying the ones below it.
enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Bf16 = 3 };

const char* isa_name(Isa isa);
// Highest level this CPU supports.
Isa detected_isa();
// Level kernels use: detected, capped by MOE_ISA or set_isa_override().
Isa active_isa();
// Caps the active level (tests force the scalar path with Isa::kScalar); returns the previous cap.
Isa set_isa_override(Isa cap);

// Names of the detected features, space-separated (for `moe info`).
std::string cpu_feature_list();

}  // namespace moe
