// AVX512_BF16 dot-product ceiling loop: vdpbf16ps does 32 multiply-adds of bf16 pairs into 16 f32 lanes.
#include <immintrin.h>

#include "kernels/ceilings.h"

namespace moe::ceilings_detail {

double dot_bf16_loop_avx512bf16(long iters, float* sink) {
  constexpr int kAcc = 12;
  __m512 acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_setzero_ps();
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
  for (long i = 0; i < iters; ++i) {
    for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  }
  __m512 s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm512_add_ps(s, acc[j]);
  *sink += _mm512_reduce_add_ps(s);
  return 2.0 * 32 * kAcc * static_cast<double>(iters);
}

}  // namespace moe::ceilings_detail
