// AVX512_BF16 kernels for bf16 weights: A is rounded to bf16 (round to nearest even) and
// vdpbf16ps multiplies bf16 pairs into f32 accumulators, twice the f32 FMA rate. Accuracy is
// that of bf16 activations (~1e-2 relative to the operand norms), as in bf16 inference.
// Decode: streaming tiles over B rows. GEMM: 12x32 micro-kernel on B packed as bf16 pairs, per call
// (gemm_bf16dot) or once at load time (gemm_panels_bf16dot, packed_weights.h).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <type_traits>
#include <utility>

#include "kernels/avx512_common.h"
#include "kernels/matmul_internal.h"

namespace moe::matmul_detail {
namespace {

using avx512::mask16;
using avx512::mask32;

constexpr int kMr = 12;
constexpr int kNr = 32;
// Panel kernels: k-steps (128 bytes of B each) between a software prefetch and its use (8 KiB ahead;
// 32-128 measured alike at m = 32, none was 20-25% slower). Only for m >= 8: at m = 1 the hardware
// prefetcher alone reaches the read ceiling and the prefetches cost a few percent.
constexpr int64_t kPrefetchSteps = 64;
constexpr int64_t kKc = 512;  // k elements per block (256 pairs): a 32 KiB B panel
constexpr int64_t kNc = 512;

inline __m512bh as_bh(__m512i x) { return reinterpret_cast<__m512bh>(x); }

// Rounds rows of A to bf16, row stride kp (a multiple of `align`), zero-padded past k.
int64_t pack_a_bf16(const float* a, int64_t lda, int64_t m, int64_t k, int64_t align, uint16_t* dst) {
  const int64_t kp = (k + align - 1) / align * align;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t p = 0; p < kp; p += 16) {
      const __m512 x = _mm512_maskz_loadu_ps(mask16(k - p), a + i * lda + p);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i * kp + p),
                          reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x)));
    }
  }
  return kp;
}

// The same on gathered rows: row i is rows.x[rows.idx[i]] times rows.scale[i] (one f32 product, then
// the rounding: the bits of pack_a_bf16 on the scaled copy).
void pack_a_bf16_gathered(const GatheredRows& rows, int64_t m, int64_t k, int64_t align, uint16_t* dst) {
  const int64_t kp = (k + align - 1) / align * align;
  for (int64_t i = 0; i < m; ++i) {
    const float* src = rows.x + int64_t(rows.idx[i]) * rows.ldx;
    const __m512 w = _mm512_set1_ps(rows.scale ? rows.scale[i] : 1.0f);
    for (int64_t p = 0; p < kp; p += 16) {
      const __mmask16 live = mask16(k - p);
      __m512 x = _mm512_maskz_loadu_ps(live, src + p);
      if (rows.scale) x = _mm512_maskz_mul_ps(live, x, w);  // the padding stays 0 whatever the scale
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i * kp + p),
                          reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x)));
    }
  }
}

template <int MR>
constexpr int decode_nr() {
  return MR == 1 ? 8 : MR == 2 ? 6 : MR == 3 ? 5 : MR <= 5 ? 4 : MR <= 7 ? 3 : 2;
}

template <int MR, int NR>
void tile_dot(const uint16_t* a, int64_t lda, const uint16_t* b, int64_t ldb, float* c, int64_t ldc, int64_t k,
              bool accumulate) {
  __m512 s[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR; ++r) s[i][r] = _mm512_setzero_ps();
  auto step = [&](int64_t p, auto tail) {  // full chunks unmasked, the tail masked
    __m512i bv[NR];
    for (int r = 0; r < NR; ++r) {
      if constexpr (decltype(tail)::value) {
        bv[r] = _mm512_maskz_loadu_epi16(mask32(k - p), b + r * ldb + p);
      } else {
        bv[r] = _mm512_loadu_si512(b + r * ldb + p);
      }
    }
    for (int i = 0; i < MR; ++i) {
      const __m512i av = _mm512_load_si512(a + i * lda + p);
      for (int r = 0; r < NR; ++r) s[i][r] = _mm512_dpbf16_ps(s[i][r], as_bh(av), as_bh(bv[r]));
    }
  };
  int64_t p = 0;
  for (; p + 32 <= k; p += 32) step(p, std::false_type{});
  if (p < k) step(p, std::true_type{});
  for (int i = 0; i < MR; ++i) {
    for (int r = 0; r < NR; ++r) {
      const float v = _mm512_reduce_add_ps(s[i][r]);
      c[i * ldc + r] = accumulate ? c[i * ldc + r] + v : v;
    }
  }
}

