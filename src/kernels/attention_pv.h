// The value side of decode attention: out[m, dv] = p[m, n] . v[n, dv] for a few query rows (the
// heads of one kv head at decode) over many cached positions, the value rows read in place with
// their stride (no transpose). Positions in spans of 64, each span's value rows read from memory once
// for all the rows: AVX-512 runs 8 rows x 32 columns of accumulators over a span, AVX2+FMA 4 rows x 16;
// other ISA levels: the scalar twin.
#pragma once

#include <cstdint>

namespace moe {

struct PvShape {
  int64_t m = 0;            // query rows
  int64_t n = 0;            // positions
  int64_t dv = 0;           // value width
  int64_t ldp = 0;          // floats between rows of p (>= n)
  int64_t ldv = 0;          // floats between value rows (>= dv)
  int64_t ldo = 0;          // floats between rows of out (>= dv)
  bool accumulate = false;  // add to out (the positions of a later span of the same rows) instead of overwriting it
};

// Overwrites out (adds to it with accumulate). Dispatches on active_isa().
void attention_pv(const float* p, const float* v, float* out, const PvShape& s);
// Scalar twin: the same sums in the same order (positions ascending per output element).
void attention_pv_ref(const float* p, const float* v, float* out, const PvShape& s);

namespace attention_detail {
void attention_pv_avx2(const float* p, const float* v, float* out, const PvShape& s);
void attention_pv_avx512(const float* p, const float* v, float* out, const PvShape& s);
}  // namespace attention_detail

}  // namespace moe
