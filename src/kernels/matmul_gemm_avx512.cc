// AVX-512 blocked GEMM for the NT layout: B is packed (16x16 in-register transposes) into
// panels of 32 columns x kc, then a 12x32 micro-kernel (24 zmm accumulators) broadcasts A.
// Blocking: nc = 512 columns x kc = 256 of packed B (512 KiB, L2) per pass; the 12 x kc slice of
// A stays in L1 across the panels. bf16 weights are widened to f32 while packing.
// gemm_panels_avx512: the same micro-kernel on weights already packed into panels (packed_weights.h).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

#include "kernels/avx512_common.h"
#include "kernels/matmul_internal.h"

namespace moe::matmul_detail {
namespace {

using avx512::mask16;
using avx512::transpose16;

constexpr int kMr = 12;
constexpr int kNr = 32;
// Panel kernels: k-steps (128 bytes of B each) between a software prefetch and its use (8 KiB ahead;
// 32-128 measured alike at m = 32, none was 20-25% slower). Only for m >= 8: at m = 1 the hardware
// prefetcher alone reaches the read ceiling and the prefetches cost a few percent.
constexpr int64_t kPrefetchSteps = 64;
constexpr int64_t kKc = 256;
constexpr int64_t kNc = 512;

// 16 consecutive elements of row `row` of B from column p as f32 bits, zero beyond `count`.
inline __m512i load_b16(const WeightView& b, int64_t row, int64_t p, int64_t count) {
  const __mmask16 mk = mask16(count);
  if (b.dtype == DType::kBF16) {
    const uint16_t* src = static_cast<const uint16_t*>(b.data) + row * b.ld + p;
    return _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, src)), 16);
  }
  return _mm512_maskz_loadu_epi32(mk, static_cast<const float*>(b.data) + row * b.ld + p);
}

// Packs B rows [j0, j0+nc) x columns [p0, p0+kc) into panels: panel q, element (p, col) at
// dst[q*kc*32 + p*32 + col], with rows past n (the last panel's padding) zero.
void pack_b_f32(const MatmulArgs& g, int64_t j0, int64_t nc, int64_t p0, int64_t kc, float* dst) {
  for (int64_t jg = 0; jg < nc; jg += 16) {  // 16 rows of B = 16 packed columns
    float* panel = dst + (jg / kNr) * kc * kNr + (jg % kNr);
    for (int64_t p = 0; p < kc; p += 16) {
      __m512i r[16];
      for (int t = 0; t < 16; ++t)
        r[t] = jg + t < nc ? load_b16(g.b, j0 + jg + t, p0 + p, kc - p) : _mm512_setzero_si512();
      transpose16(r);
      const int64_t rows = std::min<int64_t>(16, kc - p);
      for (int64_t t = 0; t < rows; ++t) _mm512_store_si512(panel + (p + t) * kNr, r[t]);
    }
  }
  if (nc % kNr != 0 && nc % kNr <= 16) {  // the last panel's upper 16 columns were never written
    float* panel = dst + (nc / kNr) * kc * kNr + 16;
    for (int64_t p = 0; p < kc; ++p) _mm512_store_ps(panel + p * kNr, _mm512_setzero_ps());
  }
}

}  // namespace

void pack_b_bf16_pairs_avx512(const WeightView& b, int64_t j0, int64_t nc, int64_t p0, int64_t kc, uint32_t* dst) {
  const int64_t kc2 = (kc + 1) / 2;
  for (int64_t jg = 0; jg < nc; jg += 16) {
    uint32_t* panel = dst + (jg / kNr) * kc2 * kNr + (jg % kNr);
    for (int64_t p2 = 0; p2 < kc2; p2 += 16) {
      const __mmask32 mk = kc - 2 * p2 >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << (kc - 2 * p2)) - 1);
      __m512i r[16];
      for (int t = 0; t < 16; ++t) {
        const uint16_t* src = static_cast<const uint16_t*>(b.data) + (j0 + jg + t) * b.ld + p0 + 2 * p2;
        r[t] = jg + t < nc ? _mm512_maskz_loadu_epi16(mk, src) : _mm512_setzero_si512();
      }
      transpose16(r);
      const int64_t rows = std::min<int64_t>(16, kc2 - p2);
      for (int64_t t = 0; t < rows; ++t) _mm512_store_si512(panel + (p2 + t) * kNr, r[t]);
    }
  }
  if (nc % kNr != 0 && nc % kNr <= 16) {
    uint32_t* panel = dst + (nc / kNr) * kc2 * kNr + 16;
    for (int64_t p2 = 0; p2 < kc2; ++p2) _mm512_store_si512(panel + p2 * kNr, _mm512_setzero_si512());
  }
}

