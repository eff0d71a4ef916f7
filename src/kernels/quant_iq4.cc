// IQ4_XS block codec (see quant_iq4.h). The quantizer is ggml's non-linear fit without importance weights
// (each element weighted by its square), step for step in f32, so its blocks are bit-identical to
// ggml_quantize_chunk(GGML_TYPE_IQ4_XS, ..., imatrix = NULL).
#include "kernels/quant_iq4.h"

#include <cmath>
#include <cstring>

#include "kernels/quant_blocks.h"
#include "util/dtype.h"

namespace moe {
namespace {

constexpr int kSuper = 256, kSub = 32, kNSub = kSuper / kSub;
constexpr int kTries = 7;  // trial scales on each side of the first fit
constexpr float kGroupMaxEps = 1e-15f;

// The index of the table value nearest x (the lower one on ties), by bisection of the sorted table.
int nearest_value(float x) {
  const int8_t* v = kIq4nlValues;
  if (x <= v[0]) return 0;
  if (x >= v[15]) return 15;
  int lo = 0, hi = 15;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (x < v[mid])
      hi = mid;
    else
      lo = mid;
  }
  return x - v[hi - 1] < v[hi] - x ? hi - 1 : hi;
}

// Weighted sums of x against the table values its elements map to under inverse scale id.
void fit_sums(const float* x, const float* w, float id, float* sumqx, float* sumq2) {
  *sumqx = *sumq2 = 0.0f;
  for (int j = 0; j < kSub; ++j) {
    const float q = kIq4nlValues[nearest_value(id * x[j])];
    *sumqx += w[j] * q * x[j];
    *sumq2 += w[j] * q * q;
  }
}

// Sub-block scale: a first fit from the signed extreme, then 2 * kTries + 1 trial inverse scales around
// it, each refit by weighted least squares, keeping the one with the largest sumqx^2 / sumq2. 0 for an
// (almost) all-zero sub-block.
float fit_sub_block(const float* x) {
  float w[kSub], amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kSub; ++j) {
    w[j] = x[j] * x[j];
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  if (amax < kGroupMaxEps) return 0.0f;
  float sumqx, sumq2;
  fit_sums(x, w, 1.0f / (-max / kIq4nlValues[0]), &sumqx, &sumq2);
  float d = sumqx / sumq2, best = d * sumqx;
  for (int t = -kTries; t <= kTries; ++t) {
    fit_sums(x, w, static_cast<float>(t + kIq4nlValues[0]) / max, &sumqx, &sumq2);
    if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  return d;
}

}  // namespace

int iq4_xs_scale(const uint8_t* b, int ib) {
  const int sh = b[2] | (b[3] << 8);
  const int ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) & 0xF) | (((sh >> (2 * ib)) & 3) << 4);
  return ls - 32;
}

void dequantize_block_iq4_xs(const uint8_t* b, float* y) {
  uint16_t h;
  std::memcpy(&h, b, 2);
  const float d = f16_to_f32(h);
  const uint8_t* qs = b + 8;
  for (int ib = 0; ib < kNSub; ++ib) {
    const float dl = d * static_cast<float>(iq4_xs_scale(b, ib));
    for (int j = 0; j < 16; ++j) {
      y[kSub * ib + j] = dl * static_cast<float>(kIq4nlValues[qs[16 * ib + j] & 0xF]);
      y[kSub * ib + 16 + j] = dl * static_cast<float>(kIq4nlValues[qs[16 * ib + j] >> 4]);
    }
  }
}

// The super-block scale d = -(the sub-block scale of largest magnitude) / 32 (stored f16, used unrounded
// here as ggml does), each sub-block's scale rounded to l in [-32, 31] units of d (stored l + 32), and
// every element coded against d * l.
void quantize_block_iq4_xs(const float* x, uint8_t* b) {
  float scales[kNSub], max_scale = 0.0f, amax_scale = 0.0f;
  for (int ib = 0; ib < kNSub; ++ib) {
    scales[ib] = fit_sub_block(x + kSub * ib);
    if (std::fabs(scales[ib]) > amax_scale) {
      amax_scale = std::fabs(scales[ib]);
      max_scale = scales[ib];
    }
  }
  std::memset(b, 0, 136);
  const float d = -max_scale / 32.0f;
  const uint16_t dh = f32_to_f16(d);
  std::memcpy(b, &dh, 2);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  uint16_t sh = 0;
  uint8_t* qs = b + 8;
  for (int ib = 0; ib < kNSub; ++ib) {
    int l = static_cast<int>(std::nearbyint(id * scales[ib]));
    l = l < -32 ? -32 : l > 31 ? 31 : l;
    const float dl = d * static_cast<float>(l);
    const float idl = dl != 0.0f ? 1.0f / dl : 0.0f;
    const float* xb = x + kSub * ib;
    for (int j = 0; j < 16; ++j) {
      const int lo = nearest_value(idl * xb[j]), hi = nearest_value(idl * xb[j + 16]);
      qs[16 * ib + j] = static_cast<uint8_t>(lo | (hi << 4));
    }
    const int ls = l + 32;
    b[4 + ib / 2] = static_cast<uint8_t>(b[4 + ib / 2] | ((ls & 0xF) << (4 * (ib % 2))));
    sh = static_cast<uint16_t>(sh | ((ls >> 4) << (2 * ib)));
  }
  std::memcpy(b + 2, &sh, 2);
}

}  // namespace moe
