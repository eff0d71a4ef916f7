// RoPE tables and rotation (see rope.h). Frequencies follow HF's modeling_rope_utils and the
// DeepSeek remote code; angles pos * inv_freq are taken in double from the f32 inv_freq.
#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "util/error.h"

namespace moe {
namespace {

std::vector<double> base_inv_freq(const RopeConfig& c) {
  std::vector<double> f(static_cast<size_t>(c.rot_dim / 2));
  for (size_t i = 0; i < f.size(); ++i) {
    // HF: 1 / base ** (arange(0, d, 2).float() / d), all in f32.
    const float expo = static_cast<float>(2 * i) / static_cast<float>(c.rot_dim);
    f[i] = 1.0 / static_cast<double>(std::pow(static_cast<float>(c.theta), expo));
  }
  return f;
}

void llama3(const RopeConfig& c, std::vector<double>& f) {
  const double old = static_cast<double>(c.original_max_position);
  const double low_wavelen = old / c.low_freq_factor, high_wavelen = old / c.high_freq_factor;
  for (double& v : f) {
    const double wavelen = 2 * std::numbers::pi / v;
    if (wavelen > low_wavelen) {
      v /= c.factor;  // long wavelengths: interpolate fully
    } else if (wavelen >= high_wavelen) {
      const double smooth = (old / wavelen - c.low_freq_factor) / (c.high_freq_factor - c.low_freq_factor);
      v = (1 - smooth) * v / c.factor + smooth * v;
    }
  }
}

// Returns the attention factor.
double yarn(const RopeConfig& c, std::vector<double>& f) {
  const double d = static_cast<double>(c.rot_dim);
  const double orig = static_cast<double>(c.original_max_position);
  auto corr_dim = [&](double rotations) {
    return d * std::log(orig / (rotations * 2 * std::numbers::pi)) / (2 * std::log(c.theta));
  };
  double low = corr_dim(c.beta_fast), high = corr_dim(c.beta_slow);
  if (c.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, d - 1);
  if (low == high) high += 0.001;
  for (size_t i = 0; i < f.size(); ++i) {
    const float ramp = std::clamp(static_cast<float>((static_cast<double>(i) - low) / (high - low)), 0.0f, 1.0f);
    const double extrapolate = 1.0 - ramp;  // 1 keeps the original frequency
    f[i] = (f[i] / c.factor) * (1 - extrapolate) + f[i] * extrapolate;
  }
  if (c.attention_factor > 0) return c.attention_factor;
  if (c.mscale > 0 && c.mscale_all_dim > 0) {
    return yarn_get_mscale(c.factor, c.mscale) / yarn_get_mscale(c.factor, c.mscale_all_dim);
  }
  return yarn_get_mscale(c.factor);
}

// LongRoPE: inv_freq[i] = 1 / (ext[i] * theta^(2i/d)) in f32 as HF computes it. Returns the attention factor.
double longrope(const RopeConfig& c, std::vector<double>& f) {
  for (size_t i = 0; i < f.size(); ++i) {
    const float expo = static_cast<float>(2 * i) / static_cast<float>(c.rot_dim);
    const float denom = static_cast<float>(c.ext_factors[i]) * std::pow(static_cast<float>(c.theta), expo);
    f[i] = static_cast<double>(1.0f / denom);
  }
  if (c.longrope_mscale > 0) return c.longrope_mscale;
  if (c.attention_factor > 0) return c.attention_factor;
  if (c.factor <= 1.0) return 1.0;
  return std::sqrt(1.0 + std::log(c.factor) / std::log(static_cast<double>(c.original_max_position)));
}

}  // namespace

double yarn_get_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

RopeTable make_rope_table(const RopeConfig& c) {
  if (c.rot_dim <= 0 || c.rot_dim % 2 != 0) fail("rope", "rotary dims must be positive and even, found {}", c.rot_dim);
  if (!(c.theta > 1.0)) fail("rope", "rope_theta must be > 1, found {}", c.theta);
  const bool scaled = c.scaling != RopeScaling::kNone;
  if (scaled && !(c.factor > 0)) fail("rope", "rope_scaling.factor must be > 0, found {}", c.factor);
  if ((c.scaling == RopeScaling::kLlama3 || c.scaling == RopeScaling::kYarn) && c.original_max_position <= 0) {
    fail("rope", "rope_scaling needs original_max_position_embeddings > 0, found {}", c.original_max_position);
  }
  if (c.scaling == RopeScaling::kLongrope && c.ext_factors.size() != static_cast<size_t>(c.rot_dim / 2)) {
    fail("rope", "longrope needs {} factors (rotary dims / 2), found {}", c.rot_dim / 2, c.ext_factors.size());
  }
  if (c.scaling == RopeScaling::kLlama3 && !(c.high_freq_factor > c.low_freq_factor)) {
    fail("rope", "llama3 rope_scaling needs high_freq_factor > low_freq_factor, found {} and {}", c.high_freq_factor,
         c.low_freq_factor);
  }
  std::vector<double> f = base_inv_freq(c);
  double attention = 1.0;
  switch (c.scaling) {
    case RopeScaling::kNone:
      break;
    case RopeScaling::kLinear:
      for (double& v : f) v /= c.factor;
      break;
    case RopeScaling::kLlama3:
      llama3(c, f);
      break;
    case RopeScaling::kYarn:
      attention = yarn(c, f);
      break;
    case RopeScaling::kLongrope:
      attention = longrope(c, f);
      break;
  }
  RopeTable t;
  t.rot_dim = c.rot_dim;
  t.attention_scaling = static_cast<float>(attention);
  t.inv_freq.assign(f.begin(), f.end());
  return t;
}

RopeConfig rope_config_from_spec(const RopeSpec& spec, int64_t head_dim, bool long_factors) {
  RopeConfig c;
  c.rot_dim = static_cast<int64_t>(static_cast<double>(head_dim) * spec.partial_rotary_factor);
  c.theta = spec.theta;
  c.factor = spec.factor;
  c.low_freq_factor = spec.low_freq_factor;
  c.high_freq_factor = spec.high_freq_factor;
  c.original_max_position = spec.original_max_position;
  c.beta_fast = spec.beta_fast;
  c.beta_slow = spec.beta_slow;
  c.mscale = spec.mscale;
  c.mscale_all_dim = spec.mscale_all_dim;
  c.truncate = spec.truncate;
  switch (spec.type) {
    case RopeType::kNone:
    case RopeType::kDefault:
      c.scaling = RopeScaling::kNone;
      break;
    case RopeType::kLinear:
      c.scaling = RopeScaling::kLinear;
      break;
    case RopeType::kLlama3:
      c.scaling = RopeScaling::kLlama3;
      break;
    case RopeType::kYarn:
      c.scaling = RopeScaling::kYarn;
      break;
    case RopeType::kLongrope:
      c.scaling = RopeScaling::kLongrope;
      c.ext_factors = long_factors ? spec.long_factor : spec.short_factor;
      c.longrope_mscale = long_factors ? spec.long_mscale : spec.short_mscale;
      c.attention_factor = spec.attention_factor;
      break;
    case RopeType::kDynamic:
      fail("rope", "rope_scaling type dynamic is not implemented");
  }
  return c;
}

RopeStyle rope_style_from_spec(const RopeSpec& spec) {
  return spec.interleaved ? RopeStyle::kInterleaved : RopeStyle::kHalfSplit;
}

void apply_rope(float* x, int64_t n_tokens, int64_t pos0, const RopeLayout& layout, const RopeTable& table) {
  const int64_t half = table.rot_dim / 2;
  std::vector<float> cs(static_cast<size_t>(2 * half));  // [cos..., sin...]
  for (int64_t t = 0; t < n_tokens; ++t) {
    const double pos = static_cast<double>(pos0 + t);
    for (int64_t i = 0; i < half; ++i) {
      const double angle = pos * static_cast<double>(table.inv_freq[i]);
      cs[i] = static_cast<float>(std::cos(angle)) * table.attention_scaling;
      cs[half + i] = static_cast<float>(std::sin(angle)) * table.attention_scaling;
    }
    for (int64_t h = 0; h < layout.n_heads; ++h) {
      float* v = x + t * layout.token_stride + h * layout.head_stride;
      for (int64_t i = 0; i < half; ++i) {
        // half-split pairs (i, i + d/2); interleaved pairs (2i, 2i + 1)
        float* a = layout.style == RopeStyle::kHalfSplit ? v + i : v + 2 * i;
        float* b = layout.style == RopeStyle::kHalfSplit ? v + i + half : v + 2 * i + 1;
        const float x0 = *a, x1 = *b, c = cs[i], s = cs[half + i];
        *a = x0 * c - x1 * s;
        *b = x1 * c + x0 * s;
      }
    }
  }
}

}  // namespace moe
