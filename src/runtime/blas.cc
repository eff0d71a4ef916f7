// dlopen-based OpenBLAS binding (see blas.h for why it is loaded at run time).
#include "runtime/blas.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "runtime/cpu_features.h"
#include "util/error.h"

namespace moe::blas {
namespace {

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
using CoreNameFn = char* (*)();
using SetThreadsFn = void (*)(int);

struct Lib {
  void* handle = nullptr;
  SgemmFn sgemm = nullptr;
  CoreNameFn corename = nullptr;
  SetThreadsFn set_threads = nullptr;
  std::string inherited;
};

const char* choose_coretype() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq) return f.avx512_bf16 ? "Cooperlake" : "SkylakeX";
  if (f.avx2 && f.fma) return "Haswell";
  return nullptr;
}

Lib load() {
  Lib lib;
  if (const char* inh = std::getenv("OPENBLAS_CORETYPE")) lib.inherited = inh;
  const char* override = std::getenv("MOE_OPENBLAS_CORETYPE");
  if (override != nullptr && std::string(override) == "inherit") {
    // keep the environment as it is
  } else if (override != nullptr && *override != '\0') {
    setenv("OPENBLAS_CORETYPE", override, 1);
  } else if (const char* ct = choose_coretype()) {
    setenv("OPENBLAS_CORETYPE", ct, 1);
  } else {
    unsetenv("OPENBLAS_CORETYPE");
  }
  for (const char* name : {"libopenblas.so.0", "libopenblas.so", "libblas.so.3"}) {
    lib.handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib.handle != nullptr) break;
  }
  if (lib.handle == nullptr) return lib;
  lib.sgemm = reinterpret_cast<SgemmFn>(dlsym(lib.handle, "cblas_sgemm"));
  lib.corename = reinterpret_cast<CoreNameFn>(dlsym(lib.handle, "openblas_get_corename"));
  lib.set_threads = reinterpret_cast<SetThreadsFn>(dlsym(lib.handle, "openblas_set_num_threads"));
  return lib;
}

const Lib& lib() {
  static const Lib l = load();
  return l;
}

}  // namespace

bool available() { return lib().sgemm != nullptr; }

std::string core_name() {
  if (!available()) return "unavailable";
  if (lib().corename == nullptr) return "unknown";
  std::string s = lib().corename();
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n')) s.pop_back();
  return s;
}

std::string inherited_coretype() { return lib().inherited; }

void set_threads(int n) {
  if (lib().set_threads != nullptr) lib().set_threads(n);
}

void sgemm(bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta,
           float* c, int ldc) {
  if (!available()) fail("blas", "OpenBLAS (libopenblas.so.0) could not be loaded; install libopenblas0");
  lib().sgemm(kRowMajor, kNoTrans, trans_b ? kTrans : kNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace moe::blas
