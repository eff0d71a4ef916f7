// AVX-512 NT matmul kernels: the streaming decode kernel (each B row read once, dotted with
// up to 8 rows of A) and the blocked GEMM (12x32 f32 FMA micro-kernel on packed B panels).
// bf16 weights are widened with a shift: one 512-bit load holds 32 bf16; `x << 16` gives the
// even elements as f32 and `x & 0xffff0000` the odd ones, so A is packed even/odd to match.
#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#include "kernels/avx512_common.h"
#include "kernels/matmul_internal.h"

namespace moe::matmul_detail {
namespace {

using avx512::mask16;
using avx512::mask32;

inline __m512 bf16_even(__m512i x) { return _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)); }
inline __m512 bf16_odd(__m512i x) {
  return _mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32(int(0xffff0000u))));
}

// Accumulators per tile: MR rows of A times NR rows of B, within 32 zmm registers.
template <int MR>
constexpr int decode_nr() {
  return MR == 1 ? 8 : MR == 2 ? 6 : MR == 3 ? 5 : MR <= 5 ? 4 : MR <= 7 ? 3 : 2;
}

template <int MR, int NR>
inline void store_sums(__m512 (&s)[MR][NR], float* c, int64_t ldc, bool accumulate) {
  for (int i = 0; i < MR; ++i) {
    for (int r = 0; r < NR; ++r) {
      const float v = _mm512_reduce_add_ps(s[i][r]);
      c[i * ldc + r] = accumulate ? c[i * ldc + r] + v : v;
    }
  }
}

// C[MR, NR] (+)= A[MR, k] . B[NR, k]^T, f32 weights.
template <int MR, int NR>
void tile_f32(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, int64_t k,
              bool accumulate) {
  __m512 s[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR; ++r) s[i][r] = _mm512_setzero_ps();
  int64_t p = 0;
  for (; p + 16 <= k; p += 16) {
    __m512 bv[NR];
    for (int r = 0; r < NR; ++r) bv[r] = _mm512_loadu_ps(b + r * ldb + p);
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_loadu_ps(a + i * lda + p);
      for (int r = 0; r < NR; ++r) s[i][r] = _mm512_fmadd_ps(av, bv[r], s[i][r]);
    }
  }
  if (p < k) {
    const __mmask16 mk = mask16(k - p);
    __m512 bv[NR];
    for (int r = 0; r < NR; ++r) bv[r] = _mm512_maskz_loadu_ps(mk, b + r * ldb + p);
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_maskz_loadu_ps(mk, a + i * lda + p);
      for (int r = 0; r < NR; ++r) s[i][r] = _mm512_fmadd_ps(av, bv[r], s[i][r]);
    }
  }
  store_sums<MR, NR>(s, c, ldc, accumulate);
}

// bf16 weights; `a` is packed even/odd per 32-element chunk (pack_a_even_odd), row stride lda,
// zero beyond k, so the masked tail load of B is the only tail handling needed.
template <int MR, int NR>
void tile_bf16(const float* a, int64_t lda, const uint16_t* b, int64_t ldb, float* c, int64_t ldc, int64_t k,
               bool accumulate) {
  __m512 s[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR; ++r) s[i][r] = _mm512_setzero_ps();
  // Full chunks load unmasked (masked 16-bit loads are slower); only the tail is masked.
  auto step = [&](int64_t p, auto tail) {
    __m512 be[NR], bo[NR];
    for (int r = 0; r < NR; ++r) {
      __m512i x;
      if constexpr (decltype(tail)::value) {
        x = _mm512_maskz_loadu_epi16(mask32(k - p), b + r * ldb + p);
      } else {
        x = _mm512_loadu_si512(b + r * ldb + p);
      }
      be[r] = bf16_even(x);
      bo[r] = bf16_odd(x);
    }
    for (int i = 0; i < MR; ++i) {
      const __m512 ae = _mm512_load_ps(a + i * lda + p);
      const __m512 ao = _mm512_load_ps(a + i * lda + p + 16);
      for (int r = 0; r < NR; ++r) {
        s[i][r] = _mm512_fmadd_ps(ae, be[r], s[i][r]);
        s[i][r] = _mm512_fmadd_ps(ao, bo[r], s[i][r]);
      }
    }
  };
  int64_t p = 0;
  for (; p + 32 <= k; p += 32) step(p, std::false_type{});
  if (p < k) step(p, std::true_type{});
  store_sums<MR, NR>(s, c, ldc, accumulate);
}

