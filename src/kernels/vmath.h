// Vectorized elementwise math for the float training path: exp over arrays (AVX-512 polynomial
// with 2^n scaling, ~2 ulp; std::exp below AVX-512), so softmax, SiLU and cross-entropy do not
// pay a libm call per element, reductions, the RMSNorm / softmax / SwiGLU rows forward and
// backward, and the AdamW update (sqrt and divide in registers). Each function dispatches on
// active_isa(); below AVX-512 it runs its scalar twin, the same name with _ref (serial loops,
// std::exp), which the tests compare the AVX-512 kernels with.
#pragma once

#include <cstdint>

namespace moe {

// y[i] = exp(x[i]) for i < n; y may alias x. exp(-inf) = 0, exp(+inf) = inf, NaN stays NaN.
void exp_f32(float* y, const float* x, int64_t n);

// Reductions over float arrays in 16 float lanes (AVX-512) or serially (below it).
float max_f32(const float* x, int64_t n);                                   // -inf for n == 0
float sum_f32(const float* x, int64_t n);                                   // sum x
float sumsq_f32(const float* x, int64_t n);                                 // sum x^2
float dot3_f32(const float* a, const float* b, const float* c, int64_t n);  // sum a b c

// RMSNorm over n rows of c (one call per block of rows, so the ISA dispatch is not per row):
// rstd_i = 1 / sqrt(mean(x_i^2) + eps) (sum of squares in float, the rest in double); out_i = x_i rstd_i w.
void rmsnorm_rows_f32(float* out, float* rstd, const float* x, const float* w, int64_t n, int64_t c, double eps);
// dx_i += rstd_i (g_i w - x_i rstd_i m_i) with m_i = mean(g_i w x_i) rstd_i.
void rmsnorm_rows_backward_f32(float* dx, const float* g, const float* x, const float* w, const float* rstd, int64_t n,
                               int64_t c);
// dw += sum_i g_i x_i rstd_i, rows in order.
void rmsnorm_rows_dw_f32(float* dw, const float* g, const float* x, const float* rstd, int64_t n, int64_t c);
// Softmax of x * scale over n elements, in place (scale > 0). sink (optional): one more logit, already
// scaled, that takes its share of the denominator but has no output (gpt-oss's attention sinks).
void softmax_f32(float* x, int64_t n, float scale, const float* sink = nullptr);
// Softmax backward in place: d = p (d - sum(d p)) scale.
void softmax_backward_f32(float* d, const float* p, int64_t n, float scale);

// SwiGLU: out = silu(gate) up = gate s up with s = sigmoid(gate) = 1 / (1 + exp(-gate)), and its
// backward: dup = dout gate s, dgate = dout up s (1 + gate (1 - s)); when out is not null the
// backward also writes the forward's out (the same bits), so callers need not keep it.
void swiglu_f32(float* out, const float* gate, const float* up, int64_t n);
void swiglu_backward_f32(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                         float* out = nullptr);

// One AdamW step over n elements (PyTorch order), on the gradient scaled by grad_scale (the
// clipping coefficient, applied in float as clip_grad_norm would): p *= decay;
// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= step_size * m / (sqrt(v) / bc2_sqrt + eps).
struct AdamWStep {
  float decay, b1, b2, step_size, bc2_sqrt, eps;
  float grad_scale = 1.0f;
};
void adamw_f32(const AdamWStep& s, float* p, float* m, float* v, const float* g, int64_t n);

// The scalar twins of the functions above (same contracts).
void exp_f32_ref(float* y, const float* x, int64_t n);
float max_f32_ref(const float* x, int64_t n);
float sum_f32_ref(const float* x, int64_t n);
float sumsq_f32_ref(const float* x, int64_t n);
float dot3_f32_ref(const float* a, const float* b, const float* c, int64_t n);
void rmsnorm_rows_f32_ref(float* out, float* rstd, const float* x, const float* w, int64_t n, int64_t c, double eps);
void rmsnorm_rows_backward_f32_ref(float* dx, const float* g, const float* x, const float* w, const float* rstd,
                                   int64_t n, int64_t c);
void rmsnorm_rows_dw_f32_ref(float* dw, const float* g, const float* x, const float* rstd, int64_t n, int64_t c);
void softmax_f32_ref(float* x, int64_t n, float scale, const float* sink = nullptr);
void softmax_backward_f32_ref(float* d, const float* p, int64_t n, float scale);
void swiglu_f32_ref(float* out, const float* gate, const float* up, int64_t n);
void swiglu_backward_f32_ref(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                             float* out = nullptr);
void adamw_f32_ref(const AdamWStep& s, float* p, float* m, float* v, const float* g, int64_t n);

namespace vmath_detail {
void exp_avx512(float* y, const float* x, int64_t n);
float max_avx512(const float* x, int64_t n);
float sum_avx512(const float* x, int64_t n);
float sumsq_avx512(const float* x, int64_t n);
float dot3_avx512(const float* a, const float* b, const float* c, int64_t n);
void rmsnorm_rows_avx512(float* out, float* rstd, const float* x, const float* w, int64_t n, int64_t c, double eps);
void rmsnorm_rows_backward_avx512(float* dx, const float* g, const float* x, const float* w, const float* rstd,
                                  int64_t n, int64_t c);
void rmsnorm_rows_dw_avx512(float* dw, const float* g, const float* x, const float* rstd, int64_t n, int64_t c);
void softmax_avx512(float* x, int64_t n, float scale, const float* sink);
void softmax_backward_avx512(float* d, const float* p, int64_t n, float scale);
void swiglu_avx512(float* out, const float* gate, const float* up, int64_t n);
void swiglu_backward_avx512(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                            float* out);
void adamw_avx512(const AdamWStep& s, float* p, float* m, float* v, const float* g, int64_t n);
}  // namespace vmath_detail

}  // namespace moe
