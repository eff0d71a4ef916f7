// Dispatch and scalar twins of decode attention over 16-bit rows (attention_kv16.h).
#include "kernels/attention_kv16.h"

#include <vector>

#include "kernels/half_rows.h"
#include "runtime/cpu_features.h"
#include "util/check.h"

namespace moe {

bool attention_kv16_native() { return active_isa() >= Isa::kAvx512; }

void attention_qk16_ref(const float* q, int64_t ldq, const uint16_t* k, int64_t ldk, DType t, float* s, int64_t lds,
                        int64_t m, int64_t n, int64_t d) {
  MOE_CHECK(is_half_float(t));
  std::vector<float> row(static_cast<size_t>(d));
  for (int64_t j = 0; j < n; ++j) {
    widen_half_ref(t, k + j * ldk, row.data(), d);
    for (int64_t i = 0; i < m; ++i) {
      float acc = 0.0f;
      for (int64_t p = 0; p < d; ++p) acc += q[i * ldq + p] * row[p];
      s[i * lds + j] = acc;
    }
  }
}

void attention_pv16_ref(const float* p, const uint16_t* v, DType t, float* out, const PvShape& s) {
  MOE_CHECK(is_half_float(t));
  if (!s.accumulate)
    for (int64_t r = 0; r < s.m; ++r)
      for (int64_t d = 0; d < s.dv; ++d) out[r * s.ldo + d] = 0.0f;
  std::vector<float> row(static_cast<size_t>(s.dv));
  for (int64_t j = 0; j < s.n; ++j) {  // each value row widened once, added to every row in position order
    widen_half_ref(t, v + j * s.ldv, row.data(), s.dv);
    for (int64_t r = 0; r < s.m; ++r) {
      const float w = p[r * s.ldp + j];
      for (int64_t d = 0; d < s.dv; ++d) out[r * s.ldo + d] += w * row[d];
    }
  }
}

void attention_qk16(const float* q, int64_t ldq, const uint16_t* k, int64_t ldk, DType t, float* s, int64_t lds,
                    int64_t m, int64_t n, int64_t d, const uint16_t* values, int64_t ldv) {
  MOE_CHECK(is_half_float(t));
  if (attention_kv16_native())
    return attention_detail::attention_qk16_avx512(q, ldq, k, ldk, t, s, lds, m, n, d, values, ldv);
  attention_qk16_ref(q, ldq, k, ldk, t, s, lds, m, n, d);
}

void attention_pv16(const float* p, const uint16_t* v, DType t, float* out, const PvShape& s) {
  MOE_CHECK(is_half_float(t));
  if (attention_kv16_native()) return attention_detail::attention_pv16_avx512(p, v, t, out, s);
  attention_pv16_ref(p, v, t, out, s);
}

void attention_qk16_tiled_ref(const float* q, int64_t ldq, const uint16_t* kt, int64_t first, DType t, float* s,
                              int64_t lds, int64_t m, int64_t n, int64_t d) {
  MOE_CHECK(is_half_float(t));
  std::vector<float> key(static_cast<size_t>(d));
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t p = 0; p < d; ++p) widen_half_ref(t, kt + key_tile_offset(first + j, p, d), &key[p], 1);
    for (int64_t i = 0; i < m; ++i) {
      float acc = 0.0f;
      for (int64_t p = 0; p < d; ++p) acc += q[i * ldq + p] * key[p];
      s[i * lds + j] = acc;
    }
  }
}

void attention_qk16_tiled(const float* q, int64_t ldq, const uint16_t* kt, int64_t first, DType t, float* s,
                          int64_t lds, int64_t m, int64_t n, int64_t d, const uint16_t* values, int64_t ldv) {
  MOE_CHECK(is_half_float(t) && first >= 0);
  if (attention_kv16_native())
    return attention_detail::attention_qk16_tiled_avx512(q, ldq, kt, first, t, s, lds, m, n, d, values, ldv);
  attention_qk16_tiled_ref(q, ldq, kt, first, t, s, lds, m, n, d);
}

}  // namespace moe