template <int MR>
void decode_rows(const MatmulArgs& g, const uint16_t* a, int64_t lda, float* c) {
  constexpr int NR = decode_nr<MR>();
  const int64_t n = g.s.n, k = g.s.k, ldb = g.b.ld, ldc = g.ldc;
  const uint16_t* b = static_cast<const uint16_t*>(g.b.data);
  int64_t j = 0;
  for (; j + NR <= n; j += NR) tile_dot<MR, NR>(a, lda, b + j * ldb, ldb, c + j, ldc, k, g.accumulate);
  for (; j < n; ++j) tile_dot<MR, 1>(a, lda, b + j * ldb, ldb, c + j, ldc, k, g.accumulate);
}

struct Tile {
  float* c;
  int64_t ldc;
  __mmask16 m0, m1;
  bool load_c;
  const void* pf = nullptr;  // PF 1/2: first line of this row block's share of the next slice
  int64_t pf_lines = 0;      // PF 1/2: lines in that share
};

// a: bf16 pairs of MR rows (row stride lda2 pairs); bp: one packed panel of kc2 pairs x 32 columns.
// Panel prefetch modes. PF 1 (the first row block of a panel slice, m >= 8): prefetch this slice
// kPrefetchSteps k-steps ahead into L1, and t.pf_lines lines of the next slice from t.pf into L2 spread
// evenly over the k-steps. PF 2 (the other row blocks): only the spread prefetch. Each row block thus
// fetches its share of the next slice (contiguous after this one, in this panel or the next) while this
// one is computed: fetching the whole next slice in one row block asked ~40 GB/s of each core during
// that block, more than a core (or the two together) gets, and the next slice's first block waited.
template <int MR, int PF = 0>
void micro_dot(const uint32_t* a, int64_t lda2, const uint32_t* bp, int64_t kc2, const Tile& t) {
  __m512 s0[MR], s1[MR];
  for (int i = 0; i < MR; ++i) s0[i] = s1[i] = _mm512_setzero_ps();
  [[maybe_unused]] int64_t pf_acc = 0;
  [[maybe_unused]] const char* pf = reinterpret_cast<const char*>(t.pf);
  for (int64_t p2 = 0; p2 < kc2; ++p2) {
    if constexpr (PF == 1) {
      _mm_prefetch(reinterpret_cast<const char*>(bp + (p2 + kPrefetchSteps) * kNr), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(bp + (p2 + kPrefetchSteps) * kNr + 16), _MM_HINT_T0);
    }
    if constexpr (PF == 1 || PF == 2) {
      for (pf_acc += t.pf_lines; pf_acc >= kc2; pf_acc -= kc2, pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
    }
    const __m512bh b0 = as_bh(_mm512_load_si512(bp + p2 * kNr));
    const __m512bh b1 = as_bh(_mm512_load_si512(bp + p2 * kNr + 16));
    for (int i = 0; i < MR; ++i) {
      const __m512bh av = as_bh(_mm512_set1_epi32(int(a[i * lda2 + p2])));
      s0[i] = _mm512_dpbf16_ps(s0[i], av, b0);
      s1[i] = _mm512_dpbf16_ps(s1[i], av, b1);
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* c = t.c + i * t.ldc;
    if (t.load_c) {
      s0[i] = _mm512_add_ps(s0[i], _mm512_maskz_loadu_ps(t.m0, c));
      s1[i] = _mm512_add_ps(s1[i], _mm512_maskz_loadu_ps(t.m1, c + 16));
    }
    _mm512_mask_storeu_ps(c, t.m0, s0[i]);
    _mm512_mask_storeu_ps(c + 16, t.m1, s1[i]);
  }
}

// One row (m = 1) against kNp whole panels at once, each kc2 pairs from bp + q * panel_stride: kNp
// concurrent streams of B instead of one keep more cache lines in flight. A decode step is bound by each
// core's lines in flight, not by its dot rate: Qwen3's 1-token layer went from 78-82% to 87-88% of the
// paired read ceiling (8 streams measured the same as 4).
constexpr int kNp = 4;
void row_dot_panels(const uint32_t* a, const uint32_t* bp, int64_t panel_stride, int64_t kc2, float* c, bool load_c) {
  __m512 s[2 * kNp];
  for (__m512& v : s) v = _mm512_setzero_ps();
  for (int64_t p2 = 0; p2 < kc2; ++p2) {
    const __m512bh av = as_bh(_mm512_set1_epi32(int(a[p2])));
    for (int q = 0; q < kNp; ++q) {
      const uint32_t* b = bp + q * panel_stride + p2 * kNr;
      s[2 * q] = _mm512_dpbf16_ps(s[2 * q], av, as_bh(_mm512_load_si512(b)));
      s[2 * q + 1] = _mm512_dpbf16_ps(s[2 * q + 1], av, as_bh(_mm512_load_si512(b + 16)));
    }
  }
  for (int j = 0; j < 2 * kNp; ++j) {
    float* cj = c + j * 16;
    _mm512_storeu_ps(cj, load_c ? _mm512_add_ps(s[j], _mm512_loadu_ps(cj)) : s[j]);
  }
}

using MicroFn = void (*)(const uint32_t*, int64_t, const uint32_t*, int64_t, const Tile&);

template <int PF, int... I>
constexpr auto make_micro_table(std::integer_sequence<int, I...>) {
  return std::array<MicroFn, sizeof...(I)>{&micro_dot<I + 1, PF>...};
}
constexpr auto kMicro = make_micro_table<0>(std::make_integer_sequence<int, kMr>{});
// Indexed by the PF mode of micro_dot.
constexpr std::array<std::array<MicroFn, kMr>, 3> kMicroPanels = {
    kMicro, make_micro_table<1>(std::make_integer_sequence<int, kMr>{}),
    make_micro_table<2>(std::make_integer_sequence<int, kMr>{})};

}  // namespace

void decode_bf16dot_avx512bf16(const MatmulArgs& g) {
  const int64_t kp = (g.s.k + 31) / 32 * 32;
  uint16_t* a = static_cast<uint16_t*>(scratch(kScratchA, size_t(g.s.m * kp) * sizeof(uint16_t)));
  pack_a_bf16(g.a, g.lda, g.s.m, g.s.k, 32, a);
  for (int64_t i0 = 0; i0 < g.s.m; i0 += 8) {
    const uint16_t* ai = a + i0 * kp;
    float* ci = g.c + i0 * g.ldc;
    switch (std::min<int64_t>(8, g.s.m - i0)) {
      case 1:
        decode_rows<1>(g, ai, kp, ci);
        break;
      case 2:
        decode_rows<2>(g, ai, kp, ci);
        break;
      case 3:
        decode_rows<3>(g, ai, kp, ci);
        break;
      case 4:
        decode_rows<4>(g, ai, kp, ci);
        break;
      case 5:
        decode_rows<5>(g, ai, kp, ci);
        break;
      case 6:
        decode_rows<6>(g, ai, kp, ci);
        break;
      case 7:
        decode_rows<7>(g, ai, kp, ci);
        break;
      default:
        decode_rows<8>(g, ai, kp, ci);
        break;
    }
  }
}

void gemm_bf16dot_avx512bf16(const MatmulArgs& g) {
  const int64_t m = g.s.m, n = g.s.n, k = g.s.k;
  const int64_t kp = (k + 1) / 2 * 2;
  uint16_t* a = static_cast<uint16_t*>(scratch(kScratchA, size_t(m * kp + 16) * sizeof(uint16_t)));
  pack_a_bf16(g.a, g.lda, m, k, 2, a);
  const uint32_t* a2 = reinterpret_cast<const uint32_t*>(a);
  const int64_t lda2 = kp / 2;
  const int64_t kc2_max = (std::min(kKc, k) + 1) / 2;
  const int64_t nc_max = (std::min(kNc, n) + kNr - 1) / kNr * kNr;
  uint32_t* packed = static_cast<uint32_t*>(scratch(kScratchB, size_t(kc2_max * nc_max) * sizeof(uint32_t)));
  for (int64_t j0 = 0; j0 < n; j0 += kNc) {
    const int64_t nc = std::min(kNc, n - j0);
    for (int64_t p0 = 0; p0 < k; p0 += kKc) {
      const int64_t kc = std::min(kKc, k - p0), kc2 = (kc + 1) / 2;
      pack_b_bf16_pairs_avx512(g.b, j0, nc, p0, kc, packed);
      for (int64_t i0 = 0; i0 < m; i0 += kMr) {
        const int mr = int(std::min<int64_t>(kMr, m - i0));
        for (int64_t q = 0; q * kNr < nc; ++q) {
          const int64_t cols = std::min<int64_t>(kNr, nc - q * kNr);
          const Tile t{g.c + i0 * g.ldc + j0 + q * kNr, g.ldc, mask16(cols), mask16(cols - 16), g.accumulate || p0 > 0};
          kMicro[mr - 1](a2 + i0 * lda2 + p0 / 2, lda2, packed + q * kc2 * kNr, kc2, t);
        }
      }
    }
  }
}

namespace {

// The panel product on A already rounded into bf16 pairs (a2, row stride lda2 pairs).
void panels_bf16dot_packed_a(const MatmulArgs& g, const uint32_t* a2, int64_t lda2);

}  // namespace

void gemm_panels_bf16dot_avx512bf16(const MatmulArgs& g) {
  const int64_t kp = (g.s.k + 1) / 2 * 2;
  uint16_t* a = static_cast<uint16_t*>(scratch(kScratchA, size_t(g.s.m * kp + 16) * sizeof(uint16_t)));
  pack_a_bf16(g.a, g.lda, g.s.m, g.s.k, 2, a);
  panels_bf16dot_packed_a(g, reinterpret_cast<const uint32_t*>(a), kp / 2);
}

void gemm_panels_bf16dot_dual_avx512bf16(const MatmulArgs& g0, const MatmulArgs& g1) {
  const int64_t kp = (g0.s.k + 1) / 2 * 2;
  uint16_t* a = static_cast<uint16_t*>(scratch(kScratchA, size_t(g0.s.m * kp + 16) * sizeof(uint16_t)));
  pack_a_bf16(g0.a, g0.lda, g0.s.m, g0.s.k, 2, a);  // once for both products
  panels_bf16dot_packed_a(g0, reinterpret_cast<const uint32_t*>(a), kp / 2);
  panels_bf16dot_packed_a(g1, reinterpret_cast<const uint32_t*>(a), kp / 2);
}

void gemm_panels_bf16dot_dual_gathered_avx512bf16(const GatheredRows& rows, const MatmulArgs& g0,
                                                  const MatmulArgs& g1) {
  const int64_t kp = (g0.s.k + 1) / 2 * 2;
  uint16_t* a = static_cast<uint16_t*>(scratch(kScratchA, size_t(g0.s.m * kp + 16) * sizeof(uint16_t)));
  pack_a_bf16_gathered(rows, g0.s.m, g0.s.k, 2, a);
  panels_bf16dot_packed_a(g0, reinterpret_cast<const uint32_t*>(a), kp / 2);
  panels_bf16dot_packed_a(g1, reinterpret_cast<const uint32_t*>(a), kp / 2);
}

void gemm_panels_bf16dot_bf16a_avx512bf16(const MatmulArgs& g, const uint32_t* a2, int64_t lda2) {
  panels_bf16dot_packed_a(g, a2, lda2);
}

void round_bf16_avx512bf16(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 live = mask16(n - i);
    _mm256_mask_storeu_epi16(out + i, live,
                             reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(live, x + i))));
  }
}

