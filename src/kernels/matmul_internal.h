// Internal interface between the matmul dispatcher (matmul.cc) and its per-ISA
// translation units (matmul_avx2.cc, matmul_avx512.cc, matmul_avx512bf16.cc).
// Not for callers outside src/kernels: use kernels/matmul.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/matmul.h"

namespace moe::matmul_detail {

// One matmul_nt call, already validated: m, n, k > 0.
struct MatmulArgs {
  const float* a = nullptr;
  int64_t lda = 0;
  WeightView b;
  float* c = nullptr;
  int64_t ldc = 0;
  MatmulShape s;
  bool accumulate = false;
  const void* next_b = nullptr;  // panel kernels: B of this thread's next call, prefetched during the last slice
};

// Rows of A from which the blocked GEMM (packed panels) beats the streaming GEMV-like
// decode kernel. Below it, every B row is streamed once and dotted with all rows of A.
constexpr int64_t kGemmMinRows = 9;

// Row blocks of at most `mr` rows for m rows, as even as possible (m = 13: 7 + 6, not 12 + 1, so no
// block is a latency-bound sliver). Block b covers [b * m / count, (b + 1) * m / count).
inline int64_t row_block_count(int64_t m, int64_t mr) { return (m + mr - 1) / mr; }

// Per-thread scratch memory, 64-byte aligned, grown on demand and kept for the thread's
// life. `slot` selects one of a few independent buffers (A pack, B pack).
void* scratch(int slot, size_t bytes);
enum ScratchSlot {
  kScratchA = 0,
  kScratchB = 1,
  kScratchGather = 2,
  kScratchQ8 = 3,
  kScratchFp8 = 4,
  kScratchQuantOffsets = 5,
  kScratchCount = 6
};

// F8_E4M3_B128 (kernels/fp8_matmul.h): the streaming kernel (any m, for m <= 8) converting codes in
// registers, and one row of k codes (k % 128 == 0) to f32, bit for bit dequantize_row.
void decode_fp8_avx512(const MatmulArgs& args);
void fp8_row_to_f32_avx512(const uint8_t* row, int64_t k, float* dst);

// Decode (streaming) kernels: any m, best for m <= 8.
void decode_avx512(const MatmulArgs& args);
void decode_avx2(const MatmulArgs& args);
// bf16 weights with A rounded to bf16 and vdpbf16ps (AVX512_BF16); ~1e-2 relative accuracy.
void decode_bf16dot_avx512bf16(const MatmulArgs& args);

// Blocked GEMM kernels with packed B panels: f32 FMA (bf16 weights widened while packing).
void gemm_avx512(const MatmulArgs& args);
void gemm_avx2(const MatmulArgs& args);
// bf16 weights, A rounded to bf16, vdpbf16ps micro-kernel.
void gemm_bf16dot_avx512bf16(const MatmulArgs& args);

// Panel-layout weights (kernels/packed_weights.h), read in place at every m: 12x32 micro-kernels,
// f32 FMA for f32 panels, vdpbf16ps for bf16 pair panels (A rounded to bf16).
// Row block rb of n_rb of a panel slice prefetches its share of the next slice (next_lines cache lines
// from `next`) into L2 while it computes the current one, so no single block asks for the whole slice
// at once; mode is the micro-kernels' PF mode (0: none, for m < 8, where the hardware prefetcher alone
// keeps up and software prefetch cost a few percent; 1: the first block, which also prefetches its own
// slice into L1; 2: the others).
struct PanelPrefetch {
  const char* first;
  int64_t lines;
  int mode;
};
inline PanelPrefetch panel_prefetch(int64_t m, int64_t rb, int64_t n_rb, const char* next, int64_t next_lines) {
  if (m < 8) return {nullptr, 0, 0};
  const int64_t l0 = next_lines * rb / n_rb, l1 = next_lines * (rb + 1) / n_rb;
  return {next + l0 * 64, l1 - l0, rb == 0 ? 1 : 2};
}

void gemm_panels_avx512(const MatmulArgs& args);
void gemm_panels_bf16dot_avx512bf16(const MatmulArgs& args);
// Two products of the same A (gate and up): A rounded into bf16 pairs once.
void gemm_panels_bf16dot_dual_avx512bf16(const MatmulArgs& g0, const MatmulArgs& g1);
// Panel product on A already in bf16 pairs (g.a unused): a2 rows of lda2 pairs.
void gemm_panels_bf16dot_bf16a_avx512bf16(const MatmulArgs& g, const uint32_t* a2, int64_t lda2);
// vcvtneps2bf16 of n floats.
void round_bf16_avx512bf16(const float* x, int64_t n, uint16_t* out);
// The same on gathered rows (g0.a and g1.a unused): rounded into bf16 pairs straight from rows.x.
void gemm_panels_bf16dot_dual_gathered_avx512bf16(const GatheredRows& rows, const MatmulArgs& g0, const MatmulArgs& g1);

// Packs bf16 B rows [j0, j0+nc) x columns [p0, p0+kc) (p0 even) into panels of 32 columns
// of bf16 pairs: panel q, pair p2 (columns 2*p2, 2*p2+1 of the block), column col at
// dst[q*kc2*32 + p2*32 + col] with kc2 = ceil(kc/2); padding (odd kc, rows past nc) is zero.
void pack_b_bf16_pairs_avx512(const WeightView& b, int64_t j0, int64_t nc, int64_t p0, int64_t kc, uint32_t* dst);

}  // namespace moe::matmul_detail
