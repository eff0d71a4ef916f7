// Dispatch of the vectorized GLU activations (activation.h) and their scalar twins.
#include "kernels/activation.h"

#include <algorithm>
#include <cmath>

#include "runtime/cpu_features.h"

namespace moe {

void silu_mul_ref(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  if (active_isa() >= Isa::kAvx512) return activation_detail::silu_mul_avx512(gate, up, out, n);
  silu_mul_ref(gate, up, out, n);
}

void swiglu_clamped_ref(const float* gate, const float* up, float* out, int64_t n, const ClampedSwiglu& p) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = std::min(gate[i], p.limit), u = std::clamp(up[i], -p.limit, p.limit);
    out[i] = (u + p.up_add) * (g / (1.0f + std::exp(-p.alpha * g)));
  }
}

void swiglu_clamped(const float* gate, const float* up, float* out, int64_t n, const ClampedSwiglu& p) {
  if (active_isa() >= Isa::kAvx512) return activation_detail::swiglu_clamped_avx512(gate, up, out, n, p);
  swiglu_clamped_ref(gate, up, out, n, p);
}

}  // namespace moe
