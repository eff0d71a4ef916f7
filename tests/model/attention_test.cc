// Attention (GQA, causal, sliding window, chunks, sinks) against a double-precision loop written from
// the definitions, and MLA naive vs weight-absorbed vs the same definitions.
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/attention_kv16.h"
#include "kernels/half_rows.h"
#include "model/attention.h"
#include "model/mla.h"
#include "runtime/cpu_features.h"

namespace moe {
namespace {

std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

// out[i, h] over keys j <= qpos (and qpos - j < window), sink in the denominator.
std::vector<double> definition(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                               int64_t T, int64_t S, const AttentionShape& s, const AttentionOptions& o) {
  std::vector<double> out(T * s.n_head * s.v_dim, 0.0);
  for (int64_t i = 0; i < T; ++i) {
    const int64_t qpos = S - T + i;
    for (int64_t h = 0; h < s.n_head; ++h) {
      const int64_t kvh = h / (s.n_head / s.n_kv_head);
      std::vector<double> w(S, 0.0);
      double denom = o.sinks ? std::exp(double(o.sinks[h])) : 0.0;
      for (int64_t j = 0; j < S; ++j) {
        const bool visible = j <= qpos && (o.sliding_window == 0 || qpos - j < o.sliding_window) &&
                             (o.chunk == 0 || j / o.chunk == qpos / o.chunk);
        if (!visible) continue;
        double dot = 0;
        for (int64_t d = 0; d < s.qk_dim; ++d)
          dot += double(q[(i * s.n_head + h) * s.qk_dim + d]) * k[(j * s.n_kv_head + kvh) * s.qk_dim + d];
        w[j] = std::exp(dot * o.scale);
        denom += w[j];
      }
      for (int64_t j = 0; j < S; ++j)
        for (int64_t d = 0; d < s.v_dim; ++d)
          out[(i * s.n_head + h) * s.v_dim + d] += w[j] / denom * v[(j * s.n_kv_head + kvh) * s.v_dim + d];
    }
  }
  return out;
}

struct Case {
  int64_t H, Hkv, Dqk, Dv, T, S, window;
  bool sinks;
  int64_t chunk = 0;  // Llama 4 chunked attention
};

TEST(Attention, MatchesDefinition) {
  const Case cases[] = {{4, 4, 8, 8, 5, 5, 0, false},
                        {4, 2, 16, 16, 3, 9, 0, false},
                        {6, 2, 8, 12, 7, 7, 3, false},
                        {4, 1, 8, 8, 1, 12, 4, true},
                        {4, 2, 16, 8, 12, 12, 4, true},
                        {2, 2, 5, 3, 1, 1, 0, true},
                        // several query blocks and head chunks per kv head; P . V as a GEMM (>= 16 rows)
                        {8, 2, 16, 16, 40, 70, 0, false},
                        {8, 1, 12, 9, 33, 50, 20, true},
                        {16, 4, 8, 8, 1, 100, 0, false},
                        {12, 12, 7, 5, 21, 29, 0, true},
                        // chunks: queries in several chunks, a chunk boundary inside a query block
                        {4, 2, 8, 8, 12, 12, 0, false, 5},
                        {8, 2, 16, 16, 40, 70, 0, false, 16},
                        {4, 1, 8, 8, 1, 23, 0, false, 8}};
  uint64_t seed = 10;
  for (const Case& c : cases) {
    AttentionShape s{c.H, c.Hkv, c.Dqk, c.Dv};
    auto q = randn(c.T * c.H * c.Dqk, seed++), k = randn(c.S * c.Hkv * c.Dqk, seed++),
         v = randn(c.S * c.Hkv * c.Dv, seed++), sinks = randn(c.H, seed++, 2.0f);
    AttentionOptions o{1.0f / std::sqrt(float(c.Dqk)), c.window, c.sinks ? sinks.data() : nullptr, c.chunk};
    std::vector<float> out(c.T * c.H * c.Dv), ref(out.size());
    attention_forward({q.data(), k.data(), v.data(), out.data(), c.T, c.S}, s, o);
    attention_forward_ref({q.data(), k.data(), v.data(), ref.data(), c.T, c.S}, s, o);
    auto def = definition(q, k, v, c.T, c.S, s, o);
    // The decoder's head-major cache ([Hkv, S, D], KvCache with heads): the same keys and values.
    std::vector<float> kh(k.size()), vh(v.size()), out_h(out.size());
    for (int64_t j = 0; j < c.S; ++j)
      for (int64_t h = 0; h < c.Hkv; ++h) {
        for (int64_t d = 0; d < c.Dqk; ++d) kh[(h * c.S + j) * c.Dqk + d] = k[(j * c.Hkv + h) * c.Dqk + d];
        for (int64_t d = 0; d < c.Dv; ++d) vh[(h * c.S + j) * c.Dv + d] = v[(j * c.Hkv + h) * c.Dv + d];
      }
    attention_forward({q.data(), kh.data(), vh.data(), out_h.data(), c.T, c.S, c.Dqk, c.Dv, c.S * c.Dqk, c.S * c.Dv}, s,
                      o);
    for (size_t i = 0; i < out.size(); ++i) {
      EXPECT_NEAR(out[i], def[i], 1e-5) << "case H" << c.H << " T" << c.T << " S" << c.S << " i " << i;
      EXPECT_NEAR(out_h[i], def[i], 1e-5) << "head-major, case H" << c.H << " T" << c.T << " S" << c.S << " i " << i;
      EXPECT_NEAR(ref[i], def[i], 1e-6);
    }
  }
}

TEST(Attention, SinksOnlyShrinkTheOutputAndMinusInfinityIsNoSink) {
  AttentionShape s{2, 1, 4, 4};
  auto q = randn(3 * 2 * 4, 1), k = randn(3 * 4, 2), v = randn(3 * 4, 3);
  std::vector<float> plain(3 * 2 * 4), none(plain.size()), big(plain.size());
  std::vector<float> minus_inf = {-INFINITY, -INFINITY}, huge = {30.0f, 30.0f};
  attention_forward({q.data(), k.data(), v.data(), plain.data(), 3, 3}, s, {0.5f, 0, nullptr});
  attention_forward({q.data(), k.data(), v.data(), none.data(), 3, 3}, s, {0.5f, 0, minus_inf.data()});
  attention_forward({q.data(), k.data(), v.data(), big.data(), 3, 3}, s, {0.5f, 0, huge.data()});
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_NEAR(none[i], plain[i], 1e-6);
    EXPECT_NEAR(big[i], 0.0f, 1e-6);  // the sink takes almost all the mass
  }
}

TEST(Attention, IncrementalEqualsFull) {
  // Decoding token by token over a growing cache gives the rows of the full causal pass.
  AttentionShape s{4, 2, 8, 8};
  const int64_t S = 10;
  auto q = randn(S * 4 * 8, 4), k = randn(S * 2 * 8, 5), v = randn(S * 2 * 8, 6);
  for (int64_t window : {0, 3}) {
    AttentionOptions o{0.35f, window, nullptr};
    std::vector<float> full(S * 4 * 8), step(4 * 8);
    attention_forward({q.data(), k.data(), v.data(), full.data(), S, S}, s, o);
    for (int64_t i = 0; i < S; ++i) {
      attention_forward({q.data() + i * 32, k.data(), v.data(), step.data(), 1, i + 1}, s, o);
      for (int64_t d = 0; d < 32; ++d) EXPECT_NEAR(step[d], full[i * 32 + d], 1e-6);
    }
  }
}

// Keys and values [S, Hkv, D] in a head-major 16-bit cache ([Hkv, S, D]).
std::vector<uint16_t> head_major_half(const std::vector<float>& x, int64_t S, int64_t Hkv, int64_t D, DType t) {
  std::vector<float> hm(x.size());
  for (int64_t j = 0; j < S; ++j)
    for (int64_t h = 0; h < Hkv; ++h)
      for (int64_t d = 0; d < D; ++d) hm[(h * S + j) * D + d] = x[(j * Hkv + h) * D + d];
  std::vector<uint16_t> out(x.size());
  narrow_half_ref(t, hm.data(), out.data(), static_cast<int64_t>(out.size()));
  return out;
}

// Keys [S, Hkv, D] in tiles per head (kernels/attention_kv16.h), S rounded up to whole tiles; unused slots
// hold a large value, which must not reach any output.
std::vector<uint16_t> tiled_half(const std::vector<float>& x, int64_t S, int64_t Hkv, int64_t D, DType t) {
  const int64_t per_head = (S + kKeyTile - 1) / kKeyTile * kKeyTile * D;
  std::vector<float> tiled(static_cast<size_t>(Hkv * per_head), 6.0e4f);
  for (int64_t j = 0; j < S; ++j)
    for (int64_t h = 0; h < Hkv; ++h)
      for (int64_t d = 0; d < D; ++d) tiled[h * per_head + key_tile_offset(j, d, D)] = x[(j * Hkv + h) * D + d];
  std::vector<uint16_t> out(tiled.size());
  narrow_half_ref(t, tiled.data(), out.data(), static_cast<int64_t>(out.size()));
  return out;
}

TEST(Attention, SixteenBitCacheMatchesTheTwinAndStaysNearF32) {
  // Decode rows (attention_pv over spans) and prefill rows (>= 16 rows: the transposed GEMM), more
  // positions than one widened span (256), windows and sinks: the same sums as the double twin reading
  // the same 16-bit values, and near the f32 cache's output.
  const Case cases[] = {{8, 2, 16, 16, 1, 600, 0, false},  {4, 1, 64, 64, 1, 300, 0, true},
                        {16, 4, 8, 8, 2, 257, 100, false}, {8, 2, 16, 12, 40, 530, 0, false},
                        {8, 1, 12, 9, 33, 290, 20, true},  {2, 2, 5, 3, 3, 3, 0, false}};
  uint64_t seed = 40;
  for (DType t : {DType::kF16, DType::kBF16}) {
    for (const Case& c : cases) {
      AttentionShape s{c.H, c.Hkv, c.Dqk, c.Dv};
      auto q = randn(c.T * c.H * c.Dqk, seed++), k = randn(c.S * c.Hkv * c.Dqk, seed++),
           v = randn(c.S * c.Hkv * c.Dv, seed++), sinks = randn(c.H, seed++, 2.0f);
      AttentionOptions o{1.0f / std::sqrt(float(c.Dqk)), c.window, c.sinks ? sinks.data() : nullptr, c.chunk};
      const auto kh = head_major_half(k, c.S, c.Hkv, c.Dqk, t), vh = head_major_half(v, c.S, c.Hkv, c.Dv, t);
      const auto kt = tiled_half(k, c.S, c.Hkv, c.Dqk, t);
      std::vector<float> f32(c.T * c.H * c.Dv);
      attention_forward({q.data(), k.data(), v.data(), f32.data(), c.T, c.S}, s, o);
      for (bool tiled : {false, true}) {  // keys in rows, and in tiles (the decoder's cache on AVX-512)
        AttentionTensors at{q.data(),
                            tiled ? kt.data() : kh.data(),
                            vh.data(),
                            nullptr,
                            c.T,
                            c.S,
                            c.Dqk,
                            c.Dv,
                            tiled ? int64_t(kt.size()) / c.Hkv : c.S * c.Dqk,
                            c.S * c.Dv,
                            t,
                            tiled};
        std::vector<float> out(f32.size()), ref(out.size());
        at.out = ref.data();
        attention_forward_ref(at, s, o);
        const double near_f32 = t == DType::kF16 ? 5e-3 : 4e-2;
        // This machine's kernels (AVX-512: decode reads the 16-bit rows in place), and AVX2's (spans widened).
        for (Isa isa : {detected_isa(), Isa::kAvx2}) {
          if (isa > detected_isa()) continue;
          const Isa prev = set_isa_override(isa);
          at.out = out.data();
          attention_forward(at, s, o);
          set_isa_override(prev);
          for (size_t i = 0; i < out.size(); ++i) {
            ASSERT_FALSE(std::isnan(out[i]));
            EXPECT_NEAR(out[i], ref[i], 2e-5) << dtype_name(t) << " " << isa_name(isa) << " tiled " << tiled
                                              << " case H" << c.H << " T" << c.T << " S" << c.S;
            EXPECT_NEAR(out[i], f32[i], near_f32) << dtype_name(t) << " case H" << c.H << " T" << c.T << " S" << c.S;
          }
        }
      }
    }
  }
}

TEST(Mla, NaiveAndAbsorbedMatchTheDefinition) {
  MlaShape s{3, 6, 4, 5, 7};  // H, nope, rope, v, r
  const int64_t T = 4, S = 6, lr = s.latent_row(), per_head = s.nope_dim + s.v_dim;
  auto q = randn(T * s.n_head * s.q_dim(), 21), latent = randn(S * lr, 22), kv_b = randn(s.n_head * per_head * 7, 23);
  const float scale = 0.3f;
  MlaAttention mla(s, WeightView{kv_b.data(), DType::kF32, s.kv_lora_rank});
  std::vector<float> naive(T * s.n_head * s.v_dim), absorbed(naive.size());
  mla.forward_naive({q.data(), latent.data(), naive.data(), T, S}, {scale, 0, nullptr});
  mla.forward_absorbed({q.data(), latent.data(), absorbed.data(), T, S}, {scale, 0, nullptr});
  for (int64_t i = 0; i < T; ++i) {
    for (int64_t h = 0; h < s.n_head; ++h) {
      const float* qi = q.data() + (i * s.n_head + h) * s.q_dim();
      std::vector<double> w(S, 0.0), out(s.v_dim, 0.0);
      double denom = 0;
      for (int64_t j = 0; j <= S - T + i; ++j) {
        const float* c = latent.data() + j * lr;
        double dot = 0;
        for (int64_t a = 0; a < s.nope_dim; ++a) {
          double kn = 0;
          for (int64_t b = 0; b < s.kv_lora_rank; ++b) kn += double(kv_b[(h * per_head + a) * 7 + b]) * c[b];
          dot += qi[a] * kn;
        }
        for (int64_t a = 0; a < s.rope_dim; ++a) dot += double(qi[s.nope_dim + a]) * c[s.kv_lora_rank + a];
        w[j] = std::exp(dot * scale);
        denom += w[j];
        for (int64_t a = 0; a < s.v_dim; ++a) {
          double vv = 0;
          for (int64_t b = 0; b < s.kv_lora_rank; ++b)
            vv += double(kv_b[(h * per_head + s.nope_dim + a) * 7 + b]) * c[b];
          out[a] += w[j] * vv;
        }
      }
      for (int64_t a = 0; a < s.v_dim; ++a) {
        const size_t at = (i * s.n_head + h) * s.v_dim + a;
        EXPECT_NEAR(naive[at], out[a] / denom, 1e-4);
        EXPECT_NEAR(absorbed[at], out[a] / denom, 1e-4);
        EXPECT_NEAR(absorbed[at], naive[at], 1e-5);
      }
    }
  }
  // A 16-bit cache's latent rows: both paths give what the f32 paths give on the same rounded rows.
  for (DType t : {DType::kF16, DType::kBF16}) {
    std::vector<uint16_t> lh(latent.size());
    narrow_half_ref(t, latent.data(), lh.data(), static_cast<int64_t>(lh.size()));
    std::vector<float> rounded(latent.size()), want(naive.size()), n16(naive.size()), a16(naive.size());
    widen_half_ref(t, lh.data(), rounded.data(), static_cast<int64_t>(lh.size()));
    mla.forward_naive({q.data(), rounded.data(), want.data(), T, S}, {scale, 0, nullptr});
    mla.forward_naive({q.data(), lh.data(), n16.data(), T, S, t}, {scale, 0, nullptr});
    mla.forward_absorbed({q.data(), lh.data(), a16.data(), T, S, t}, {scale, 0, nullptr});
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_NEAR(n16[i], want[i], 1e-5) << dtype_name(t);
      EXPECT_NEAR(a16[i], want[i], 1e-4) << dtype_name(t);
    }
  }
}

}  // namespace
}  // namespace moe
