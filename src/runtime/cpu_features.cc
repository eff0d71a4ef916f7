// cpuid-based feature detection and the run-time ISA choice.
#include "runtime/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define MOE_X86 1
#endif

#include "util/error.h"

namespace moe {
namespace {

#ifdef MOE_X86
uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#ifdef MOE_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const unsigned max_leaf = a;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  f.vendor = vendor;

  __get_cpuid(1, &a, &b, &c, &d);
  const bool osxsave = c & (1u << 27);
  const bool has_avx = c & (1u << 28);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_avx = (xcr0 & 0x6) == 0x6;
  const bool os_avx512 = (xcr0 & 0xe6) == 0xe6;
  const bool os_amx = (xcr0 & (3ull << 17)) == (3ull << 17);
  if (!(has_avx && os_avx)) f.fma = f.f16c = false;

  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = os_avx && (b & (1u << 5));
    f.avx512f = os_avx512 && (b & (1u << 16));
    f.avx512dq = os_avx512 && (b & (1u << 17));
    f.avx512bw = os_avx512 && (b & (1u << 30));
    f.avx512vl = os_avx512 && (b & (1u << 31));
    f.avx512_vnni = os_avx512 && (c & (1u << 11));
    f.amx_bf16 = os_amx && (d & (1u << 22));
    f.amx_tile = os_amx && (d & (1u << 24));
    f.amx_int8 = os_amx && (d & (1u << 25));
    __cpuid_count(7, 1, a, b, c, d);
    f.avx_vnni = os_avx && (a & (1u << 4));
    f.avx512_bf16 = os_avx512 && (a & (1u << 5));
  }
  unsigned ext = __get_cpuid_max(0x80000000u, nullptr);
  if (ext >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      __get_cpuid(0x80000002u + i, &a, &b, &c, &d);
      std::memcpy(brand + 16 * i, &a, 4);
      std::memcpy(brand + 16 * i + 4, &b, 4);
      std::memcpy(brand + 16 * i + 8, &c, 4);
      std::memcpy(brand + 16 * i + 12, &d, 4);
    }
    f.brand = brand;
    while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
  }
#endif
  return f;
}

Isa isa_from_env() {
  const char* v = std::getenv("MOE_ISA");
  if (v == nullptr || *v == '\0') return Isa::kAvx512Bf16;
  if (std::strcmp(v, "scalar") == 0) return Isa::kScalar;
  if (std::strcmp(v, "avx2") == 0) return Isa::kAvx2;
  if (std::strcmp(v, "avx512") == 0) return Isa::kAvx512;
  if (std::strcmp(v, "avx512bf16") == 0) return Isa::kAvx512Bf16;
  fail_usage("runtime", "MOE_ISA='{}' is not one of scalar, avx2, avx512, avx512bf16", v);
}

std::atomic<int>& isa_cap() {
  static std::atomic<int> cap{static_cast<int>(isa_from_env())};
  return cap;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx512Bf16:
      return "avx512bf16";
  }
  return "?";
}

Isa detected_isa() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma) {
    return f.avx512_bf16 ? Isa::kAvx512Bf16 : Isa::kAvx512;
  }
  if (f.avx2 && f.fma && f.f16c) return Isa::kAvx2;
  return Isa::kScalar;
}

Isa active_isa() {
  const int cap = isa_cap().load(std::memory_order_relaxed);
  const int det = static_cast<int>(detected_isa());
  return static_cast<Isa>(cap < det ? cap : det);
}

Isa set_isa_override(Isa cap) { return static_cast<Isa>(isa_cap().exchange(static_cast<int>(cap))); }

std::string cpu_feature_list() {
  const CpuFeatures& f = cpu_features();
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(f.avx2, "AVX2");
  add(f.fma, "FMA");
  add(f.f16c, "F16C");
  add(f.avx512f, "AVX-512F");
  add(f.avx512bw, "AVX-512BW");
  add(f.avx512vl, "AVX-512VL");
  add(f.avx512dq, "AVX-512DQ");
  add(f.avx512_bf16, "AVX512_BF16");
  add(f.avx512_vnni, "AVX512_VNNI");
  add(f.avx_vnni, "AVX-VNNI");
  add(f.amx_tile, "AMX-TILE");
  add(f.amx_bf16, "AMX-BF16");
  add(f.amx_int8, "AMX-INT8");
  return s.empty() ? "none" : s;
}

}  // namespace moe
