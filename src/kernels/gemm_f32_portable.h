// The portable f32 GEMM (kernels/gemm_f32.h): B packed into the AVX-512 kernel's 32-column panels,
// then tiles of up to 6 (AVX) or 3 rows x 16 columns (half a panel), summed over p in order with
// GCC/Clang vector types of the file's register width. Included by gemm_f32.cc (baseline x86-64, no
// intrinsics: the scalar twin) and gemm_f32_avx2.cc (AVX2 flags, the multiply-adds fused: the same
// order of sums, one rounding fewer per term). Not for callers outside src/kernels.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "kernels/gemm_f32.h"
#include "runtime/aligned.h"
#ifdef MOE_GEMM_F32_PORTABLE_FMA
#include <immintrin.h>
#endif

namespace moe::gemm_f32_detail {
// Internal linkage on purpose: each including file compiles its own copy with its own ISA flags,
// and the linker must never pick the AVX2 copy for the scalar path.
namespace {

constexpr int kPanel = 32;  // columns of a packed panel (the AVX-512 kernel's layout)
constexpr int kHalf = 16;   // columns of a portable tile
#ifdef __AVX__
constexpr int kPortableMr = 6;  // 12 accumulators of 8 floats (16 registers)
#else
constexpr int kPortableMr = 3;  // 12 accumulators of 4 floats (16 registers)
#endif
constexpr int64_t kPortableKc = 256;
constexpr int64_t kPortableNc = 512;

inline float operand_at(const GemmOperand& x, int64_t r, int64_t c) { return x.data[r * x.rs + c * x.cs]; }

// Panel q, element (p, col) at dst[q*kc*32 + p*32 + col] = B(p0 + p, j0 + q*32 + col); zero past nc.
inline void pack_b_portable(const GemmOperand& b, int64_t j0, int64_t nc, int64_t p0, int64_t kc, float* dst) {
  const int64_t panels = (nc + kPanel - 1) / kPanel;
  for (int64_t q = 0; q < panels; ++q) {
    float* panel = dst + q * kc * kPanel;
    const int64_t cols = std::min<int64_t>(kPanel, nc - q * kPanel);
    if (b.cs == 1) {  // rows of B contiguous: row by row
      for (int64_t p = 0; p < kc; ++p)
        for (int64_t col = 0; col < kPanel; ++col)
          panel[p * kPanel + col] = col < cols ? operand_at(b, p0 + p, j0 + q * kPanel + col) : 0.0f;
    } else {  // columns of B contiguous: column by column
      for (int64_t col = 0; col < kPanel; ++col)
        for (int64_t p = 0; p < kc; ++p)
          panel[p * kPanel + col] = col < cols ? operand_at(b, p0 + p, j0 + q * kPanel + col) : 0.0f;
    }
  }
}

struct PortableTile {
  float* c;
  int64_t ldc;
  int64_t cols;  // valid columns, 1..16
  bool load_c;
};

// A tile row is 16 floats held as GCC/Clang vectors of the widest registers the file is compiled
// for (2 of 8 floats with AVX, 4 of 4 with baseline SSE2); tiles have as many rows as keep the
// accumulators in registers. Written with vectors because the compiler, given scalar loops here,
// vectorizes the sum over p instead (an in-order reduction by permutes, 7x slower).
#ifdef __AVX__
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));
typedef float LanesInMemory __attribute__((vector_size(kLanes * sizeof(float)), aligned(4), may_alias));
constexpr int kVecs = kHalf / kLanes;

// acc + a * b: a multiply and an add (the scalar twin's roundings) or, where the including file
// defines MOE_GEMM_F32_PORTABLE_FMA (the AVX2 build), one fused multiply-add (twice the rate).
#ifdef MOE_GEMM_F32_PORTABLE_FMA
inline Lanes multiply_add(float a, Lanes b, Lanes acc) { return _mm256_fmadd_ps(_mm256_set1_ps(a), b, acc); }
#else
inline Lanes multiply_add(float a, Lanes b, Lanes acc) { return acc + a * b; }
#endif

