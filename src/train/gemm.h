// Single-threaded f32 GEMM for training shapes: C[m, n] (+)= A[m, k] . B[k, n] where A and B are
// strided views, so one kernel serves the three products of training (A.B^T, A.B, A^T.B) with no
// transposed copies. AVX-512 blocked kernel (B packed in 32-column panels, 12x32 micro-kernel);
// callers fall back to OpenBLAS or loops when gemm_f32_available() is false.
#pragma once

#include <cstdint>

namespace moe::train {

// Element (r, c) of an operand is data[r * rs + c * cs]; one of rs, cs is 1.
struct GemmOperand {
  const float* data = nullptr;
  int64_t rs = 0, cs = 0;
};

struct GemmShape {
  int64_t m = 0, n = 0, k = 0;
};

// True when the fast kernel runs on this CPU at the active ISA level (AVX-512).
bool gemm_f32_available();

// C[i * ldc + j] (+)= sum_p A(i, p) B(p, j). Requires gemm_f32_available(). k == 0 writes zeros
// (or leaves C when accumulating).
void gemm_f32(GemmOperand a, GemmOperand b, float* c, int64_t ldc, GemmShape s, bool accumulate);

// B packed once for several products that each use a prefix of its columns and a range of its
// rows (attention's 32-row blocks, attention_f32.cc), instead of one packing per product.
// gemm_f32_pack_b packs B [k, n] into gemm_f32_packed_size(k, n) floats at dst (64-byte aligned);
// gemm_f32_packed computes C[m, n'] (+)= A[m, k'] . B[p0 : p0 + k', 0 : n'] from it
// (n' = s.n <= n, k' = s.k, p0 + k' <= k). Both require gemm_f32_available().
int64_t gemm_f32_packed_size(int64_t k, int64_t n);
void gemm_f32_pack_b(GemmOperand b, int64_t k, int64_t n, float* dst);
void gemm_f32_packed(GemmOperand a, const float* packed, int64_t packed_k, int64_t p0, float* c, int64_t ldc,
                     GemmShape s, bool accumulate);

namespace gemm_detail {
void gemm_avx512(GemmOperand a, GemmOperand b, float* c, int64_t ldc, GemmShape s, bool accumulate);
void pack_b_avx512(GemmOperand b, int64_t k, int64_t n, float* dst);
void gemm_packed_avx512(GemmOperand a, const float* packed, int64_t packed_k, int64_t p0, float* c, int64_t ldc,
                        GemmShape s, bool accumulate);
}  // namespace gemm_detail

}  // namespace moe::train
