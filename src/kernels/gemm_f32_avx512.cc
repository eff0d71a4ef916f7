// AVX-512 f32 GEMM for training (see gemm_f32.h): B is packed into panels of 32 columns x kc rows
// (a plain copy when B's rows are contiguous, 16x16 in-register transposes when its columns
// are), then a 12x32 micro-kernel (24 zmm accumulators) broadcasts A straight from memory,
// row-major (A.B, A.B^T) or column-major (A^T.B) alike, so A is never copied.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

#include "kernels/avx512_common.h"
#include "kernels/gemm_f32.h"
#include "runtime/aligned.h"

namespace moe::gemm_f32_detail {
namespace {

using avx512::mask16;
using avx512::transpose16;

constexpr int kMr = 12;
constexpr int kNr = 32;
constexpr int64_t kKc = 256;
constexpr int64_t kNc = 512;

// Panel q, element (p, col) at dst[q*kc*32 + p*32 + col] = B(p0 + p, j0 + q*32 + col); zero past nc.
// B usually comes from L3 or memory (weights last touched by the optimizer, activations of the
// forward), so both paths read it in address order and prefetch ahead.
void pack_b(const GemmOperand& b, int64_t j0, int64_t nc, int64_t p0, int64_t kc, float* dst) {
  const int64_t panels = (nc + kNr - 1) / kNr;
  if (b.cs == 1) {  // rows of B contiguous: row by row, 32 columns into each panel
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = b.data + (p0 + p) * b.rs + j0;
      if (p + 4 < kc)
        for (int64_t c0 = 0; c0 < nc; c0 += 16)
          _mm_prefetch(reinterpret_cast<const char*>(src + 4 * b.rs + c0), _MM_HINT_T0);
      for (int64_t q = 0; q < panels; ++q) {
        const int64_t c0 = q * kNr;
        float* row = dst + q * kc * kNr + p * kNr;
        _mm512_store_ps(row, _mm512_maskz_loadu_ps(mask16(nc - c0), src + c0));
        _mm512_store_ps(row + 16, _mm512_maskz_loadu_ps(mask16(nc - c0 - 16), src + c0 + 16));
      }
    }
    return;
  }
  // Columns of B contiguous (B = W^T with W [n, k] rows): 16 rows of W -> 16 packed columns.
  for (int64_t jg = 0; jg < panels * kNr; jg += 16) {
    float* panel = dst + (jg / kNr) * kc * kNr + (jg % kNr);
    const float* src = b.data + (j0 + jg) * b.cs + p0;  // row jg of W, from column p0
    const int64_t valid = std::clamp<int64_t>(nc - jg, 0, 16);
    const bool prefetch_next = jg + 16 < nc;
    for (int64_t p = 0; p < kc; p += 16) {
      const __mmask16 mk = mask16(kc - p);
      __m512i r[16];  // float bits: the transpose only moves them
      if (valid == 16) {
#pragma GCC unroll 16
        for (int t = 0; t < 16; ++t) r[t] = _mm512_maskz_loadu_epi32(mk, src + t * b.cs + p);
      } else {
        for (int t = 0; t < 16; ++t)
          r[t] = t < valid ? _mm512_maskz_loadu_epi32(mk, src + t * b.cs + p) : _mm512_setzero_si512();
      }
      if (prefetch_next)
#pragma GCC unroll 16
        for (int t = 0; t < 16; ++t)
          _mm_prefetch(reinterpret_cast<const char*>(src + (16 + t) * b.cs + p), _MM_HINT_T0);
      transpose16(r);
      const int64_t rows = std::min<int64_t>(16, kc - p);
      for (int64_t t = 0; t < rows; ++t) _mm512_store_si512(panel + (p + t) * kNr, r[t]);
    }
  }
}

struct Tile {
  float* c;
  int64_t ldc;
  __mmask16 m0, m1;  // valid columns of the two 16-wide halves
  bool load_c;
};

// C tile [MR, 32] (+)= A[MR, kc] . panel; A(i, p) at a[i * ars + p * acs].
template <int MR, bool kColMajorA>
void micro(const float* a, int64_t lda, const float* bp, int64_t kc, const Tile& t) {
  // Every loop over MR is unrolled so that the 2 x MR accumulators stay in registers: otherwise
  // GCC keeps a stack copy of the arrays for the store loop and zeroes it with `rep stos` on every
  // call (~8% of the kernel's time at kc = 128).
  __m512 s0[MR], s1[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) s0[i] = s1[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_load_ps(bp + p * kNr);
    const __m512 b1 = _mm512_load_ps(bp + p * kNr + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(kColMajorA ? a[p * lda + i] : a[i * lda + p]);
      s0[i] = _mm512_fmadd_ps(av, b0, s0[i]);
      s1[i] = _mm512_fmadd_ps(av, b1, s1[i]);
    }
  }
  if (t.load_c) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const float* c = t.c + i * t.ldc;
      s0[i] = _mm512_add_ps(s0[i], _mm512_maskz_loadu_ps(t.m0, c));
      s1[i] = _mm512_add_ps(s1[i], _mm512_maskz_loadu_ps(t.m1, c + 16));
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    float* c = t.c + i * t.ldc;
    _mm512_mask_storeu_ps(c, t.m0, s0[i]);
    _mm512_mask_storeu_ps(c + 16, t.m1, s1[i]);
  }
}

