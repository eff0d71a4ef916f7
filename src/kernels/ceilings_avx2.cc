// AVX2 + FMA ceiling loops (compiled with -mavx2 -mfma; called only when the CPU has them).
#include <immintrin.h>

#include "kernels/ceilings.h"

namespace moe::ceilings_detail {

double read_sum_avx2(const float* a, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_load_ps(a + i));
    s1 = _mm256_add_ps(s1, _mm256_load_ps(a + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_load_ps(a + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_load_ps(a + i + 24));
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
  float buf[8];
  _mm256_storeu_ps(buf, s);
  double r = 0;
  for (float v : buf) r += v;
  for (; i < n; ++i) r += a[i];
  return r;
}

// Four sub-ranges in one loop, as read_sum4_avx512.
double read_sum4_avx2(const float* a, size_t n) {
  const size_t q = n / 4 / 32 * 32;
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i < q; i += 8) {
    if (i % 16 == 0) {
      _mm_prefetch(reinterpret_cast<const char*>(a + i + 64), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(a + q + i + 64), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(a + 2 * q + i + 64), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(a + 3 * q + i + 64), _MM_HINT_T0);
    }
    s0 = _mm256_add_ps(s0, _mm256_load_ps(a + i));
    s1 = _mm256_add_ps(s1, _mm256_load_ps(a + q + i));
    s2 = _mm256_add_ps(s2, _mm256_load_ps(a + 2 * q + i));
    s3 = _mm256_add_ps(s3, _mm256_load_ps(a + 3 * q + i));
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
  float buf[8];
  _mm256_storeu_ps(buf, s);
  double r = 0;
  for (float v : buf) r += v;
  for (size_t i = 4 * q; i < n; ++i) r += a[i];
  return r;
}

void triad_avx2(float* a, const float* b, const float* c, float s, size_t n) {
  const __m256 vs = _mm256_set1_ps(s);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_stream_ps(a + i, _mm256_fmadd_ps(vs, _mm256_load_ps(c + i), _mm256_load_ps(b + i)));
  }
  for (; i < n; ++i) a[i] = b[i] + s * c[i];
  _mm_sfence();
}

double fma_loop_avx2(long iters, float* sink) {
  constexpr int kAcc = 10;
  __m256 acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = _mm256_set1_ps(1.0f + j * 1e-3f);
  const __m256 m = _mm256_set1_ps(0.999999f), add = _mm256_set1_ps(1e-7f);
  for (long i = 0; i < iters; ++i) {
    for (int j = 0; j < kAcc; ++j) acc[j] = _mm256_fmadd_ps(acc[j], m, add);
  }
  __m256 s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm256_add_ps(s, acc[j]);
  float buf[8];
  _mm256_storeu_ps(buf, s);
  *sink += buf[0];
  return 2.0 * 8 * kAcc * static_cast<double>(iters);
}

// The AVX2 quantized kernels' int8 dot product (quant_matmul_avx2.cc): vpmaddubsw (u8 x s8 into i16
// pairs), vpmaddwd with ones, vpaddd: 32 multiply-adds per three instructions.
double dot_i8_loop_avx2(long iters, float* sink) {
  constexpr int kAcc = 8;
  __m256i acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = _mm256_setzero_si256();
  __m256i a = _mm256_set1_epi32(0x01020304), b[kAcc];
  for (int j = 0; j < kAcc; ++j) b[j] = _mm256_set1_epi32(0x01FF01FF + j);
  const __m256i ones = _mm256_set1_epi16(1);
  for (long i = 0; i < iters; ++i) {
    for (int j = 0; j < kAcc; ++j)
      acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(_mm256_maddubs_epi16(a, b[j]), ones));
    __asm__ volatile("" : "+x"(a));  // a new a each iteration: the products stay inside the loop
  }
  __m256i s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm256_add_epi32(s, acc[j]);
  alignas(32) int32_t v[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(v), s);
  for (int32_t x : v) *sink += static_cast<float>(x);
  return 2.0 * 32 * kAcc * static_cast<double>(iters);
}

}  // namespace moe::ceilings_detail
