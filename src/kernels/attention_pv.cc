// Dispatch and scalar twin of the attention value product (attention_pv.h).
#include "kernels/attention_pv.h"

#include "runtime/cpu_features.h"

namespace moe {

void attention_pv_ref(const float* p, const float* v, float* out, const PvShape& s) {
  for (int64_t r = 0; r < s.m; ++r) {
    float* o = out + r * s.ldo;
    if (!s.accumulate)
      for (int64_t d = 0; d < s.dv; ++d) o[d] = 0.0f;
    for (int64_t j = 0; j < s.n; ++j) {
      const float w = p[r * s.ldp + j];
      const float* row = v + j * s.ldv;
      for (int64_t d = 0; d < s.dv; ++d) o[d] += w * row[d];
    }
  }
}

void attention_pv(const float* p, const float* v, float* out, const PvShape& s) {
  if (active_isa() >= Isa::kAvx512) return attention_detail::attention_pv_avx512(p, v, out, s);
  if (active_isa() >= Isa::kAvx2) return attention_detail::attention_pv_avx2(p, v, out, s);
  attention_pv_ref(p, v, out, s);
}

}  // namespace moe