namespace {

void panels_bf16dot_packed_a(const MatmulArgs& g, const uint32_t* a2, int64_t lda2) {
  constexpr int64_t kKc2Panels = 1024;  // pairs per slice: a 128 KiB panel slice stays in L2 across row blocks
  const int64_t m = g.s.m, n = g.s.n, k = g.s.k;
  const int64_t k2 = (k + 1) / 2, ld2 = g.b.ld / 2;
  const uint32_t* b = static_cast<const uint32_t*>(g.b.data);
  const int64_t n_rb = row_block_count(m, kMr);
  int64_t q = 0;
  if (m == 1) {  // whole groups of kNp full panels first
    for (; (q + kNp) * kNr <= n; q += kNp) {
      for (int64_t p0 = 0; p0 < k2; p0 += kKc2Panels) {
        row_dot_panels(a2 + p0, b + q * kNr * ld2 + p0 * kNr, kNr * ld2, std::min(kKc2Panels, k2 - p0), g.c + q * kNr,
                       g.accumulate || p0 > 0);
      }
    }
  }
  for (; q * kNr < n; ++q) {
    const int64_t cols = std::min<int64_t>(kNr, n - q * kNr);
    const uint32_t* panel = b + q * kNr * ld2;
    for (int64_t p0 = 0; p0 < k2; p0 += kKc2Panels) {
      const int64_t kc2 = std::min(kKc2Panels, k2 - p0);
      const bool last = (q + 1) * kNr >= n && p0 + kc2 >= k2;
      // The next slice (contiguous after this one, in this panel or the next) goes into L2 spread over
      // all row blocks of this one (panel_prefetch): fetching it in one row block asked ~40 GB/s of each
      // core during that block, more than a core (or the two together) gets.
      const int64_t next_kc2 = p0 + kc2 < k2 ? std::min(kKc2Panels, k2 - p0 - kc2) : std::min(kKc2Panels, k2);
      // After the last slice: the first slice of the next call's B when the caller named it (next_b).
      const int64_t next_lines = last && !g.next_b ? 0 : next_kc2 * kNr * 4 / 64;
      const char* next =
          last ? static_cast<const char*>(g.next_b)
               : reinterpret_cast<const char*>(p0 + kc2 < k2 ? panel + (p0 + kc2) * kNr : panel + kNr * ld2);
      for (int64_t rb = 0; rb < n_rb; ++rb) {
        const int64_t i0 = rb * m / n_rb, i1 = (rb + 1) * m / n_rb;
        const PanelPrefetch pf = panel_prefetch(m, rb, n_rb, next, next_lines);
        const Tile t{g.c + i0 * g.ldc + q * kNr, g.ldc,    mask16(cols), mask16(cols - 16),
                     g.accumulate || p0 > 0,     pf.first, pf.lines};
        kMicroPanels[pf.mode][i1 - i0 - 1](a2 + i0 * lda2 + p0, lda2, panel + p0 * kNr, kc2, t);
      }
    }
  }
}

}  // namespace

}  // namespace moe::matmul_detail