using MicroFn = void (*)(const float*, int64_t, const float*, int64_t, const Tile&);

template <bool kColMajorA, int... I>
constexpr auto make_table(std::integer_sequence<int, I...>) {
  return std::array<MicroFn, sizeof...(I)>{&micro<I + 1, kColMajorA>...};
}
constexpr auto kRowMajor = make_table<false>(std::make_integer_sequence<int, kMr>{});
constexpr auto kColMajor = make_table<true>(std::make_integer_sequence<int, kMr>{});

float* pack_scratch(size_t floats) {
  thread_local AlignedBuffer<float> buf;
  if (buf.size() < floats) buf = AlignedBuffer<float>(floats);
  return buf.data();
}

}  // namespace

void gemm_avx512(GemmOperand a, GemmOperand b, float* c, int64_t ldc, GemmShape s, bool accumulate) {
  const bool col_major = a.rs == 1 && a.cs != 1;
  const int64_t lda = col_major ? a.cs : a.rs;
  const auto& table = col_major ? kColMajor : kRowMajor;
  const int64_t kc_max = std::min(kKc, s.k);
  const int64_t nc_max = (std::min(kNc, s.n) + kNr - 1) / kNr * kNr;
  float* packed = pack_scratch(static_cast<size_t>(kc_max * nc_max));
  for (int64_t j0 = 0; j0 < s.n; j0 += kNc) {
    const int64_t nc = std::min(kNc, s.n - j0);
    for (int64_t p0 = 0; p0 < s.k; p0 += kKc) {
      const int64_t kc = std::min(kKc, s.k - p0);
      pack_b(b, j0, nc, p0, kc, packed);
      for (int64_t i0 = 0; i0 < s.m; i0 += kMr) {
        const int mr = static_cast<int>(std::min<int64_t>(kMr, s.m - i0));
        const float* ap = col_major ? a.data + p0 * lda + i0 : a.data + i0 * lda + p0;
        for (int64_t q = 0; q * kNr < nc; ++q) {
          const int64_t cols = nc - q * kNr;
          const Tile t{c + i0 * ldc + j0 + q * kNr, ldc, mask16(cols), mask16(cols - 16), accumulate || p0 > 0};
          table[mr - 1](ap, lda, packed + q * kc * kNr, kc, t);
        }
      }
    }
  }
}

void pack_b_avx512(GemmOperand b, int64_t k, int64_t n, float* dst) { pack_b(b, 0, n, 0, k, dst); }

// Panel q of the packed B holds its rows 0..k at packed + q*k*32; rows p0.. start p0*32 further.
void gemm_packed_avx512(GemmOperand a, const float* packed, int64_t packed_k, int64_t p0, float* c, int64_t ldc,
                        GemmShape s, bool accumulate) {
  const bool col_major = a.rs == 1 && a.cs != 1;
  const int64_t lda = col_major ? a.cs : a.rs;
  const auto& table = col_major ? kColMajor : kRowMajor;
  for (int64_t i0 = 0; i0 < s.m; i0 += kMr) {
    const int mr = static_cast<int>(std::min<int64_t>(kMr, s.m - i0));
    const float* ap = a.data + i0 * (col_major ? 1 : lda);
    for (int64_t q = 0; q * kNr < s.n; ++q) {
      const int64_t cols = s.n - q * kNr;
      const Tile t{c + i0 * ldc + q * kNr, ldc, mask16(cols), mask16(cols - 16), accumulate};
      table[mr - 1](ap, lda, packed + q * packed_k * kNr + p0 * kNr, s.k, t);
    }
  }
}

}  // namespace moe::gemm_f32_detail
