// Dispatch of the training GEMM (gemm_f32.h) on the active ISA, and its portable twin.
#include "kernels/gemm_f32.h"

#include <cstring>

#include "kernels/gemm_f32_portable.h"
#include "runtime/cpu_features.h"
#include "util/check.h"

namespace moe {
namespace {

void check_operands(GemmOperand a, GemmOperand b, int64_t ldc, GemmShape s) {
  MOE_CHECK(s.m >= 0 && s.n >= 0 && s.k >= 0 && ldc >= s.n);
  MOE_CHECK((a.rs == 1 || a.cs == 1) && (b.rs == 1 || b.cs == 1));
}

void check_packed(GemmOperand a, int64_t packed_k, int64_t p0, int64_t ldc, GemmShape s) {
  MOE_CHECK(s.m >= 0 && s.n >= 0 && s.k >= 0 && ldc >= s.n && p0 >= 0 && p0 + s.k <= packed_k);
  MOE_CHECK(a.rs == 1 || a.cs == 1);
}

// The shapes every kernel leaves to its caller: nothing to do, or k == 0 (C = 0 unless accumulating).
// True when the product is done.
bool trivial_product(float* c, int64_t ldc, GemmShape s, bool accumulate) {
  if (s.m == 0 || s.n == 0) return true;
  if (s.k > 0) return false;
  if (!accumulate)
    for (int64_t i = 0; i < s.m; ++i) std::memset(c + i * ldc, 0, static_cast<size_t>(s.n) * sizeof(float));
  return true;
}

}  // namespace

void gemm_f32(GemmOperand a, GemmOperand b, float* c, int64_t ldc, GemmShape s, bool accumulate) {
  check_operands(a, b, ldc, s);
  if (trivial_product(c, ldc, s, accumulate)) return;
  const Isa isa = active_isa();
  if (isa >= Isa::kAvx512) return gemm_f32_detail::gemm_avx512(a, b, c, ldc, s, accumulate);
  if (isa >= Isa::kAvx2) return gemm_f32_detail::gemm_avx2(a, b, c, ldc, s, accumulate);
  gemm_f32_detail::gemm_portable(a, b, c, ldc, s, accumulate);
}

void gemm_f32_ref(GemmOperand a, GemmOperand b, float* c, int64_t ldc, GemmShape s, bool accumulate) {
  check_operands(a, b, ldc, s);
  if (trivial_product(c, ldc, s, accumulate)) return;
  gemm_f32_detail::gemm_portable(a, b, c, ldc, s, accumulate);
}

int64_t gemm_f32_packed_size(int64_t k, int64_t n) { return k * ((n + 31) / 32 * 32); }

void gemm_f32_pack_b(GemmOperand b, int64_t k, int64_t n, float* dst) {
  MOE_CHECK(k >= 0 && n >= 0 && (b.rs == 1 || b.cs == 1));
  if (k == 0 || n == 0) return;
  if (active_isa() >= Isa::kAvx512) return gemm_f32_detail::pack_b_avx512(b, k, n, dst);
  gemm_f32_detail::pack_b_portable(b, 0, n, 0, k, dst);
}

void gemm_f32_pack_b_ref(GemmOperand b, int64_t k, int64_t n, float* dst) {
  MOE_CHECK(k >= 0 && n >= 0 && (b.rs == 1 || b.cs == 1));
  if (k > 0 && n > 0) gemm_f32_detail::pack_b_portable(b, 0, n, 0, k, dst);
}

void gemm_f32_packed(GemmOperand a, const float* packed, int64_t packed_k, int64_t p0, float* c, int64_t ldc,
                     GemmShape s, bool accumulate) {
  check_packed(a, packed_k, p0, ldc, s);
  if (trivial_product(c, ldc, s, accumulate)) return;
  const Isa isa = active_isa();
  if (isa >= Isa::kAvx512) return gemm_f32_detail::gemm_packed_avx512(a, packed, packed_k, p0, c, ldc, s, accumulate);
  if (isa >= Isa::kAvx2) return gemm_f32_detail::gemm_packed_avx2(a, packed, packed_k, p0, c, ldc, s, accumulate);
  gemm_f32_detail::gemm_packed_portable(a, packed, packed_k, p0, c, ldc, s, accumulate);
}

void gemm_f32_packed_ref(GemmOperand a, const float* packed, int64_t packed_k, int64_t p0, float* c, int64_t ldc,
                         GemmShape s, bool accumulate) {
  check_packed(a, packed_k, p0, ldc, s);
  if (trivial_product(c, ldc, s, accumulate)) return;
  gemm_f32_detail::gemm_packed_portable(a, packed, packed_k, p0, c, ldc, s, accumulate);
}

}  // namespace moe
