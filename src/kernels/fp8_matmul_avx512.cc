// AVX-512 kernels for F8_E4M3_B128 weights (fp8_matmul.h). E4M3 code s.eeee.mmm to f32 exactly: sign-extend
// the byte to 16 bits, shift left by 7 and clear bit 14: s.0.eeee.mmm.0000000 is the f16 whose value is the
// E4M3 value times 2^-8 (subnormals included: f16 has 10 more exponent steps below them), so vcvtph2ps and
// one multiply by scale * 2^8 give fp8(code) * scale with the single f32 rounding of the scalar path.
// (The NaN codes 0x7f / 0xff read as +-480: the loader refuses weights that hold them.)
#include <immintrin.h>

#include <algorithm>

#include "kernels/matmul_internal.h"

namespace moe::matmul_detail {
namespace {

constexpr int64_t kBlock = 128, kBlockBytes = 132;

// 16 codes -> 16 f32, each times `scale` (the block scale times 2^8).
inline __m512 fp8x16(const uint8_t* codes, __m512 scale) {
  const __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes)));
  const __m256i h = _mm256_and_si256(_mm256_slli_epi16(w, 7), _mm256_set1_epi16(static_cast<int16_t>(0xbf80)));
  return _mm512_mul_ps(_mm512_cvtph_ps(h), scale);
}

inline __m512 block_scale(const uint8_t* block) {
  float s;
  __builtin_memcpy(&s, block, 4);
  return _mm512_set1_ps(s * 256.0f);
}

template <int MR>
constexpr int fp8_nr() {
  return MR == 1 ? 4 : MR == 2 ? 4 : MR <= 4 ? 3 : 2;
}

// C[MR, NR] (+)= A[MR, k] . B[NR, k]^T, B rows of F8_E4M3_B128 blocks (row stride rb bytes).
template <int MR, int NR>
void tile_fp8(const float* a, int64_t lda, const uint8_t* b, int64_t rb, float* c, int64_t ldc, int64_t k,
              bool accumulate) {
  __m512 s[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR; ++r) s[i][r] = _mm512_setzero_ps();
  for (int64_t blk = 0; blk < k / kBlock; ++blk) {
    const uint8_t* bb = b + blk * kBlockBytes;
    __m512 sc[NR];
    for (int r = 0; r < NR; ++r) sc[r] = block_scale(bb + r * rb);
    const float* ab = a + blk * kBlock;
    for (int64_t p = 0; p < kBlock; p += 16) {
      __m512 bv[NR];
      for (int r = 0; r < NR; ++r) bv[r] = fp8x16(bb + r * rb + 4 + p, sc[r]);
      for (int i = 0; i < MR; ++i) {
        const __m512 av = _mm512_loadu_ps(ab + i * lda + p);
        for (int r = 0; r < NR; ++r) s[i][r] = _mm512_fmadd_ps(av, bv[r], s[i][r]);
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int r = 0; r < NR; ++r) {
      const float v = _mm512_reduce_add_ps(s[i][r]);
      c[i * ldc + r] = accumulate ? c[i * ldc + r] + v : v;
    }
  }
}

template <int MR>
void decode_rows(const MatmulArgs& g, const float* a, float* c) {
  constexpr int NR = fp8_nr<MR>();
  const auto* b = static_cast<const uint8_t*>(g.b.data);
  const int64_t rb = g.b.ld / kBlock * kBlockBytes, n = g.s.n;
  int64_t j = 0;
  for (; j + NR <= n; j += NR) tile_fp8<MR, NR>(a, g.lda, b + j * rb, rb, c + j, g.ldc, g.s.k, g.accumulate);
  for (; j < n; ++j) tile_fp8<MR, 1>(a, g.lda, b + j * rb, rb, c + j, g.ldc, g.s.k, g.accumulate);
}

}  // namespace

void fp8_row_to_f32_avx512(const uint8_t* row, int64_t k, float* dst) {
  for (int64_t blk = 0; blk < k / kBlock; ++blk) {
    const uint8_t* bb = row + blk * kBlockBytes;
    const __m512 sc = block_scale(bb);
    for (int64_t p = 0; p < kBlock; p += 16) _mm512_storeu_ps(dst + blk * kBlock + p, fp8x16(bb + 4 + p, sc));
  }
}

void decode_fp8_avx512(const MatmulArgs& g) {
  for (int64_t i0 = 0; i0 < g.s.m; i0 += 8) {
    const float* ai = g.a + i0 * g.lda;
    float* ci = g.c + i0 * g.ldc;
    switch (std::min<int64_t>(8, g.s.m - i0)) {
      case 1:
        decode_rows<1>(g, ai, ci);
        break;
      case 2:
        decode_rows<2>(g, ai, ci);
        break;
      case 3:
        decode_rows<3>(g, ai, ci);
        break;
      case 4:
        decode_rows<4>(g, ai, ci);
        break;
      case 5:
        decode_rows<5>(g, ai, ci);
        break;
      case 6:
        decode_rows<6>(g, ai, ci);
        break;
      case 7:
        decode_rows<7>(g, ai, ci);
        break;
      default:
        decode_rows<8>(g, ai, ci);
        break;
    }
  }
}

}  // namespace moe::matmul_detail
