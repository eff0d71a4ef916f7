// Single-threaded f32 GEMM for training shapes: C[m, n] (+)= A[m, k] . B[k, n] where A and B are
// strided views, so one kernel serves the three products of training (A.B^T, A.B, A^T.B) with no
// transposed copies. B is packed in 32-column panels and a micro-kernel computes a tile of C from
// A read in place: AVX-512 (12x32 tiles, 24 zmm accumulators) when the active ISA has it, else the
// portable twin (3x16 tiles in C++ vector types, compiled for baseline x86-64; the same code with
// AVX2 flags and fused multiply-adds, 6x16 tiles, runs at the AVX2 level). Every entry point works
// at every ISA level.
#pragma once

#include <cstdint>

namespace moe {

// Element (r, c) of an operand is data[r * rs + c * cs]; one of rs, cs is 1.
struct GemmOperand {
  const float* data = nullptr;
  int64_t rs = 0, cs = 0;
};

struct GemmShape {
  int64_t m = 0, n = 0, k = 0;
};

// C[i * ldc + j] (+)= sum_p A(i, p) B(p, j), sums in p order within blocks of 256 (the AVX-512 and
// AVX2 kernels with FMA, the twin with a multiply and an add). k == 0 writes zeros (or leaves C when
// accumulating). Dispatches on active_isa().
void gemm_f32(GemmOperand a, GemmOperand b, float* c, int64_t ldc, GemmShape s, bool accumulate);
// The portable twin (what gemm_f32 runs below AVX-512, and what the tests compare it with).
void gemm_f32_ref(GemmOperand a, GemmOperand b, float* c, int64_t ldc, GemmShape s, bool accumulate);

// B packed once for several products that each use a prefix of its columns and a range of its
// rows (attention's 32-row blocks, train/attention_f32.cc), instead of one packing per product.
// gemm_f32_pack_b packs B [k, n] into gemm_f32_packed_size(k, n) floats at dst (64-byte aligned;
// panel q holds B(p, 32q + col) at dst[q*k*32 + p*32 + col], zero past n: the same layout at
// every ISA); gemm_f32_packed computes C[m, n'] (+)= A[m, k'] . B[p0 : p0 + k', 0 : n'] from it
// (n' = s.n <= n, k' = s.k, p0 + k' <= k).
int64_t gemm_f32_packed_size(int64_t k, int64_t n);
void gemm_f32_pack_b(GemmOperand b, int64_t k, int64_t n, float* dst);
void gemm_f32_packed(GemmOperand a, const float* packed, int64_t packed_k, int64_t p0, float* c, int64_t ldc,
                     GemmShape s, bool accumulate);
// Portable twins of the two above.
void gemm_f32_pack_b_ref(GemmOperand b, int64_t k, int64_t n, float* dst);
void gemm_f32_packed_ref(GemmOperand a, const float* packed, int64_t packed_k, int64_t p0, float* c, int64_t ldc,
                         GemmShape s, bool accumulate);

namespace gemm_f32_detail {
void gemm_avx512(GemmOperand a, GemmOperand b, float* c, int64_t ldc, GemmShape s, bool accumulate);
void pack_b_avx512(GemmOperand b, int64_t k, int64_t n, float* dst);
void gemm_packed_avx512(GemmOperand a, const float* packed, int64_t packed_k, int64_t p0, float* c, int64_t ldc,
                        GemmShape s, bool accumulate);
// The portable kernel compiled with AVX2 flags and FMA (gemm_f32_avx2.cc).
void gemm_avx2(GemmOperand a, GemmOperand b, float* c, int64_t ldc, GemmShape s, bool accumulate);
void gemm_packed_avx2(GemmOperand a, const float* packed, int64_t packed_k, int64_t p0, float* c, int64_t ldc,
                      GemmShape s, bool accumulate);
}  // namespace gemm_f32_detail

}  // namespace moe