// Reorders each 32-element chunk of A's rows to [16 even elements, 16 odd elements], zero-padded
// to a multiple of 32. Returns the row stride of the packed copy.
int64_t pack_a_even_odd(const float* a, int64_t lda, int64_t m, int64_t k, float* dst) {
  const int64_t kp = (k + 31) / 32 * 32;
  const __m512i even_idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd_idx = _mm512_add_epi32(even_idx, _mm512_set1_epi32(1));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t p = 0; p < kp; p += 32) {
      const __m512 lo = _mm512_maskz_loadu_ps(mask16(k - p), a + i * lda + p);
      const __m512 hi = _mm512_maskz_loadu_ps(mask16(k - p - 16), a + i * lda + p + 16);
      _mm512_store_ps(dst + i * kp + p, _mm512_permutex2var_ps(lo, even_idx, hi));
      _mm512_store_ps(dst + i * kp + p + 16, _mm512_permutex2var_ps(lo, odd_idx, hi));
    }
  }
  return kp;
}

// All n rows of B against MR rows of A (a, c already offset to the first row).
template <int MR>
void decode_rows(const MatmulArgs& g, const float* a, int64_t lda, float* c) {
  constexpr int NR = decode_nr<MR>();
  const int64_t n = g.s.n, k = g.s.k, ldb = g.b.ld, ldc = g.ldc;
  if (g.b.dtype == DType::kBF16) {
    const uint16_t* b = static_cast<const uint16_t*>(g.b.data);
    int64_t j = 0;
    for (; j + NR <= n; j += NR) tile_bf16<MR, NR>(a, lda, b + j * ldb, ldb, c + j, ldc, k, g.accumulate);
    for (; j < n; ++j) tile_bf16<MR, 1>(a, lda, b + j * ldb, ldb, c + j, ldc, k, g.accumulate);
  } else {
    const float* b = static_cast<const float*>(g.b.data);
    int64_t j = 0;
    for (; j + NR <= n; j += NR) tile_f32<MR, NR>(a, lda, b + j * ldb, ldb, c + j, ldc, k, g.accumulate);
    for (; j < n; ++j) tile_f32<MR, 1>(a, lda, b + j * ldb, ldb, c + j, ldc, k, g.accumulate);
  }
}

}  // namespace

void decode_avx512(const MatmulArgs& g) {
  const float* a = g.a;
  int64_t lda = g.lda;
  if (g.b.dtype == DType::kBF16) {
    const int64_t kp = (g.s.k + 31) / 32 * 32;
    float* packed = static_cast<float*>(scratch(kScratchA, size_t(g.s.m * kp) * sizeof(float)));
    lda = pack_a_even_odd(g.a, g.lda, g.s.m, g.s.k, packed);
    a = packed;
  }
  // Up to 8 rows of A per pass over B; more rows (not the decode regime) take further passes.
  for (int64_t i0 = 0; i0 < g.s.m; i0 += 8) {
    const float* ai = a + i0 * lda;
    float* ci = g.c + i0 * g.ldc;
    switch (std::min<int64_t>(8, g.s.m - i0)) {
      case 1:
        decode_rows<1>(g, ai, lda, ci);
        break;
      case 2:
        decode_rows<2>(g, ai, lda, ci);
        break;
      case 3:
        decode_rows<3>(g, ai, lda, ci);
        break;
      case 4:
        decode_rows<4>(g, ai, lda, ci);
        break;
      case 5:
        decode_rows<5>(g, ai, lda, ci);
        break;
      case 6:
        decode_rows<6>(g, ai, lda, ci);
        break;
      case 7:
        decode_rows<7>(g, ai, lda, ci);
        break;
      default:
        decode_rows<8>(g, ai, lda, ci);
        break;
    }
  }
}

}  // namespace moe::matmul_detail
