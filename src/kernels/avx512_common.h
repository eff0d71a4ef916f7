// Small AVX-512 helpers shared by the kernels' *_avx512*.cc files (include only from those: the
// intrinsics need their ISA flags): lane masks for row tails, the 16x16 transpose of packing, and the
// row-count dispatch of kernels templated on their rows.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <utility>

namespace moe::avx512 {
// Internal linkage: each including file compiles its own copy with its own ISA flags.
namespace {

// The first r lanes of 16 or 32 (none for r <= 0: a negative shift count would be undefined; all
// from 16 or 32).
inline __mmask16 mask16(int64_t r) {
  return r <= 0 ? __mmask16(0) : r >= 16 ? __mmask16(0xffff) : __mmask16((1u << r) - 1);
}
inline __mmask32 mask32(int64_t r) {
  return r <= 0 ? __mmask32(0) : r >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << r) - 1);
}

// 16 rows of 32-bit lanes transposed in place (row r lane c -> row c lane r).
inline void transpose16(__m512i (&r)[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  // u[4i+q] lane L holds column 4L+q of rows 4i..4i+3; gather lane L of u[q], u[4+q], u[8+q], u[12+q].
  for (int q = 0; q < 4; ++q) {
    const __m512i w0 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0x88);
    const __m512i w1 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0xdd);
    const __m512i x0 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0x88);
    const __m512i x1 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0xdd);
    r[q] = _mm512_shuffle_i32x4(w0, x0, 0x88);
    r[8 + q] = _mm512_shuffle_i32x4(w0, x0, 0xdd);
    r[4 + q] = _mm512_shuffle_i32x4(w1, x1, 0x88);
    r[12 + q] = _mm512_shuffle_i32x4(w1, x1, 0xdd);
  }
}

// 16 f16 (vcvtph2ps) or bf16 (the bits shifted to the top of a float) values as f32: KV cache rows.
inline __m512 widen_half16(__m256i h, bool f16) {
  if (f16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// fn.template operator()<R>() for R = rn, 1 <= rn <= N (a kernel instantiated per row count).
template <int N, typename F>
inline void with_rows(int rn, F&& fn) {
  [&]<int... I>(std::integer_sequence<int, I...>) {
    ((rn == I + 1 ? (fn.template operator()<I + 1>(), true) : false) || ...);
  }
  (std::make_integer_sequence<int, N>{});
}

}  // namespace
}  // namespace moe::avx512
