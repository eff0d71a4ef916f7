// Rows of 16-bit floats (IEEE half f16, bfloat16) widened to f32 and narrowed back: the KV cache keeps
// its keys and values in 16 bits (half the bytes attention streams at decode) and attention widens a
// span of them at a time into f32 for the matmul kernels. Dispatch on active_isa(): AVX-512 and
// AVX2+F16C convert 16 / 8 values per instruction; the _ref twins convert one value at a time through
// util/dtype.h, and the vector paths give the same bits (round to nearest even; f16 overflows to inf;
// NaN stays NaN).
#pragma once

#include <cstdint>

#include "util/dtype.h"

namespace moe {

inline bool is_half_float(DType t) { return t == DType::kF16 || t == DType::kBF16; }

// dst[i] = src[i] for i < n; t is kF16 or kBF16 (MOE_CHECK).
void widen_half(DType t, const uint16_t* src, float* dst, int64_t n);
void widen_half_ref(DType t, const uint16_t* src, float* dst, int64_t n);
// dst[i] = src[i] rounded to t, for i < n.
void narrow_half(DType t, const float* src, uint16_t* dst, int64_t n);
void narrow_half_ref(DType t, const float* src, uint16_t* dst, int64_t n);

namespace half_detail {
void widen_half_avx512(DType t, const uint16_t* src, float* dst, int64_t n);
void narrow_half_avx512(DType t, const float* src, uint16_t* dst, int64_t n);
void widen_half_avx2(DType t, const uint16_t* src, float* dst, int64_t n);
void narrow_half_avx2(DType t, const float* src, uint16_t* dst, int64_t n);
}  // namespace half_detail

}  // namespace moe
