// AVX-512 scores of decode attention over 16-bit keys (see attention_kv16.h): tiles of MR query rows
// by NR keys (MR * NR <= 16 accumulators), each key row's 16 values widened in registers as they load
// (f16 by vcvtph2ps, bf16 by a 16-bit shift), the query rows read from L1. The 16 accumulators of a
// tile are summed across their lanes together (one transposing tree, 15 adds, instead of a reduction
// per accumulator). Keys in tiles (attention_qk16_tiled) need no such tree: a tile's scores come out one per
// lane. The value side is attention_pv16_avx512 (attention_pv_avx512.cc).
#include <immintrin.h>

#include <algorithm>

#include "kernels/attention_kv16.h"
#include "kernels/avx512_common.h"
#include "kernels/prefetch.h"

namespace moe::attention_detail {
namespace {

// Lane x of the result: the sum of v[x]'s 16 lanes.
inline __m512 sum_lanes16(const __m512 (&v)[16]) {
  __m512 t[8], u[4];
  for (int i = 0; i < 8; ++i)  // per 128-bit block: [a0+a2, b0+b2, a1+a3, b1+b3] of v[2i] = a, v[2i+1] = b
    t[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i) {  // per block: the block's sums of v[4i .. 4i + 3]
    const __m512d a = _mm512_castps_pd(t[2 * i]), b = _mm512_castps_pd(t[2 * i + 1]);
    u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  // Blocks summed pairwise, then again: block j of the result holds the totals of v[4j .. 4j + 3].
  const __m512 w0 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x88), _mm512_shuffle_f32x4(u[0], u[1], 0xdd));
  const __m512 w1 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x88), _mm512_shuffle_f32x4(u[2], u[3], 0xdd));
  return _mm512_add_ps(_mm512_shuffle_f32x4(w0, w1, 0x88), _mm512_shuffle_f32x4(w0, w1, 0xdd));
}

// Software prefetch into L2 (prefetcht1) of the keys kKeysAhead positions on and of the values of the
// positions being scored (attention_qk16's values): decode attention's cache comes from memory (the step's
// weights evicted it), and the hardware prefetcher alone left the products waiting on it. Head-major f16
// cache, Qwen3's 32 / 4 heads of 128, 2 threads, rotated copies (attention_bench BM_AttentionDecodeCold,
// 2 alternated runs, us): 512 positions 105-106 -> 72-76, 4096 positions 808-839 -> 618-651. With the cache
// in L3 (BM_AttentionDecode/4096/2/1/1) the extra instructions cost 4%: 492-494 -> 514-516.
constexpr int64_t kKeysAhead = 16;

inline void prefetch_l2(const uint16_t* p, int bytes) { prefetch_lines_l2(reinterpret_cast<uintptr_t>(p), bytes); }

template <int MR>
constexpr int keys_per_tile() {
  return MR == 1 ? 16 : MR == 2 ? 8 : MR == 3 ? 5 : MR == 4 ? 4 : MR == 5 ? 3 : 2;
}

// s[MR, NR] = q[MR, d] . k[NR, d]^T.
template <int MR, int NR>
void tile(const float* q, int64_t ldq, const uint16_t* k, int64_t ldk, bool f16, float* s, int64_t lds, int64_t d) {
  static_assert(MR * NR <= 16);
  __m512 acc[16];
  for (__m512& a : acc) a = _mm512_setzero_ps();
  auto step = [&](int64_t p, __mmask16 mk, bool full) {
    __m512 kv[NR];
    for (int r = 0; r < NR; ++r) {
      const uint16_t* src = k + r * ldk + p;
      kv[r] = avx512::widen_half16(
          full ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src)) : _mm256_maskz_loadu_epi16(mk, src), f16);
    }
    for (int i = 0; i < MR; ++i) {
      const __m512 qv = full ? _mm512_loadu_ps(q + i * ldq + p) : _mm512_maskz_loadu_ps(mk, q + i * ldq + p);
      for (int r = 0; r < NR; ++r) acc[i * NR + r] = _mm512_fmadd_ps(qv, kv[r], acc[i * NR + r]);
    }
  };
  int64_t p = 0;
  for (; p + 16 <= d; p += 16) step(p, 0xffff, true);
  if (p < d) step(p, avx512::mask16(d - p), false);
  alignas(64) float sums[16];
  _mm512_store_ps(sums, sum_lanes16(acc));
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR; ++r) s[i * lds + r] = sums[i * NR + r];
}

// Scores over keys in tiles (attention_qk16_tiled): per dimension p, the tile's 32 keys are two 16-lane
// loads and each query row's q[p] one broadcast, so MR rows take 2 * MR FMAs per 2 key loads and the sums
// come out lane by lane, one score per lane: no reduction across lanes, no scalar stores.
// Prefetch into L2, one line of each per p, spread under the FMAs (a burst of 256 prefetches per tile left
// the kernel waiting on the line fill buffers, half its time): line p of the next tile (d lines: 32 keys of
// 2 bytes per dimension) and line p of this tile's value rows (`value_lines` lines at `values`; 0: none).
constexpr int64_t kTilesAhead = 1;  // the key tile prefetched: this many on (also past the range scored)

struct TilePrefetch {
  uintptr_t keys = 0;  // 0: none
  uintptr_t values = 0;
  int64_t value_lines = 0;
};

