// RMSNorm, RoPE tables and rotation, KV cache: against small double computations and the
// properties the decoder relies on (rotation preserves norms, scores depend on q - k only).
#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/attention_kv16.h"
#include "kernels/half_rows.h"
#include "model/kv_cache.h"
#include "model/norm.h"
#include "model/rope.h"
#include "util/error.h"

namespace moe {
namespace {

std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

TEST(RmsNorm, MatchesDoubleWithStridesAndInPlace) {
  const int64_t rows = 5, dim = 37, stride = 41;
  auto x = randn(rows * stride, 1, 3.0f), w = randn(dim, 2);
  std::vector<float> y(rows * stride, -7.0f);
  rms_norm(x.data(), w.data(), y.data(), RmsNormShape{rows, dim, stride, stride}, 1e-5f);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(x[r * stride + i]) * x[r * stride + i];
    const double inv = 1.0 / std::sqrt(ss / dim + 1e-5);
    for (int64_t i = 0; i < dim; ++i) EXPECT_NEAR(y[r * stride + i], w[i] * x[r * stride + i] * inv, 1e-5);
    for (int64_t i = dim; i < stride; ++i) EXPECT_EQ(y[r * stride + i], -7.0f);  // padding untouched
  }
  std::vector<float> z = x;
  rms_norm(z.data(), w.data(), z.data(), RmsNormShape{rows, dim, stride, stride}, 1e-5f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < dim; ++i) EXPECT_EQ(z[r * stride + i], y[r * stride + i]);
  rms_norm(x.data(), nullptr, y.data(), rows, dim, 0.0f);  // no weight: unit RMS
  double ss = 0;
  for (int64_t i = 0; i < dim; ++i) ss += double(y[i]) * y[i];
  EXPECT_NEAR(ss / dim, 1.0, 1e-5);
}

TEST(Rope, DefaultTableIsThetaPowers) {
  RopeConfig c;
  c.rot_dim = 8;
  c.theta = 10000.0;
  RopeTable t = make_rope_table(c);
  ASSERT_EQ(t.inv_freq.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(t.inv_freq[i], std::pow(10000.0, -2.0 * i / 8), 1e-7);
  EXPECT_EQ(t.attention_scaling, 1.0f);
  c.scaling = RopeScaling::kLinear;
  c.factor = 4.0;
  RopeTable lin = make_rope_table(c);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(lin.inv_freq[i], t.inv_freq[i] / 4.0, 1e-7);
}

TEST(Rope, Llama3KeepsHighInterpolatesLowSmoothsMiddle) {
  RopeConfig c;
  c.rot_dim = 12;
  c.theta = 500000.0;
  c.scaling = RopeScaling::kLlama3;
  c.factor = 32;
  c.original_max_position = 8192;
  RopeTable t = make_rope_table(c);
  c.scaling = RopeScaling::kNone;
  RopeTable base = make_rope_table(c);
  int kept = 0, divided = 0, smoothed = 0;
  for (size_t i = 0; i < t.inv_freq.size(); ++i) {
    const double wavelen = 2 * std::numbers::pi / base.inv_freq[i];
    if (wavelen < 8192 / 4.0) {
      EXPECT_FLOAT_EQ(t.inv_freq[i], base.inv_freq[i]);
      ++kept;
    } else if (wavelen > 8192) {
      EXPECT_FLOAT_EQ(t.inv_freq[i], base.inv_freq[i] / 32);
      ++divided;
    } else {
      EXPECT_LT(t.inv_freq[i], base.inv_freq[i]);
      EXPECT_GT(t.inv_freq[i], base.inv_freq[i] / 32);
      ++smoothed;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(smoothed, 0);
}

TEST(Rope, YarnAttentionFactorAndRamp) {
  RopeConfig c;
  c.rot_dim = 16;
  c.theta = 150000;
  c.scaling = RopeScaling::kYarn;
  c.factor = 32;
  c.original_max_position = 4096;
  c.truncate = false;
  RopeTable t = make_rope_table(c);
  EXPECT_NEAR(t.attention_scaling, 0.1 * std::log(32.0) + 1.0, 1e-6);
  c.scaling = RopeScaling::kNone;
  RopeTable base = make_rope_table(c);
  EXPECT_FLOAT_EQ(t.inv_freq[0], base.inv_freq[0]);       // high frequencies extrapolate
  EXPECT_FLOAT_EQ(t.inv_freq[7], base.inv_freq[7] / 32);  // low frequencies interpolate
  // DeepSeek: mscale == mscale_all_dim gives a unit cos/sin factor.
  c.scaling = RopeScaling::kYarn;
  c.mscale = c.mscale_all_dim = 0.707;
  EXPECT_FLOAT_EQ(make_rope_table(c).attention_scaling, 1.0f);
  EXPECT_NEAR(yarn_get_mscale(40, 1.0), 0.1 * std::log(40.0) + 1, 1e-12);
  EXPECT_EQ(yarn_get_mscale(1.0, 1.0), 1.0);
}

TEST(Rope, BadConfigsAreErrors) {
  RopeConfig c;
  c.rot_dim = 7;
  EXPECT_THROW(make_rope_table(c), Error);
  c.rot_dim = 8;
  c.scaling = RopeScaling::kYarn;
  c.factor = 4;
  EXPECT_THROW(make_rope_table(c), Error);  // no original_max_position_embeddings
}

// Double-precision rotation of one head, for either pairing.
std::vector<double> rope_ref(const float* x, int64_t d, int64_t rot, double pos, const RopeTable& t, RopeStyle s) {
  std::vector<double> y(x, x + d);
  for (int64_t i = 0; i < rot / 2; ++i) {
    const int64_t a = s == RopeStyle::kHalfSplit ? i : 2 * i, b = s == RopeStyle::kHalfSplit ? i + rot / 2 : 2 * i + 1;
    const double ang = pos * t.inv_freq[i], c = std::cos(ang) * t.attention_scaling,
                 sn = std::sin(ang) * t.attention_scaling;
    y[a] = x[a] * c - x[b] * sn;
    y[b] = x[b] * c + x[a] * sn;
  }
  return y;
}

TEST(Rope, RotationMatchesDoubleForBothStylesAndPartialRotary) {
  for (RopeStyle style : {RopeStyle::kHalfSplit, RopeStyle::kInterleaved}) {
    RopeConfig c;
    c.rot_dim = 8;  // of a 12-dim head: the last 4 dims pass through
    RopeTable t = make_rope_table(c);
    const int64_t T = 3, H = 2, D = 12;
    auto x = randn(T * H * D, 5);
    auto y = x;
    apply_rope(y.data(), T, 7, RopeLayout{H, D, H * D, style}, t);
    for (int64_t i = 0; i < T; ++i)
      for (int64_t h = 0; h < H; ++h) {
        auto ref = rope_ref(x.data() + (i * H + h) * D, D, 8, 7 + i, t, style);
        for (int64_t d = 0; d < D; ++d) EXPECT_NEAR(y[(i * H + h) * D + d], ref[d], 1e-5);
      }
  }
}

TEST(Rope, ScoresDependOnRelativePositionOnly) {
  RopeConfig c;
  c.rot_dim = 16;
  RopeTable t = make_rope_table(c);
  auto q = randn(16, 8), k = randn(16, 9);
  auto score = [&](int64_t pq, int64_t pk) {
    auto a = q, b = k;
    apply_rope(a.data(), 1, pq, RopeLayout{1, 16, 16, RopeStyle::kInterleaved}, t);
    apply_rope(b.data(), 1, pk, RopeLayout{1, 16, 16, RopeStyle::kInterleaved}, t);
    double s = 0;
    for (int i = 0; i < 16; ++i) s += double(a[i]) * b[i];
    return s;
  };
  EXPECT_NEAR(score(5, 2), score(105, 102), 1e-4);
  EXPECT_GT(std::abs(score(5, 2) - score(5, 4)), 1e-3);
}

TEST(KvCache, StoresAdvancesAndRejectsOverflow) {
  KvCache cache(2, 4, 3, 2);
  std::vector<float> k = {1, 2, 3, 4, 5, 6}, v = {7, 8, 9, 10};
  cache.store(1, k.data(), v.data(), 2);
  cache.advance(2);
  EXPECT_EQ(cache.length(), 2);
  EXPECT_EQ(cache.keys(1)[5], 6.0f);
  EXPECT_EQ(cache.values(1)[3], 10.0f);
  cache.store(0, k.data(), v.data(), 2);
  EXPECT_EQ(cache.keys(0)[2 * 3], 1.0f);  // written after the two cached tokens
  cache.advance(2);
  EXPECT_THROW(cache.store(0, k.data(), v.data(), 1), Error);
  EXPECT_THROW(cache.advance(1), Error);
  EXPECT_EQ(cache.bytes_for(4), 2u * 4 * 5 * 4);
  EXPECT_THROW(KvCache(0, 4, 3, 2), Error);
  KvCache latent(1, 2, 5, 0);  // MLA: keys only
  EXPECT_EQ(latent.values(0), nullptr);
}

TEST(KvCache, SixteenBitRowsRoundOnStoreAndTakeHalfTheBytes) {
  for (DType t : {DType::kF16, DType::kBF16}) {
    KvCache cache(2, 4, 4, 2, 2, {}, t);  // two heads: [2, S, 2] keys, [2, S, 1] values
    EXPECT_EQ(cache.dtype(), t);
    std::vector<float> k = {1.0f, 2.0f, 3.0f, 1.0f / 3.0f, 5.0f, 6.0f, 7.0f, 8.0f}, v = {9.0f, 10.0f, 11.0f, 12.0f};
    cache.store(1, k.data(), v.data(), 2);
    cache.advance(2);
    const auto* kh = static_cast<const uint16_t*>(cache.key_data(1));
    const auto* vh = static_cast<const uint16_t*>(cache.value_data(1));
    float f = 0;
    widen_half_ref(t, &kh[1], &f, 1);  // head 0, token 0, element 1
    EXPECT_EQ(f, 2.0f);
    widen_half_ref(t, &kh[4 * 2 + 1], &f, 1);  // head 1 (S = 4 rows of 2 further), token 0, element 1
    EXPECT_NEAR(f, 1.0f / 3.0f, t == DType::kF16 ? 1e-3 : 2e-3);
    EXPECT_NE(f, 1.0f / 3.0f);             // rounded
    widen_half_ref(t, &vh[4 + 1], &f, 1);  // head 1, token 1
    EXPECT_EQ(f, 12.0f);
    EXPECT_EQ(cache.bytes_for(4), 2u * 4 * 6 * 2);
  }
  EXPECT_THROW(KvCache(1, 4, 2, 2, 1, {}, DType::kQ8_0), Error);
}

TEST(KvCache, TiledKeysLandAtTheirTileOffsets) {
  // 40 positions (a whole tile and part of the next) of 2 heads of 3; keys tiled where the AVX-512 decode
  // kernel runs, values in rows.
  const int64_t S = 40, w = 3;
  KvCache cache(1, S, 2 * w, 2 * w, 2, {}, DType::kF16, true);
  EXPECT_EQ(cache.key_tiled(), attention_kv16_native());
  if (!cache.key_tiled()) GTEST_SKIP() << "keys stay in rows on this machine";
  EXPECT_FALSE(KvCache(1, S, 2 * w, 2 * w, 2, {}, DType::kF32, true).key_tiled());
  EXPECT_EQ(cache.key_head_stride(), 2 * kKeyTile * w);  // 40 positions rounded up to 64
  std::vector<float> k(static_cast<size_t>(S * 2 * w)), v(k.size());
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<float>(i), v[i] = -static_cast<float>(i);
  cache.store(0, k.data(), v.data(), 5);  // two stores: positions 0..4, then 5..39
  cache.advance(5);
  cache.store(0, k.data() + 5 * 2 * w, v.data() + 5 * 2 * w, S - 5);
  cache.advance(S - 5);
  const auto* kh = static_cast<const uint16_t*>(cache.key_data(0));
  const auto* vh = static_cast<const uint16_t*>(cache.value_data(0));
  for (int64_t j = 0; j < S; ++j)
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t p = 0; p < w; ++p) {
        EXPECT_EQ(f16_to_f32(kh[h * cache.key_head_stride() + key_tile_offset(j, p, w)]), k[(j * 2 + h) * w + p]);
        EXPECT_EQ(f16_to_f32(vh[h * cache.value_head_stride() + j * w + p]), v[(j * 2 + h) * w + p]);
      }
  EXPECT_EQ(cache.bytes_for(S), 2u * S * 2 * 2 * w);
}

}  // namespace
}  // namespace moe
