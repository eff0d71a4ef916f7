// AVX2 + FMA NT matmul kernels, for machines without AVX-512: the streaming decode kernel
// (each B row read once for up to 4 rows of A; bf16 widened by shift with A packed even/odd)
// and a blocked GEMM with a 6x16 micro-kernel (12 ymm accumulators) on packed B panels.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "kernels/matmul_internal.h"

namespace moe::matmul_detail {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Lane mask for the first r (< 8) lanes, for _mm256_maskload_ps.
inline __m256i lane_mask(int64_t r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(r)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <int MR>
constexpr int decode_nr() {
  return MR == 1 ? 4 : MR == 2 ? 3 : 2;
}

template <int MR, int NR>
inline void store_sums(__m256 (&s)[MR][NR], float* c, int64_t ldc, bool accumulate) {
  for (int i = 0; i < MR; ++i) {
    for (int r = 0; r < NR; ++r) {
      const float v = hsum(s[i][r]);
      c[i * ldc + r] = accumulate ? c[i * ldc + r] + v : v;
    }
  }
}

template <int MR, int NR>
void tile_f32(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, int64_t k,
              bool accumulate) {
  __m256 s[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR; ++r) s[i][r] = _mm256_setzero_ps();
  int64_t p = 0;
  for (; p + 8 <= k; p += 8) {
    __m256 bv[NR];
    for (int r = 0; r < NR; ++r) bv[r] = _mm256_loadu_ps(b + r * ldb + p);
    for (int i = 0; i < MR; ++i) {
      const __m256 av = _mm256_loadu_ps(a + i * lda + p);
      for (int r = 0; r < NR; ++r) s[i][r] = _mm256_fmadd_ps(av, bv[r], s[i][r]);
    }
  }
  if (p < k) {
    const __m256i mk = lane_mask(k - p);
    __m256 bv[NR];
    for (int r = 0; r < NR; ++r) bv[r] = _mm256_maskload_ps(b + r * ldb + p, mk);
    for (int i = 0; i < MR; ++i) {
      const __m256 av = _mm256_maskload_ps(a + i * lda + p, mk);
      for (int r = 0; r < NR; ++r) s[i][r] = _mm256_fmadd_ps(av, bv[r], s[i][r]);
    }
  }
  store_sums<MR, NR>(s, c, ldc, accumulate);
}

// 16 bf16 of a B row from p; the k tail goes through a zero-padded copy (AVX2 has no 16-bit masks).
inline __m256i load_bf16x16(const uint16_t* src, int64_t count) {
  if (count >= 16) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
  alignas(32) uint16_t tmp[16] = {};
  std::memcpy(tmp, src, size_t(count) * sizeof(uint16_t));
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(tmp));
}

// `a` packed [8 even, 8 odd] per 16-element chunk, zero past k (pack_a_even_odd).
template <int MR, int NR>
void tile_bf16(const float* a, int64_t lda, const uint16_t* b, int64_t ldb, float* c, int64_t ldc, int64_t k,
               bool accumulate) {
  __m256 s[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR; ++r) s[i][r] = _mm256_setzero_ps();
  const __m256i hi_mask = _mm256_set1_epi32(int(0xffff0000u));
  for (int64_t p = 0; p < k; p += 16) {
    __m256 be[NR], bo[NR];
    for (int r = 0; r < NR; ++r) {
      const __m256i x = load_bf16x16(b + r * ldb + p, k - p);
      be[r] = _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
      bo[r] = _mm256_castsi256_ps(_mm256_and_si256(x, hi_mask));
    }
    for (int i = 0; i < MR; ++i) {
      const __m256 ae = _mm256_load_ps(a + i * lda + p);
      const __m256 ao = _mm256_load_ps(a + i * lda + p + 8);
      for (int r = 0; r < NR; ++r) {
        s[i][r] = _mm256_fmadd_ps(ae, be[r], s[i][r]);
        s[i][r] = _mm256_fmadd_ps(ao, bo[r], s[i][r]);
      }
    }
  }
  store_sums<MR, NR>(s, c, ldc, accumulate);
}

int64_t pack_a_even_odd(const float* a, int64_t lda, int64_t m, int64_t k, float* dst) {
  const int64_t kp = (k + 15) / 16 * 16;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t p = 0; p < kp; p += 16) {
      for (int l = 0; l < 8; ++l) {
        dst[i * kp + p + l] = p + 2 * l < k ? a[i * lda + p + 2 * l] : 0.0f;
        dst[i * kp + p + 8 + l] = p + 2 * l + 1 < k ? a[i * lda + p + 2 * l + 1] : 0.0f;
      }
    }
  }
  return kp;
}

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

// ---- blocked GEMM ----

constexpr int kMr = 6;
constexpr int kNr = 16;
constexpr int64_t kKc = 256;
constexpr int64_t kNc = 256;