template <int MR>
void key_tile(const float* q, int64_t ldq, const uint16_t* kt, bool f16, int64_t d, float* out, int64_t ldo,
              const TilePrefetch& pf) {
  __m512 acc[2 * MR];
  for (__m512& a : acc) a = _mm512_setzero_ps();
  for (int64_t p = 0; p < d; ++p) {
    if (pf.keys != 0) __builtin_prefetch(reinterpret_cast<const void*>(pf.keys + 64 * p), 0, 2);
    if (p < pf.value_lines) __builtin_prefetch(reinterpret_cast<const void*>(pf.values + 64 * p), 0, 2);
    const uint16_t* src = kt + p * kKeyTile;
    const __m512 k0 = avx512::widen_half16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src)), f16);
    const __m512 k1 = avx512::widen_half16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 16)), f16);
    for (int i = 0; i < MR; ++i) {
      const __m512 qb = _mm512_set1_ps(q[i * ldq + p]);
      acc[2 * i] = _mm512_fmadd_ps(qb, k0, acc[2 * i]);
      acc[2 * i + 1] = _mm512_fmadd_ps(qb, k1, acc[2 * i + 1]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    _mm512_storeu_ps(out + i * ldo, acc[2 * i]);
    _mm512_storeu_ps(out + i * ldo + 16, acc[2 * i + 1]);
  }
}

// What key_tile prefetches for tile ti (columns [b, e) of s, j0 its first position's column): only the first
// row block, which reads the keys from memory; value rows other than contiguous ones in a burst here.
TilePrefetch tile_prefetch(const uint16_t* kt, int64_t ti, int64_t d, const uint16_t* values, int64_t ldv, int64_t j0,
                           int64_t b, int64_t e) {
  TilePrefetch pf;
  // An address, not a pointer: past the last tile the look-ahead is a harmless hint.
  pf.keys = reinterpret_cast<uintptr_t>(kt) + static_cast<uintptr_t>(2 * (ti + kTilesAhead) * kKeyTile * d);
  if (values == nullptr) return pf;
  if (ldv == d) {
    pf.values = reinterpret_cast<uintptr_t>(values + (j0 + b) * ldv);
    pf.value_lines = ((e - b) * 2 * d + 63) / 64;
    return pf;
  }
  for (int64_t c = b; c < e; ++c) prefetch_l2(values + (j0 + c) * ldv, static_cast<int>(2 * d));
  return pf;
}

}  // namespace

void attention_qk16_avx512(const float* q, int64_t ldq, const uint16_t* k, int64_t ldk, DType t, float* s, int64_t lds,
                           int64_t m, int64_t n, int64_t d, const uint16_t* values, int64_t ldv) {
  const bool f16 = t == DType::kF16;
  const int row_bytes = static_cast<int>(2 * d);
  for (int64_t i0 = 0; i0 < m; i0 += 8) {
    const int rows = static_cast<int>(std::min<int64_t>(8, m - i0));
    const float* qi = q + i0 * ldq;
    float* si = s + i0 * lds;
    const bool first = i0 == 0;  // the first row block reads the keys from memory
    avx512::with_rows<8>(rows, [&]<int R>() {
      constexpr int NR = keys_per_tile<R>();
      int64_t j = 0;
      for (; j + NR <= n; j += NR) {
        if (first) {
          for (int r = 0; r < NR && j + kKeysAhead + r < n; ++r) prefetch_l2(k + (j + kKeysAhead + r) * ldk, row_bytes);
          if (values != nullptr)
            for (int r = 0; r < NR; ++r) prefetch_l2(values + (j + r) * ldv, row_bytes);
        }
        tile<R, NR>(qi, ldq, k + j * ldk, ldk, f16, si + j, lds, d);
      }
      for (; j < n; ++j) tile<R, 1>(qi, ldq, k + j * ldk, ldk, f16, si + j, lds, d);
    });
  }
}

void attention_qk16_tiled_avx512(const float* q, int64_t ldq, const uint16_t* kt, int64_t first, DType t, float* s,
                                 int64_t lds, int64_t m, int64_t n, int64_t d, const uint16_t* values, int64_t ldv) {
  if (m <= 0 || n <= 0) return;
  const bool f16 = t == DType::kF16;
  const int64_t t0 = first / kKeyTile, t1 = (first + n - 1) / kKeyTile, tile = kKeyTile * d;
  alignas(64) float edge[8 * kKeyTile];
  for (int64_t i0 = 0; i0 < m; i0 += 8) {
    const int rows = static_cast<int>(std::min<int64_t>(8, m - i0));
    const float* qi = q + i0 * ldq;
    float* si = s + i0 * lds;
    const bool first_block = i0 == 0;  // the first row block reads the keys from memory
    avx512::with_rows<8>(rows, [&]<int R>() {
      for (int64_t ti = t0; ti <= t1; ++ti) {
        const int64_t j0 = ti * kKeyTile - first;  // the tile's first position, as a column of s
        const int64_t b = std::max<int64_t>(0, -j0), e = std::min<int64_t>(kKeyTile, n - j0);  // its columns [b, e)
        const TilePrefetch pf = first_block ? tile_prefetch(kt, ti, d, values, ldv, j0, b, e) : TilePrefetch{};
        if (b == 0 && e == kKeyTile) {
          key_tile<R>(qi, ldq, kt + ti * tile, f16, d, si + j0, lds, pf);
          continue;
        }
        key_tile<R>(qi, ldq, kt + ti * tile, f16, d, edge, kKeyTile, pf);  // a partial tile: its columns copied
        for (int i = 0; i < R; ++i) std::copy(edge + i * kKeyTile + b, edge + i * kKeyTile + e, si + i * lds + j0 + b);
      }
    });
  }
}

}  // namespace moe::attention_detail
