// Scalar codecs of the block-quantized formats (see quant_blocks.h). The quantizers follow ggml's
// reference algorithms step for step in f32 (same rounding helpers, same order of operations), which is
// what makes their blocks bit-identical to ggml_quantize_chunk without importance weights.
#include "kernels/quant_blocks.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "kernels/quant_iq4.h"
#include "util/check.h"

namespace moe {
namespace {

constexpr int kQK = 32;    // block of the simple types
constexpr int kQKK = 256;  // super-block of the K-quants
constexpr float kGroupMaxEps = 1e-15f;

float h2f(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}
void f2h(float f, uint8_t* p) {
  const uint16_t h = f32_to_f16(f);
  std::memcpy(p, &h, 2);
}

// Round to nearest, ties to even (ggml's nearest_int for |x| < 2^22).
int nearest(float x) { return static_cast<int>(std::nearbyint(x)); }

// ---- dequantization -------------------------------------------------------------------------------

void deq_q4_0(const uint8_t* b, float* y) {
  const float d = h2f(b);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((b[2 + j] & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((b[2 + j] >> 4) - 8) * d;
  }
}
void deq_q4_1(const uint8_t* b, float* y) {
  const float d = h2f(b), m = h2f(b + 2);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(b[4 + j] & 0x0F) * d + m;
    y[j + 16] = static_cast<float>(b[4 + j] >> 4) * d + m;
  }
}
// Fifth bits of Q5_0 / Q5_1: element j's is bit j of the little-endian u32 at qh.
uint32_t load_qh(const uint8_t* qh) {
  uint32_t v;
  std::memcpy(&v, qh, 4);
  return v;
}
void deq_q5_0(const uint8_t* b, float* y) {
  const float d = h2f(b);
  const uint32_t qh = load_qh(b + 2);
  for (int j = 0; j < 16; ++j) {
    const int lo = (b[6 + j] & 0x0F) | (((qh >> j) & 1) << 4);
    const int hi = (b[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = static_cast<float>(lo - 16) * d;
    y[j + 16] = static_cast<float>(hi - 16) * d;
  }
}
void deq_q5_1(const uint8_t* b, float* y) {
  const float d = h2f(b), m = h2f(b + 2);
  const uint32_t qh = load_qh(b + 4);
  for (int j = 0; j < 16; ++j) {
    const int lo = (b[8 + j] & 0x0F) | (((qh >> j) & 1) << 4);
    const int hi = (b[8 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = static_cast<float>(lo) * d + m;
    y[j + 16] = static_cast<float>(hi) * d + m;
  }
}
void deq_q8_0(const uint8_t* b, float* y) {
  const float d = h2f(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}
void deq_mxfp4(const uint8_t* b, float* y) {
  const float d = e8m0_to_f32_half(b[0]);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(kFp4Values[b[1 + j] & 0x0F]) * d;
    y[j + 16] = static_cast<float>(kFp4Values[b[1 + j] >> 4]) * d;
  }
}
void deq_q4_k(const uint8_t* b, float* y) {
  const float d = h2f(b), dmin = h2f(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int j = 0; j < 4; ++j) {  // 64 elements: low nibbles are sub-block 2j, high nibbles 2j + 1
    uint8_t sc, mn;
    k_scale_min(2 * j, scales, &sc, &mn);
    const float d1 = d * sc, m1 = dmin * mn;
    k_scale_min(2 * j + 1, scales, &sc, &mn);
    const float d2 = d * sc, m2 = dmin * mn;
    for (int l = 0; l < 32; ++l) y[64 * j + l] = d1 * static_cast<float>(q[32 * j + l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) y[64 * j + 32 + l] = d2 * static_cast<float>(q[32 * j + l] >> 4) - m2;
  }
}
void deq_q5_k(const uint8_t* b, float* y) {
  const float d = h2f(b), dmin = h2f(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  for (int j = 0; j < 4; ++j) {
    uint8_t sc, mn;
    k_scale_min(2 * j, scales, &sc, &mn);
    const float d1 = d * sc, m1 = dmin * mn;
    k_scale_min(2 * j + 1, scales, &sc, &mn);
    const float d2 = d * sc, m2 = dmin * mn;
    const uint8_t u1 = static_cast<uint8_t>(1u << (2 * j)), u2 = static_cast<uint8_t>(2u << (2 * j));
    for (int l = 0; l < 32; ++l) {
      const int lo = (ql[32 * j + l] & 0xF) + ((qh[l] & u1) ? 16 : 0);
      y[64 * j + l] = d1 * static_cast<float>(lo) - m1;
    }
    for (int l = 0; l < 32; ++l) {
      const int hi = (ql[32 * j + l] >> 4) + ((qh[l] & u2) ? 16 : 0);
      y[64 * j + 32 + l] = d2 * static_cast<float>(hi) - m2;
    }
  }
}
void deq_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = h2f(b + 208);
  for (int half = 0; half < 2; ++half) {  // 128 elements from 64 ql bytes, 32 qh bytes, 8 scales
    const uint8_t* l0 = ql + 64 * half;
    const uint8_t* h0 = qh + 32 * half;
    const int8_t* s0 = sc + 8 * half;
    float* y0 = y + 128 * half;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((l0[l] & 0xF) | (((h0[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((l0[l + 32] & 0xF) | (((h0[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((l0[l] >> 4) | (((h0[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((l0[l + 32] >> 4) | (((h0[l] >> 6) & 3) << 4)) - 32;
      y0[l] = d * static_cast<float>(s0[is]) * static_cast<float>(q1);
      y0[l + 32] = d * static_cast<float>(s0[is + 2]) * static_cast<float>(q2);
      y0[l + 64] = d * static_cast<float>(s0[is + 4]) * static_cast<float>(q3);
      y0[l + 96] = d * static_cast<float>(s0[is + 6]) * static_cast<float>(q4);
    }
  }
}

// ---- quantization ---------------------------------------------------------------------------------

// Absolute maximum and the signed value that has it (first one on ties).
void signed_absmax(const float* x, int n, float* amax, float* max) {
  *amax = 0.0f;
  *max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (*amax < std::fabs(x[j])) {
      *amax = std::fabs(x[j]);
      *max = x[j];
    }
  }
}

// Q4_0 / Q5_0: d = max / -2^(bits-1), codes trunc(x / d + half + 0.5) capped at 2^bits - 1.
void quant_symmetric(const float* x, uint8_t* b, int bits) {
  float amax, max;
  signed_absmax(x, kQK, &amax, &max);
  const float half = static_cast<float>(1 << (bits - 1));
  const float d = max / -half;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  f2h(d, b);
  const int top = (1 << bits) - 1;
  uint8_t* qs = b + (bits == 4 ? 2 : 6);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const int x0 = std::min(top, static_cast<int>(static_cast<int8_t>(x[j] * id + (half + 0.5f))));
    const int x1 = std::min(top, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + (half + 0.5f))));
    qs[j] = static_cast<uint8_t>((x0 & 0x0F) | ((x1 & 0x0F) << 4));
    qh |= static_cast<uint32_t>((x0 >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((x1 >> 4) & 1) << (j + 16);
  }
  if (bits == 5) std::memcpy(b + 2, &qh, 4);
}

// Q4_1 / Q5_1: d = (max - min) / (2^bits - 1), m = min, codes trunc((x - min) / d + 0.5).
void quant_affine(const float* x, uint8_t* b, int bits) {
  float min = FLT_MAX, max = -FLT_MAX;
  for (int j = 0; j < kQK; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
  const float d = (max - min) / static_cast<float>((1 << bits) - 1);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  f2h(d, b);
  f2h(min, b + 2);
  uint8_t* qs = b + (bits == 4 ? 4 : 8);
  uint32_t qh = 0;
  // Q4_1 caps a code at 15 (through int8_t, as ggml does), Q5_1 converts through uint8_t uncapped.
  const auto code = [bits](float v) {
    return bits == 4 ? std::min(15, static_cast<int>(static_cast<int8_t>(v)))
                     : static_cast<int>(static_cast<uint8_t>(v));
  };
  for (int j = 0; j < 16; ++j) {
    const int x0 = code((x[j] - min) * id + 0.5f);
    const int x1 = code((x[j + 16] - min) * id + 0.5f);
    qs[j] = static_cast<uint8_t>((x0 & 0x0F) | ((x1 & 0x0F) << 4));
    qh |= static_cast<uint32_t>((x0 >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((x1 >> 4) & 1) << (j + 16);
  }
  if (bits == 5) std::memcpy(b + 4, &qh, 4);
}

void quant_q8_0(const float* x, uint8_t* b) {
  float amax = 0.0f;
  for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  f2h(d, b);
  for (int j = 0; j < kQK; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
}

// The nibble whose FP4 value times d is closest to x (the first on ties).
int nearest_fp4(float x, float d) {
  int best = 0;
  float best_err = std::fabs(static_cast<float>(kFp4Values[0]) * d - x);
  for (int i = 1; i < 16; ++i) {
    const float err = std::fabs(static_cast<float>(kFp4Values[i]) * d - x);
    if (err < best_err) {
      best = i;
      best_err = err;
    }
  }
  return best;
}

void quant_mxfp4(const float* x, uint8_t* b) {
  float amax = 0.0f;
  for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  uint8_t e = 0;
  if (amax > 0.0f) {
    const float v = std::floor(std::log2(amax)) - 2.0f + 127.0f;
    e = static_cast<uint8_t>(std::clamp(v, 0.0f, 254.0f));
  }
  const float d = e8m0_to_f32_half(e);
  b[0] = e;
  for (int j = 0; j < 16; ++j) {
    b[1 + j] = static_cast<uint8_t>(nearest_fp4(x[j], d) | (nearest_fp4(x[j + 16], d) << 4));
  }
}

// Weighted affine fit of n values to codes 0..nmax with a scale and a min <= 0 (ggml's make_qkx2_quants):
// a first fit from the range, then nstep + 1 trial scales around it, each refit by weighted least squares,
// keeping the one with the least weighted squared error. Returns the scale; *neg_min = -min.
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min, float rmin,
                    float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    min = std::min(min, x[i]);
    max = std::max(max, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, uint8_t{0});
    *neg_min = -min;
    return 0.0f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest(iscale * (x[i] - min)), 0, nmax);
    L[i] = static_cast<uint8_t>(l);
    const float diff = scale * static_cast<float>(L[i]) + min - x[i];
    best_error += w[i] * (diff * diff);
  }
  uint8_t trial[32];
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest(iscale * (x[i] - min)), 0, nmax);
      trial[i] = static_cast<uint8_t>(l);
      const float fl = static_cast<float>(l);
      sum_l += w[i] * fl;
      sum_l2 += w[i] * fl * fl;
      sum_xl += w[i] * fl * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = this_scale * static_cast<float>(trial[i]) + this_min - x[i];
      err += w[i] * (diff * diff);
    }
    if (err < best_error) {
      std::copy(trial, trial + n, L);
      best_error = err;
      scale = this_scale;
      min = this_min;
    }
  }
  *neg_min = -min;
  return scale;
}

// Q4_K (bits 4) and Q5_K (bits 5): per sub-block of 32 an affine fit weighted by rms + |x|; the 8 scales
// and 8 mins quantized to 6 bits against their maxima; then every code recomputed with the stored scales.
void quant_k_affine(const float* x, uint8_t* b, int bits) {
  const int nmax = (1 << bits) - 1;
  uint8_t L[kQKK];
  float scales[8], mins[8], weights[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = bits == 4 ? fit_scale_min(32, nmax, xs, weights, L + 32 * j, &mins[j], -1.0f, 0.1f, 20)
                          : fit_scale_min(32, nmax, xs, weights, L + 32 * j, &mins[j], -0.5f, 0.1f, 15);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  uint8_t* packed = b + 4;
  std::memset(packed, 0, 12);
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls =
        static_cast<uint8_t>(std::min(63, static_cast<int>(static_cast<uint8_t>(nearest(inv_scale * scales[j])))));
    const uint8_t lm =
        static_cast<uint8_t>(std::min(63, static_cast<int>(static_cast<uint8_t>(nearest(inv_min * mins[j])))));
    if (j < 4) {
      packed[j] = ls;
      packed[j + 4] = lm;
    } else {
      packed[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      packed[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      packed[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  f2h(max_scale / 63.0f, b);
  f2h(max_min / 63.0f, b + 2);
  const float d_all = h2f(b), dmin_all = h2f(b + 2);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, mn;
    k_scale_min(j, packed, &sc, &mn);
    const float d = d_all * sc;
    if (d == 0.0f) continue;
    const float dm = dmin_all * mn;
    for (int l = 0; l < 32; ++l)
      L[32 * j + l] = static_cast<uint8_t>(std::clamp(nearest((x[32 * j + l] + dm) / d), 0, nmax));
  }
  if (bits == 4) {
    uint8_t* q = b + 16;
    for (int j = 0; j < kQKK; j += 64, q += 32) {
      for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    }
    return;
  }
  uint8_t* qh = b + 16;
  uint8_t* ql = b + 48;
  std::memset(qh, 0, 32);
  for (int j = 0, shift = 0; j < kQKK; j += 64, shift += 2, ql += 32) {
    for (int l = 0; l < 32; ++l) {
      int l1 = L[j + l], l2 = L[j + l + 32];
      if (l1 > 15) {
        l1 -= 16;
        qh[l] |= static_cast<uint8_t>(1u << shift);
      }
      if (l2 > 15) {
        l2 -= 16;
        qh[l] |= static_cast<uint8_t>(2u << shift);
      }
      ql[l] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
  }
}

// Symmetric fit of n values to codes -nmax..nmax-1 weighted by x^2 (ggml's make_qx_quants, rmse_type 1):
// the range's scale and 18 trial scales around it, keeping the best weighted least-squares one.
// L receives code + nmax. Returns the scale.
float fit_scale_symmetric(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, int8_t{0});
    return 0.0f;
  }
  const auto code = [nmax](float v) { return std::clamp(nearest(v), -nmax, nmax - 1); };
  float iscale = -static_cast<float>(nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = code(iscale * x[i]);
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = code(iscale * x[i]);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * static_cast<float>(l);
      suml2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(nmax + code(iscale * x[i]));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

void quant_q6_k(const float* x, uint8_t* b) {
  int8_t L[kQKK];
  float scales[16];
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < 16; ++ib) {
    scales[ib] = fit_scale_symmetric(16, 32, x + 16 * ib, L + 16 * ib);
    if (std::fabs(scales[ib]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[ib]);
      max_scale = scales[ib];
    }
  }
  std::memset(b, 0, 210);
  if (max_abs_scale < kGroupMaxEps) return;  // all zero (d = +0)
  auto* sc = reinterpret_cast<int8_t*>(b + 192);
  const float iscale = -128.0f / max_scale;
  f2h(1 / iscale, b + 208);
  for (int ib = 0; ib < 16; ++ib) sc[ib] = static_cast<int8_t>(std::min(127, nearest(iscale * scales[ib])));
  const float d_all = h2f(b + 208);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(sc[j]);
    if (d == 0.0f) continue;
    for (int i = 0; i < 16; ++i)
      L[16 * j + i] = static_cast<int8_t>(std::clamp(nearest(x[16 * j + i] / d), -32, 31) + 32);
  }
  uint8_t* ql = b;
  uint8_t* qh = b + 128;
  for (int j = 0; j < kQKK; j += 128, ql += 64, qh += 32) {
    for (int l = 0; l < 32; ++l) {
      const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
      ql[l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
      qh[l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
  }
}

}  // namespace

float e8m0_to_f32_half(uint8_t e) {
  const uint32_t bits = e < 2 ? (0x00200000u << e) : (static_cast<uint32_t>(e - 1) << 23);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void k_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* mn) {
  if (j < 4) {
    *sc = q[j] & 63;
    *mn = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *mn = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

namespace {

// F8_E4M3_B128: the f32 scale, then 128 E4M3 codes; w = fp8(q) * scale (one f32 rounding).
void deq_f8_b128(const uint8_t* b, float* y) {
  float scale;
  std::memcpy(&scale, b, 4);
  for (int i = 0; i < 128; ++i) y[i] = f8e4m3_to_f32(b[4 + i]) * scale;
}

// The inverse for tests and tools: scale max|x| / 448 (E4M3's largest finite), codes x / scale rounded to
// nearest even.
void quant_f8_b128(const float* x, uint8_t* y) {
  float amax = 0.0f;
  for (int i = 0; i < 128; ++i) amax = std::max(amax, std::abs(x[i]));
  const float scale = amax / 448.0f;
  std::memcpy(y, &scale, 4);
  for (int i = 0; i < 128; ++i) y[4 + i] = f32_to_f8e4m3(scale > 0.0f ? x[i] / scale : 0.0f);
}

}  // namespace

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  if (!dtype_is_block(t)) {
    convert_to_f32(t, src, dst, static_cast<size_t>(n));
    return;
  }
  const int64_t be = dtype_block_elems(t), bb = dtype_block_bytes(t);
  MOE_CHECK_MSG(n % be == 0, "dequantize_row: n is not a multiple of the block");
  const auto* b = static_cast<const uint8_t*>(src);
  void (*fn)(const uint8_t*, float*) = nullptr;
  switch (t) {
    case DType::kQ4_0:
      fn = deq_q4_0;
      break;
    case DType::kQ4_1:
      fn = deq_q4_1;
      break;
    case DType::kQ5_0:
      fn = deq_q5_0;
      break;
    case DType::kQ5_1:
      fn = deq_q5_1;
      break;
    case DType::kQ8_0:
      fn = deq_q8_0;
      break;
    case DType::kMXFP4:
      fn = deq_mxfp4;
      break;
    case DType::kQ4_K:
      fn = deq_q4_k;
      break;
    case DType::kQ5_K:
      fn = deq_q5_k;
      break;
    case DType::kQ6_K:
      fn = deq_q6_k;
      break;
    case DType::kF8E4M3_B128:
      fn = deq_f8_b128;
      break;
    case DType::kIQ4_XS:
      fn = dequantize_block_iq4_xs;
      break;
    default:
      MOE_CHECK_MSG(false, "dequantize_row: unknown block type");
  }
  for (int64_t i = 0; i < n / be; ++i) fn(b + i * bb, dst + i * be);
}

bool quantize_supported(DType t) { return dtype_is_block(t); }

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
  MOE_CHECK_MSG(dtype_is_block(t), "quantize_row: not a block type");
  const int64_t be = dtype_block_elems(t), bb = dtype_block_bytes(t);
  MOE_CHECK_MSG(n % be == 0, "quantize_row: n is not a multiple of the block");
  auto* b = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n / be; ++i) {
    const float* x = src + i * be;
    uint8_t* y = b + i * bb;
    switch (t) {
      case DType::kQ4_0:
        quant_symmetric(x, y, 4);
        break;
      case DType::kQ5_0:
        quant_symmetric(x, y, 5);
        break;
      case DType::kQ4_1:
        quant_affine(x, y, 4);
        break;
      case DType::kQ5_1:
        quant_affine(x, y, 5);
        break;
      case DType::kQ8_0:
        quant_q8_0(x, y);
        break;
      case DType::kMXFP4:
        quant_mxfp4(x, y);
        break;
      case DType::kQ4_K:
        quant_k_affine(x, y, 4);
        break;
      case DType::kQ5_K:
        quant_k_affine(x, y, 5);
        break;
      case DType::kQ6_K:
        quant_q6_k(x, y);
        break;
      case DType::kF8E4M3_B128:
        quant_f8_b128(x, y);
        break;
      case DType::kIQ4_XS:
        quantize_block_iq4_xs(x, y);
        break;
      default:
        MOE_CHECK_MSG(false, "quantize_row: unknown block type");
    }
  }
}

}  // namespace moe
