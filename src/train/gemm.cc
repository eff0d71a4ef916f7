// Dispatch of the training GEMM (gemm.h): the AVX-512 kernel when the active ISA has it.
#include "train/gemm.h"

#include <cstring>

#include "runtime/cpu_features.h"
#include "util/check.h"

namespace moe::train {

bool gemm_f32_available() { return active_isa() >= Isa::kAvx512; }

void gemm_f32(GemmOperand a, GemmOperand b, float* c, int64_t ldc, GemmShape s, bool accumulate) {
  MOE_CHECK(s.m >= 0 && s.n >= 0 && s.k >= 0 && ldc >= s.n);
  MOE_CHECK((a.rs == 1 || a.cs == 1) && (b.rs == 1 || b.cs == 1));
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < s.m; ++i) std::memset(c + i * ldc, 0, static_cast<size_t>(s.n) * sizeof(float));
    return;
  }
  MOE_CHECK(gemm_f32_available());
  gemm_detail::gemm_avx512(a, b, c, ldc, s, accumulate);
}

int64_t gemm_f32_packed_size(int64_t k, int64_t n) { return k * ((n + 31) / 32 * 32); }

void gemm_f32_pack_b(GemmOperand b, int64_t k, int64_t n, float* dst) {
  MOE_CHECK(k >= 0 && n >= 0 && (b.rs == 1 || b.cs == 1) && gemm_f32_available());
  if (k > 0 && n > 0) gemm_detail::pack_b_avx512(b, k, n, dst);
}

void gemm_f32_packed(GemmOperand a, const float* packed, int64_t packed_k, int64_t p0, float* c, int64_t ldc,
                     GemmShape s, bool accumulate) {
  MOE_CHECK(s.m >= 0 && s.n >= 0 && s.k >= 0 && ldc >= s.n && p0 >= 0 && p0 + s.k <= packed_k);
  MOE_CHECK((a.rs == 1 || a.cs == 1) && gemm_f32_available());
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < s.m; ++i) std::memset(c + i * ldc, 0, static_cast<size_t>(s.n) * sizeof(float));
    return;
  }
  gemm_detail::gemm_packed_avx512(a, packed, packed_k, p0, c, ldc, s, accumulate);
}

}  // namespace moe::train