namespace {

struct Tile {
  float* c;
  int64_t ldc;
  __mmask16 m0, m1;  // valid columns in the two 16-wide halves
  bool load_c;
  const void* pf = nullptr;  // PF 1/2: first line of this row block's share of the next slice
  int64_t pf_lines = 0;      // PF 1/2: lines in that share
};

// Panel prefetch modes. PF 1 (the first row block of a panel slice, m >= 8): prefetch this slice
// kPrefetchSteps k-steps ahead into L1, and t.pf_lines lines of the next slice from t.pf into L2 spread
// evenly over the k-steps. PF 2 (the other row blocks): only the spread prefetch. Each row block thus
// fetches its share of the next slice (contiguous after this one, in this panel or the next) while this
// one is computed: fetching the whole next slice in one row block asked ~40 GB/s of each core during
// that block, more than a core (or the two together) gets, and the next slice's first block waited.
template <int MR, int PF = 0>
void micro_f32(const float* a, int64_t lda, const float* bp, int64_t kc, const Tile& t) {
  __m512 s0[MR], s1[MR];
  for (int i = 0; i < MR; ++i) s0[i] = s1[i] = _mm512_setzero_ps();
  [[maybe_unused]] int64_t pf_acc = 0;
  [[maybe_unused]] const char* pf = static_cast<const char*>(t.pf);
  for (int64_t p = 0; p < kc; ++p) {
    if constexpr (PF == 1) {
      _mm_prefetch(reinterpret_cast<const char*>(bp + (p + kPrefetchSteps) * kNr), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(bp + (p + kPrefetchSteps) * kNr + 16), _MM_HINT_T0);
    }
    if constexpr (PF == 1 || PF == 2) {
      for (pf_acc += t.pf_lines; pf_acc >= kc; pf_acc -= kc, pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
    }
    const __m512 b0 = _mm512_load_ps(bp + p * kNr);
    const __m512 b1 = _mm512_load_ps(bp + p * kNr + 16);
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * lda + p]);
      s0[i] = _mm512_fmadd_ps(av, b0, s0[i]);
      s1[i] = _mm512_fmadd_ps(av, b1, s1[i]);
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

using MicroFn = void (*)(const float*, int64_t, const float*, int64_t, const Tile&);

template <int PF, int... I>
constexpr auto make_micro_table(std::integer_sequence<int, I...>) {
  return std::array<MicroFn, sizeof...(I)>{&micro_f32<I + 1, PF>...};
}
constexpr auto kMicro = make_micro_table<0>(std::make_integer_sequence<int, kMr>{});
// Indexed by the PF mode of micro_f32.
constexpr std::array<std::array<MicroFn, kMr>, 3> kMicroPanels = {
    kMicro, make_micro_table<1>(std::make_integer_sequence<int, kMr>{}),
    make_micro_table<2>(std::make_integer_sequence<int, kMr>{})};

}  // namespace

void gemm_avx512(const MatmulArgs& g) {
  const int64_t m = g.s.m, n = g.s.n, k = g.s.k;
  const int64_t kc_max = std::min(kKc, k);
  const int64_t nc_max = (std::min(kNc, n) + kNr - 1) / kNr * kNr;
  float* packed = static_cast<float*>(scratch(kScratchB, size_t(kc_max * nc_max) * sizeof(float)));
  for (int64_t j0 = 0; j0 < n; j0 += kNc) {
    const int64_t nc = std::min(kNc, n - j0);
    for (int64_t p0 = 0; p0 < k; p0 += kKc) {
      const int64_t kc = std::min(kKc, k - p0);
      pack_b_f32(g, j0, nc, p0, kc, packed);
      for (int64_t i0 = 0; i0 < m; i0 += kMr) {
        const int mr = int(std::min<int64_t>(kMr, m - i0));
        for (int64_t q = 0; q * kNr < nc; ++q) {
          const int64_t cols = std::min<int64_t>(kNr, nc - q * kNr);
          const Tile t{g.c + i0 * g.ldc + j0 + q * kNr, g.ldc, mask16(cols), mask16(cols - 16), g.accumulate || p0 > 0};
          kMicro[mr - 1](g.a + i0 * g.lda + p0, g.lda, packed + q * kc * kNr, kc, t);
        }
      }
    }
  }
}

void gemm_panels_avx512(const MatmulArgs& g) {
  // kc = 1024: a 128 KiB panel slice stays in L2 across the row blocks; the A rows of one slice
  // (m x 4 KiB) are reused across panels from L2.
  constexpr int64_t kKcPanels = 1024;
  const int64_t m = g.s.m, n = g.s.n, k = g.s.k, ld = g.b.ld;
  const float* b = static_cast<const float*>(g.b.data);
  const int64_t n_rb = row_block_count(m, kMr);
  for (int64_t q = 0; q * kNr < n; ++q) {
    const int64_t cols = std::min<int64_t>(kNr, n - q * kNr);
    const float* panel = b + q * kNr * ld;
    for (int64_t p0 = 0; p0 < k; p0 += kKcPanels) {
      const int64_t kc = std::min(kKcPanels, k - p0);
      const bool last = (q + 1) * kNr >= n && p0 + kc >= k;
      // The next slice (contiguous after this one) goes into L2 spread over all row blocks (panel_prefetch).
      const int64_t next_kc = p0 + kc < k ? std::min(kKcPanels, k - p0 - kc) : std::min(kKcPanels, k);
      // After the last slice: the first slice of the next call's B when the caller named it (next_b).
      const int64_t next_lines = last && !g.next_b ? 0 : next_kc * kNr * 4 / 64;
      const char* next = last ? static_cast<const char*>(g.next_b)
                              : reinterpret_cast<const char*>(p0 + kc < k ? panel + (p0 + kc) * kNr : panel + kNr * ld);
      for (int64_t rb = 0; rb < n_rb; ++rb) {
        const int64_t i0 = rb * m / n_rb, i1 = (rb + 1) * m / n_rb;
        const PanelPrefetch pf = panel_prefetch(m, rb, n_rb, next, next_lines);
        const Tile t{g.c + i0 * g.ldc + q * kNr, g.ldc,    mask16(cols), mask16(cols - 16),
                     g.accumulate || p0 > 0,     pf.first, pf.lines};
        kMicroPanels[pf.mode][i1 - i0 - 1](g.a + i0 * g.lda + p0, g.lda, panel + p0 * kNr, kc, t);
      }
    }
  }
}

}  // namespace moe::matmul_detail
