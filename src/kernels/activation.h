// Vectorized GLU activation pieces for the expert FFN: out = silu(gate) * up, with silu(g) = g / (1 + e^-g).
// AVX-512: e^x by range reduction (x = n ln2 + r) and a degree-6 polynomial, 2^n by vscalefps
// (~2 ulp); other ISA levels: the scalar loop with std::exp. Scalar reference twin: silu_mul_ref.
#pragma once

#include <cstdint>

namespace moe {

// out[i] = silu(gate[i]) * up[i] for n elements; out may alias gate or up. Dispatches on active_isa().
void silu_mul(const float* gate, const float* up, float* out, int64_t n);

// Scalar twin (std::exp, the same formula).
void silu_mul_ref(const float* gate, const float* up, float* out, int64_t n);

// The clamped SwiGLU variants: g = min(gate, limit), u = clamp(up, -limit, limit), out = (u + up_add) *
// g / (1 + e^(-alpha g)). gpt-oss: alpha 1.702, limit 7, up_add 1; a plain SwiGLU with a clamp (swiglu_limit):
// alpha 1, up_add 0. A NaN in gate or up stays NaN. out may alias gate or up; dispatched as silu_mul.
struct ClampedSwiglu {
  float alpha = 1.0f, limit = 0.0f, up_add = 0.0f;
};
void swiglu_clamped(const float* gate, const float* up, float* out, int64_t n, const ClampedSwiglu& p);
void swiglu_clamped_ref(const float* gate, const float* up, float* out, int64_t n, const ClampedSwiglu& p);

namespace activation_detail {
void silu_mul_avx512(const float* gate, const float* up, float* out, int64_t n);
void swiglu_clamped_avx512(const float* gate, const float* up, float* out, int64_t n, const ClampedSwiglu& p);
}  // namespace activation_detail

}  // namespace moe
