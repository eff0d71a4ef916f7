// Dispatch and scalar twins of the 16-bit float row conversions (half_rows.h).
#include "kernels/half_rows.h"

#include "runtime/cpu_features.h"
#include "util/check.h"

namespace moe {

void widen_half_ref(DType t, const uint16_t* src, float* dst, int64_t n) {
  MOE_CHECK(is_half_float(t));
  if (t == DType::kF16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
  }
}

void narrow_half_ref(DType t, const float* src, uint16_t* dst, int64_t n) {
  MOE_CHECK(is_half_float(t));
  if (t == DType::kF16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
  }
}

void widen_half(DType t, const uint16_t* src, float* dst, int64_t n) {
  MOE_CHECK(is_half_float(t));
  if (active_isa() >= Isa::kAvx512) return half_detail::widen_half_avx512(t, src, dst, n);
  if (active_isa() >= Isa::kAvx2) return half_detail::widen_half_avx2(t, src, dst, n);
  widen_half_ref(t, src, dst, n);
}

void narrow_half(DType t, const float* src, uint16_t* dst, int64_t n) {
  MOE_CHECK(is_half_float(t));
  if (active_isa() >= Isa::kAvx512) return half_detail::narrow_half_avx512(t, src, dst, n);
  if (active_isa() >= Isa::kAvx2) return half_detail::narrow_half_avx2(t, src, dst, n);
  narrow_half_ref(t, src, dst, n);
}

}  // namespace moe
