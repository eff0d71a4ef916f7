// AVX-512 ceiling loops (compiled with AVX-512 flags; called only when the CPU has them).
#include <immintrin.h>

#include "kernels/ceilings.h"

namespace moe::ceilings_detail {

double read_sum_avx512(const float* a, size_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    s0 = _mm512_add_ps(s0, _mm512_load_ps(a + i));
    s1 = _mm512_add_ps(s1, _mm512_load_ps(a + i + 16));
    s2 = _mm512_add_ps(s2, _mm512_load_ps(a + i + 32));
    s3 = _mm512_add_ps(s3, _mm512_load_ps(a + i + 48));
  }
  double r = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  for (; i < n; ++i) r += a[i];
  return r;
}

// Four equal sub-ranges read in one loop (four hardware-prefetch streams, each 256 bytes ahead in
// software): on some machines one stream per core does not keep enough lines in flight.
double read_sum4_avx512(const float* a, size_t n) {
  const size_t q = n / 4 / 64 * 64;
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i < q; i += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(a + i + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(a + q + i + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(a + 2 * q + i + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(a + 3 * q + i + 64), _MM_HINT_T0);
    s0 = _mm512_add_ps(s0, _mm512_load_ps(a + i));
    s1 = _mm512_add_ps(s1, _mm512_load_ps(a + q + i));
    s2 = _mm512_add_ps(s2, _mm512_load_ps(a + 2 * q + i));
    s3 = _mm512_add_ps(s3, _mm512_load_ps(a + 3 * q + i));
  }
  double r = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  for (size_t i = 4 * q; i < n; ++i) r += a[i];
  return r;
}

void triad_avx512(float* a, const float* b, const float* c, float s, size_t n) {
  const __m512 vs = _mm512_set1_ps(s);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_stream_ps(a + i, _mm512_fmadd_ps(vs, _mm512_load_ps(c + i), _mm512_load_ps(b + i)));
  }
  for (; i < n; ++i) a[i] = b[i] + s * c[i];
  _mm_sfence();
}

double fma_loop_avx512(long iters, float* sink) {
  constexpr int kAcc = 12;
  __m512 acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_set1_ps(1.0f + j * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), add = _mm512_set1_ps(1e-7f);
  for (long i = 0; i < iters; ++i) {
    for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_fmadd_ps(acc[j], m, add);
  }
  __m512 s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm512_add_ps(s, acc[j]);
  *sink += _mm512_reduce_add_ps(s);
  return 2.0 * 16 * kAcc * static_cast<double>(iters);
}

}  // namespace moe::ceilings_detail