// C tile [MR, cols] (+)= A[MR, kc] . bp[kc, 16] (row stride 32); A(i, p) at a[i * lda + p] (row-major)
// or a[p * lda + i] (column-major). The sum over p starts from zero and is added to C at the end.
template <int MR, bool kColMajorA>
void micro_portable(const float* a, int64_t lda, const float* bp, int64_t kc, const PortableTile& t) {
  Lanes acc[MR][kVecs] = {};
  for (int64_t p = 0; p < kc; ++p) {
    Lanes b[kVecs];
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) b[v] = *reinterpret_cast<const LanesInMemory*>(bp + p * kPanel + v * kLanes);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const float av = kColMajorA ? a[p * lda + i] : a[i * lda + p];
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) acc[i][v] = multiply_add(av, b[v], acc[i][v]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* c = t.c + i * t.ldc;
    for (int64_t j = 0; j < t.cols; ++j) {
      const float sum = acc[i][j / kLanes][j % kLanes];
      c[j] = t.load_c ? c[j] + sum : sum;
    }
  }
}

using PortableMicroFn = void (*)(const float*, int64_t, const float*, int64_t, const PortableTile&);

template <bool kColMajorA, int... I>
constexpr auto make_portable_table(std::integer_sequence<int, I...>) {
  return std::array<PortableMicroFn, sizeof...(I)>{&micro_portable<I + 1, kColMajorA>...};
}
constexpr auto kPortableRowMajor = make_portable_table<false>(std::make_integer_sequence<int, kPortableMr>{});
constexpr auto kPortableColMajor = make_portable_table<true>(std::make_integer_sequence<int, kPortableMr>{});

// C[m, n] (+)= A[m, kc] . panels (panel q's row p at panels[q * panel_ld * 32 + p * 32]); A starts at a.
inline void tiles_portable(const float* a, bool col_major, int64_t lda, const float* panels, int64_t panel_ld,
                           int64_t kc, float* c, int64_t ldc, int64_t m, int64_t n, bool load_c) {
  const auto& table = col_major ? kPortableColMajor : kPortableRowMajor;
  for (int64_t i0 = 0; i0 < m; i0 += kPortableMr) {
    const int mr = static_cast<int>(std::min<int64_t>(kPortableMr, m - i0));
    const float* ap = a + i0 * (col_major ? 1 : lda);
    for (int64_t j = 0; j < n; j += kHalf) {
      const float* bp = panels + (j / kPanel) * panel_ld * kPanel + j % kPanel;
      const PortableTile t{c + i0 * ldc + j, ldc, std::min<int64_t>(kHalf, n - j), load_c};
      table[mr - 1](ap, lda, bp, kc, t);
    }
  }
}

inline float* portable_pack_scratch(size_t floats) {
  thread_local AlignedBuffer<float> buf;
  if (buf.size() < floats) buf = AlignedBuffer<float>(floats);
  return buf.data();
}

// gemm_f32 on validated arguments (m, n, k > 0).
inline void gemm_portable(GemmOperand a, GemmOperand b, float* c, int64_t ldc, GemmShape s, bool accumulate) {
  const bool col_major = a.rs == 1 && a.cs != 1;
  const int64_t lda = col_major ? a.cs : a.rs;
  const int64_t kc_max = std::min(kPortableKc, s.k);
  const int64_t nc_max = (std::min(kPortableNc, s.n) + kPanel - 1) / kPanel * kPanel;
  float* packed = portable_pack_scratch(static_cast<size_t>(kc_max * nc_max));
  for (int64_t j0 = 0; j0 < s.n; j0 += kPortableNc) {
    const int64_t nc = std::min(kPortableNc, s.n - j0);
    for (int64_t p0 = 0; p0 < s.k; p0 += kPortableKc) {
      const int64_t kc = std::min(kPortableKc, s.k - p0);
      pack_b_portable(b, j0, nc, p0, kc, packed);
      const float* ap = col_major ? a.data + p0 * lda : a.data + p0;
      tiles_portable(ap, col_major, lda, packed, kc, kc, c + j0, ldc, s.m, nc, accumulate || p0 > 0);
    }
  }
}

// gemm_f32_packed on validated arguments (m, n, k > 0).
inline void gemm_packed_portable(GemmOperand a, const float* packed, int64_t packed_k, int64_t p0, float* c,
                                 int64_t ldc, GemmShape s, bool accumulate) {
  const bool col_major = a.rs == 1 && a.cs != 1;
  const int64_t lda = col_major ? a.cs : a.rs;
  tiles_portable(a.data, col_major, lda, packed + p0 * kPanel, packed_k, s.k, c, ldc, s.m, s.n, accumulate);
}

}  // namespace
}  // namespace moe::gemm_f32_detail
