// Decode attention over 16-bit rows (attention_qk16, attention_pv16) against their scalar twins, for f16
// and bf16, over odd row counts, positions, widths and strides (tails of 16 and of the key tiles).
#include "kernels/attention_kv16.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/half_rows.h"
#include "runtime/cpu_features.h"

namespace moe {
namespace {

std::vector<uint16_t> random_half(size_t n, DType t, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  std::vector<uint16_t> h(n);
  narrow_half_ref(t, x.data(), h.data(), static_cast<int64_t>(n));
  return h;
}

TEST(AttentionKv16, ScoresMatchTheScalarTwin) {
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (DType t : {DType::kF16, DType::kBF16}) {
    for (int64_t m : {1, 2, 3, 5, 7, 8, 9, 15}) {
      for (int64_t n : {1, 2, 3, 17, 100}) {
        for (int64_t d : {1, 15, 16, 40, 128, 576}) {
          const int64_t ldq = d + 3, ldk = d + 5, lds = n + 2;
          std::vector<float> q(static_cast<size_t>(m * ldq));
          for (float& v : q) v = dist(rng);
          const std::vector<uint16_t> k = random_half(static_cast<size_t>(n * ldk), t, rng);
          std::vector<float> want(static_cast<size_t>(m * lds), -7.0f), got(want.size(), -7.0f);
          attention_qk16_ref(q.data(), ldq, k.data(), ldk, t, want.data(), lds, m, n, d);
          attention_qk16(q.data(), ldq, k.data(), ldk, t, got.data(), lds, m, n, d);
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < lds; ++j) {
              const float a = got[i * lds + j], b = want[i * lds + j];
              ASSERT_FALSE(std::isnan(a));
              if (j >= n) {
                EXPECT_EQ(a, -7.0f) << "wrote past the scores";
              } else {
                ASSERT_NEAR(a, b, 1e-5f * (1.0f + std::sqrt(float(d))))
                    << dtype_name(t) << " m " << m << " n " << n << " d " << d;
              }
            }
          }
        }
      }
    }
  }
}

// Keys of one head in tiles (key_tile_offset), from rows [n_pos, d].
std::vector<uint16_t> tile_keys(const std::vector<uint16_t>& rows, int64_t n_pos, int64_t d) {
  const int64_t tiles = (n_pos + kKeyTile - 1) / kKeyTile;
  std::vector<uint16_t> kt(static_cast<size_t>(tiles * kKeyTile * d), 0x7c00);  // unused slots: f16 infinity
  for (int64_t j = 0; j < n_pos; ++j)
    for (int64_t p = 0; p < d; ++p) kt[key_tile_offset(j, p, d)] = rows[j * d + p];
  return kt;
}

TEST(AttentionKv16, TiledScoresMatchTheRowKernelsTwin) {
  std::mt19937 rng(13);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (DType t : {DType::kF16, DType::kBF16}) {
    for (int64_t m : {1, 2, 4, 7, 8, 9, 15}) {
      for (int64_t first : {0, 1, 31, 32, 45}) {
        for (int64_t n : {1, 2, 31, 32, 33, 100}) {
          for (int64_t d : {1, 15, 64, 128}) {
            const int64_t ldq = d + 3, lds = n + 2, n_pos = first + n;
            std::vector<float> q(static_cast<size_t>(m * ldq));
            for (float& v : q) v = dist(rng);
            const std::vector<uint16_t> rows = random_half(static_cast<size_t>(n_pos * d), t, rng);
            const std::vector<uint16_t> kt = tile_keys(rows, n_pos, d);
            std::vector<float> want(static_cast<size_t>(m * lds), -7.0f), got(want.size(), -7.0f);
            std::vector<float> twin(want.size(), -7.0f);
            attention_qk16_ref(q.data(), ldq, rows.data() + first * d, d, t, want.data(), lds, m, n, d);
            attention_qk16_tiled_ref(q.data(), ldq, kt.data(), first, t, twin.data(), lds, m, n, d);
            attention_qk16_tiled(q.data(), ldq, kt.data(), first, t, got.data(), lds, m, n, d);
            for (int64_t i = 0; i < m; ++i) {
              for (int64_t j = 0; j < lds; ++j) {
                const float a = got[i * lds + j], b = want[i * lds + j];
                ASSERT_FALSE(std::isnan(a));
                ASSERT_EQ(twin[i * lds + j], b) << "the tiled twin reads the same keys";
                if (j >= n) {
                  EXPECT_EQ(a, -7.0f) << "wrote past the scores";
                } else {
                  ASSERT_NEAR(a, b, 1e-5f * (1.0f + std::sqrt(float(d))))
                      << dtype_name(t) << " m " << m << " first " << first << " n " << n << " d " << d;
                }
              }
            }
          }
        }
      }
    }
  }
}

TEST(AttentionKv16, ValuesMatchTheScalarTwin) {
  std::mt19937 rng(12);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (DType t : {DType::kF16, DType::kBF16}) {
    for (int64_t m : {1, 3, 8, 9}) {
      for (int64_t n : {0, 1, 65, 200}) {
        for (int64_t dv : {1, 15, 16, 17, 128}) {
          for (bool accumulate : {false, true}) {
            PvShape s{m, n, dv, n + 3, dv + 5, dv + 2, accumulate};
            std::vector<float> p(static_cast<size_t>(m * s.ldp));
            for (float& v : p) v = dist(rng);
            const std::vector<uint16_t> v = random_half(static_cast<size_t>(std::max<int64_t>(n, 1) * s.ldv), t, rng);
            std::vector<float> want(static_cast<size_t>(m * s.ldo), 0.5f), got(want.size(), 0.5f);
            attention_pv16_ref(p.data(), v.data(), t, want.data(), s);
            attention_pv16(p.data(), v.data(), t, got.data(), s);
            for (size_t i = 0; i < got.size(); ++i) {
              ASSERT_FALSE(std::isnan(got[i]));
              ASSERT_NEAR(got[i], want[i], 1e-4f * (1.0f + std::sqrt(float(n))))
                  << dtype_name(t) << " m " << m << " n " << n << " dv " << dv << " accumulate " << accumulate;
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace moe