// Panel q, element (p, col) at dst[q*kc*16 + p*16 + col]; rows past nc zero.
void pack_b(const WeightView& b, int64_t j0, int64_t nc, int64_t p0, int64_t kc, float* dst) {
  const int64_t panels = (nc + kNr - 1) / kNr;
  for (int64_t q = 0; q < panels; ++q) {
    float* panel = dst + q * kc * kNr;
    for (int col = 0; col < kNr; ++col) {
      const int64_t j = q * kNr + col;
      if (j >= nc) {
        for (int64_t p = 0; p < kc; ++p) panel[p * kNr + col] = 0.0f;
      } else if (b.dtype == DType::kBF16) {
        const uint16_t* src = static_cast<const uint16_t*>(b.data) + (j0 + j) * b.ld + p0;
        for (int64_t p = 0; p < kc; ++p) panel[p * kNr + col] = bf16_to_f32(src[p]);
      } else {
        const float* src = static_cast<const float*>(b.data) + (j0 + j) * b.ld + p0;
        for (int64_t p = 0; p < kc; ++p) panel[p * kNr + col] = src[p];
      }
    }
  }
}

struct Tile {
  float* c;
  int64_t ldc;
  int cols;  // valid columns of the 16
  bool load_c;
};

template <int MR>
void micro(const float* a, int64_t lda, const float* bp, int64_t kc, const Tile& t) {
  __m256 s0[MR], s1[MR];
  for (int i = 0; i < MR; ++i) s0[i] = s1[i] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(bp + p * kNr);
    const __m256 b1 = _mm256_load_ps(bp + p * kNr + 8);
    for (int i = 0; i < MR; ++i) {
      const __m256 av = _mm256_broadcast_ss(a + i * lda + p);
      s0[i] = _mm256_fmadd_ps(av, b0, s0[i]);
      s1[i] = _mm256_fmadd_ps(av, b1, s1[i]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* c = t.c + i * t.ldc;
    if (t.cols == kNr) {
      if (t.load_c) {
        s0[i] = _mm256_add_ps(s0[i], _mm256_loadu_ps(c));
        s1[i] = _mm256_add_ps(s1[i], _mm256_loadu_ps(c + 8));
      }
      _mm256_storeu_ps(c, s0[i]);
      _mm256_storeu_ps(c + 8, s1[i]);
    } else {
      alignas(32) float tmp[kNr];
      _mm256_store_ps(tmp, s0[i]);
      _mm256_store_ps(tmp + 8, s1[i]);
      for (int j = 0; j < t.cols; ++j) c[j] = t.load_c ? c[j] + tmp[j] : tmp[j];
    }
  }
}

using MicroFn = void (*)(const float*, int64_t, const float*, int64_t, const Tile&);

template <int... I>
constexpr auto make_micro_table(std::integer_sequence<int, I...>) {
  return std::array<MicroFn, sizeof...(I)>{&micro<I + 1>...};
}
constexpr auto kMicro = make_micro_table(std::make_integer_sequence<int, kMr>{});

}  // namespace

void decode_avx2(const MatmulArgs& g) {
  const float* a = g.a;
  int64_t lda = g.lda;
  if (g.b.dtype == DType::kBF16) {
    const int64_t kp = (g.s.k + 15) / 16 * 16;
    float* packed = static_cast<float*>(scratch(kScratchA, size_t(g.s.m * kp) * sizeof(float)));
    lda = pack_a_even_odd(g.a, g.lda, g.s.m, g.s.k, packed);
    a = packed;
  }
  for (int64_t i0 = 0; i0 < g.s.m; i0 += 4) {
    const float* ai = a + i0 * lda;
    float* ci = g.c + i0 * g.ldc;
    switch (std::min<int64_t>(4, g.s.m - i0)) {
      case 1:
        decode_rows<1>(g, ai, lda, ci);
        break;
      case 2:
        decode_rows<2>(g, ai, lda, ci);
        break;
      case 3:
        decode_rows<3>(g, ai, lda, ci);
        break;
      default:
        decode_rows<4>(g, ai, lda, ci);
        break;
    }
  }
}

void gemm_avx2(const MatmulArgs& g) {
  const int64_t m = g.s.m, n = g.s.n, k = g.s.k;
  const int64_t kc_max = std::min(kKc, k);
  const int64_t nc_max = (std::min(kNc, n) + kNr - 1) / kNr * kNr;
  float* packed = static_cast<float*>(scratch(kScratchB, size_t(kc_max * nc_max) * sizeof(float)));
  for (int64_t j0 = 0; j0 < n; j0 += kNc) {
    const int64_t nc = std::min(kNc, n - j0);
    for (int64_t p0 = 0; p0 < k; p0 += kKc) {
      const int64_t kc = std::min(kKc, k - p0);
      pack_b(g.b, j0, nc, p0, kc, packed);
      for (int64_t i0 = 0; i0 < m; i0 += kMr) {
        const int mr = int(std::min<int64_t>(kMr, m - i0));
        for (int64_t q = 0; q * kNr < nc; ++q) {
          const Tile t{g.c + i0 * g.ldc + j0 + q * kNr, g.ldc, int(std::min<int64_t>(kNr, nc - q * kNr)),
                       g.accumulate || p0 > 0};
          kMicro[mr - 1](g.a + i0 * g.lda + p0, g.lda, packed + q * kc * kNr, kc, t);
        }
      }
    }
  }
}

}  // namespace moe::matmul_detail
