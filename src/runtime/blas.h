// OpenBLAS, loaded at run time, as the f32 GEMM reference and baseline.
// Before loading it we choose its core type from our own CPU detection (SkylakeX
// kernels on AVX-512 machines, Haswell on AVX2), because an inherited
// OPENBLAS_CORETYPE (these machines set Haswell) would silently halve sgemm.
// MOE_OPENBLAS_CORETYPE=<name> overrides our choice; MOE_OPENBLAS_CORETYPE=inherit keeps the environment's.
#pragma once

#include <string>

namespace moe::blas {

// True when libopenblas could be loaded (loads it on first call).
bool available();
// Core type OpenBLAS reports it uses (openblas_get_corename), or "unavailable".
std::string core_name();
// What the environment asked for before we chose (empty when unset).
std::string inherited_coretype();
void set_threads(int n);

// C[M,N] = alpha * A[M,K] * op(B) + beta * C, row-major; op(B) = B^T with B [N,K] when trans_b,
// else B [K,N]. Throws moe::Error when OpenBLAS is not available.
void sgemm(bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta,
           float* c, int ldc);

}  // namespace moe::blas
