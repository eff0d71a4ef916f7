// AVX512-VNNI int8 dot-product ceiling loop: vpdpbusd does 64 multiply-adds of u8 x s8 pairs into 16
// int32 lanes, the instruction the quantized kernels (quant_matmul_avx512vnni.cc) are built on.
#include <immintrin.h>

#include "kernels/ceilings.h"

namespace moe::ceilings_detail {

double dot_i8_loop_avx512vnni(long iters, float* sink) {
  constexpr int kAcc = 12;
  __m512i acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_setzero_si512();
  const __m512i a = _mm512_set1_epi32(0x01020304), b = _mm512_set1_epi32(0x01FF01FF);
  for (long i = 0; i < iters; ++i) {
    for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], a, b);
  }
  __m512i s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm512_add_epi32(s, acc[j]);
  *sink += static_cast<float>(_mm512_reduce_add_epi32(s));
  return 2.0 * 64 * kAcc * static_cast<double>(iters);
}

}  // namespace moe::ceilings_detail
