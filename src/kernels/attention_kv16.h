// Decode attention over a 16-bit KV cache (f16 or bf16 rows: half the bytes of f32), computed on the
// rows where they lie: each 16-value slice is widened in registers as it is loaded, so memory sees only
// the 16-bit bytes and nothing is written back. For the few query rows of decode (the heads sharing a
// kv head, m < 16). The AVX-512 kernels run when attention_kv16_native(); elsewhere the functions run
// their scalar twins, and attention widens spans of rows into f32 for the f32 kernels instead.
#pragma once

#include <cstdint>

#include "kernels/attention_pv.h"
#include "util/dtype.h"

namespace moe {

// True when attention_qk16 / attention_pv16 have a vector kernel on this machine (AVX-512).
bool attention_kv16_native();

// s[i * lds + j] = sum_p q[i * ldq + p] * k[j * ldk + p] for i < m, j < n, p < d; k is kF16 or kBF16.
// values (optional, a hint): the value rows of the same positions (ldv apart, d wide), prefetched into L2
// as the keys are read, so that the value product after the softmax finds them there: decode attention
// reads a cache that the step's weights evicted, and this way its memory time runs under the scores.
void attention_qk16(const float* q, int64_t ldq, const uint16_t* k, int64_t ldk, DType t, float* s, int64_t lds,
                    int64_t m, int64_t n, int64_t d, const uint16_t* values = nullptr, int64_t ldv = 0);
void attention_qk16_ref(const float* q, int64_t ldq, const uint16_t* k, int64_t ldk, DType t, float* s, int64_t lds,
                        int64_t m, int64_t n, int64_t d);

// Keys in tiles, the layout of a 16-bit KV cache's keys (KvCache with tiled keys): one head's keys in tiles
// of kKeyTile positions, dimension-major within a tile, key (position j, dimension p) at
// kt[key_tile_offset(j, p, d)]. The scores of a tile then come out one per lane (no sum across lanes), and a
// tile widened to f32 is the f32 panel layout of kernels/packed_weights.h (32 rows of B per panel), which the
// GEMM kernels read in place (prefill).
inline constexpr int64_t kKeyTile = 32;
inline int64_t key_tile_offset(int64_t j, int64_t p, int64_t d) {
  return (j / kKeyTile) * kKeyTile * d + p * kKeyTile + j % kKeyTile;
}

// s[i * lds + j] = sum_p q[i * ldq + p] * key(first + j, p) for i < m, j < n, p < d: keys kt in tiles (the
// head's first tile; kF16 or kBF16). values (optional, a hint as for attention_qk16): the value row of
// position first, the others ldv apart.
void attention_qk16_tiled(const float* q, int64_t ldq, const uint16_t* kt, int64_t first, DType t, float* s,
                          int64_t lds, int64_t m, int64_t n, int64_t d, const uint16_t* values = nullptr,
                          int64_t ldv = 0);
void attention_qk16_tiled_ref(const float* q, int64_t ldq, const uint16_t* kt, int64_t first, DType t, float* s,
                              int64_t lds, int64_t m, int64_t n, int64_t d);

// attention_pv with value rows of type t (PvShape's strides count elements).
void attention_pv16(const float* p, const uint16_t* v, DType t, float* out, const PvShape& s);
void attention_pv16_ref(const float* p, const uint16_t* v, DType t, float* out, const PvShape& s);

namespace attention_detail {
void attention_qk16_avx512(const float* q, int64_t ldq, const uint16_t* k, int64_t ldk, DType t, float* s, int64_t lds,
                           int64_t m, int64_t n, int64_t d, const uint16_t* values, int64_t ldv);
void attention_pv16_avx512(const float* p, const uint16_t* v, DType t, float* out, const PvShape& s);
void attention_qk16_tiled_avx512(const float* q, int64_t ldq, const uint16_t* kt, int64_t first, DType t, float* s,
                                 int64_t lds, int64_t m, int64_t n, int64_t d, const uint16_t* values, int64_t ldv);
}  // namespace attention_detail

}  // namespace moe
