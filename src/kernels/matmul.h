// Single-threaded matmul kernels for expert and projection compute, "NT" layout:
//   C[m, n] (+)= A[m, k] . B[n, k]^T
// A: f32 activations, row-major with row stride lda. B: weights in PyTorch Linear
// layout [out = n, in = k], f32 or bf16, row stride ldb. C: f32, row stride ldc.
// Callers parallelize by splitting m and n into blocks (the MoE layer splits work into
// (expert, row block) items); each kernel call runs on the calling thread only.
// Every optimized variant has the scalar reference twin matmul_nt_ref (double accumulation).
//
// Kernels (chosen per call on active_isa(); see matmul_internal.h and docs/PERFORMANCE.md):
// - m < 9 rows ("decode"): streaming kernel, each B row read once from memory and dotted with
//   all m rows of A; no packing of B, so give it the weights in place. Split n across threads
//   in blocks of >= 64 rows so each thread streams a contiguous slice of B.
// - m >= 9 ("prefill"): blocked GEMM; B is packed per call into per-thread scratch (cost
//   ~n*k, amortized over m), so prefer few calls with many rows over many small calls.
// - Precision: f32 weights use f32 FMA (~1e-6 relative). bf16 weights on AVX512_BF16 CPUs
//   round A to bf16 and use vdpbf16ps at every m (~1e-2 relative to sum |a||b|, the usual bf16
//   inference accuracy, twice the f32 FMA rate); on AVX-512 / AVX2 without it, bf16 is widened
//   to f32 exactly and only f32 rounding remains. MOE_ISA=avx512 forces the exact path.
// - Panel layout (kernels/packed_weights.h): weights packed once at load time into 32-row panels
//   are read in place by one kernel for every m (12x32 micro-kernel, no per-call packing of B).
// - Scratch: each thread keeps grown-on-demand pack buffers (A and B) for its lifetime.
#pragma once

#include <cstdint>

#include "util/dtype.h"

namespace moe {

enum class WeightLayout : uint8_t {
  kRows,    // [n, k] rows (PyTorch Linear layout), ld = elements between rows
  kPanels,  // 32-row panels from pack_panels (kernels/packed_weights.h), ld = padded k of a panel
};

struct WeightView {
  const void* data = nullptr;  // [n, k] rows or panels, f32 or bf16
  DType dtype = DType::kF32;
  int64_t ld = 0;  // kRows: elements between rows; kPanels: k extent of a panel (panel_ld)
  WeightLayout layout = WeightLayout::kRows;
};

// The view of rows [r0, ...) of B (rows of the NT product's B = output columns). kPanels needs r0 % 32 == 0.
WeightView weight_rows(const WeightView& b, int64_t r0);

struct MatmulShape {
  int64_t m = 0, n = 0, k = 0;
};

// C = A . B^T (accumulate=false) or C += A . B^T (accumulate=true). Dispatches on active_isa().
// next_b (optional, panel layouts): the data of the B that this thread's next call reads. The panel
// kernels prefetch each next slice of B into L2 while computing the current one; with next_b the last
// slice prefetches the next call's first one too, so a sequence of short calls (the MoE down projection,
// one per expert) streams without a stall at every call. A hint only: results do not depend on it.
void matmul_nt(const float* a, int64_t lda, const WeightView& b, float* c, int64_t ldc, MatmulShape shape,
               bool accumulate, const void* next_b = nullptr);

// Two weight matrices that share A (gate and up projections of a GLU expert), one pass over A:
//   C0 = A . B0^T, C1 = A . B1^T (overwrites C0 and C1).
void matmul_nt_dual(const float* a, int64_t lda, const WeightView& b0, const WeightView& b1, float* c0, float* c1,
                    int64_t ldc, MatmulShape shape);

// A whose row i is x[idx[i]] times scale[i] (scale null: 1): the rows a MoE layer routes to one expert,
// read where they are instead of first copied into a contiguous buffer (the layer's dispatch).
struct GatheredRows {
  const float* x = nullptr;  // [*, ldx]
  int64_t ldx = 0;
  const int32_t* idx = nullptr;  // [m] row of x for each row of A
  const float* scale = nullptr;  // [m] or null
};

// matmul_nt_dual on gathered rows. Bit for bit the result of matmul_nt_dual on the rows copied (and
// scaled, one f32 product per element) into a contiguous A. bf16 panels on AVX512_BF16 round the rows
// into bf16 pairs straight from x; every other case copies them into per-thread scratch first.
void matmul_nt_dual_gathered(const GatheredRows& a, const WeightView& b0, const WeightView& b1, float* c0, float* c1,
                             int64_t ldc, MatmulShape shape);

// Copies rows of `a` into dst [m, k] (row stride ldd), scaled: the contiguous A of the contract above.
void gather_rows(const GatheredRows& a, int64_t m, int64_t k, float* dst, int64_t ldd);

// Activations rounded to bf16 once by their producer. On bf16 panels with AVX512_BF16 the kernels round
// A to bf16 (round to nearest even) at every call; a producer whose output feeds several calls (the MoE
// down projection's column blocks) rounds it once instead:
// - matmul_rounds_a_to_bf16(b): true when matmul_nt on b rounds A so (bf16 panels on AVX512_BF16);
// - round_to_bf16: that rounding, bit for bit (the kernels' vcvtneps2bf16 where there is one);
// - matmul_nt_bf16a: matmul_nt on such rows, a [m, lda] bf16 (lda even, >= k rounded up to even, the pad
//   column k of an odd k zero). Bit for bit matmul_nt on the rows widened to f32, at every ISA level.
bool matmul_rounds_a_to_bf16(const WeightView& b);
void round_to_bf16(const float* x, int64_t n, uint16_t* out);
void matmul_nt_bf16a(const uint16_t* a, int64_t lda, const WeightView& b, float* c, int64_t ldc, MatmulShape shape,
                     bool accumulate, const void* next_b = nullptr);

// Scalar reference twin: the same contract, double accumulation, no SIMD.
void matmul_nt_ref(const float* a, int64_t lda, const WeightView& b, float* c, int64_t ldc, MatmulShape shape,
                   bool accumulate);

}  // namespace moe
