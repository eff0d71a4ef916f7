// MLA, naive and weight-absorbed (see mla.h); the per-head products of the absorbed path run in
// parallel over heads.
#include "model/mla.h"

#include <algorithm>

#include "kernels/half_rows.h"
#include "kernels/quant_blocks.h"
#include "runtime/thread_pool.h"
#include "util/check.h"
#include "util/dtype.h"

namespace moe {
namespace {

// fn(h) for every head, split across thread_pool() unless the per-head product (macs) is too small
// to pay for waking the threads. Heads write disjoint columns, so the split does not change results.
template <typename Fn>
void for_each_head(int64_t n_head, int64_t macs_per_head, Fn&& fn) {
  if (n_head * macs_per_head < (1 << 16)) {
    for (int64_t h = 0; h < n_head; ++h) fn(h);
    return;
  }
  thread_pool().parallel_for_dynamic(n_head, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t h = b; h < e; ++h) fn(h);
  });
}

}  // namespace

MlaAttention::MlaAttention(const MlaShape& shape, const WeightView& kv_b) : shape_(shape), kv_b_(kv_b) {
  const MlaShape& s = shape_;
  MOE_CHECK(s.n_head > 0 && s.nope_dim > 0 && s.rope_dim > 0 && s.v_dim > 0 && s.kv_lora_rank > 0);
  MOE_CHECK(kv_b.data != nullptr && kv_b.ld >= s.kv_lora_rank);
  const int64_t r = s.kv_lora_rank, per_head = s.nope_dim + s.v_dim;
  w_uk_t_.resize(static_cast<size_t>(s.n_head * r * s.nope_dim));  // [H, r, nope]
  std::vector<float> row(static_cast<size_t>(r));
  const int64_t row_bytes = dtype_row_bytes(kv_b.dtype, kv_b.ld);
  for (int64_t h = 0; h < s.n_head; ++h) {
    for (int64_t i = 0; i < s.nope_dim; ++i) {
      const auto* src = static_cast<const uint8_t*>(kv_b.data) + (h * per_head + i) * row_bytes;
      dequantize_row(kv_b.dtype, src, row.data(), r);
      for (int64_t c = 0; c < r; ++c) w_uk_t_[(h * r + c) * s.nope_dim + i] = row[c];
    }
  }
}

void MlaAttention::forward_naive(const MlaTensors& t, const AttentionOptions& options) {
  const MlaShape& s = shape_;
  const int64_t S = t.n_keys, H = s.n_head, r = s.kv_lora_rank, lr = s.latent_row();
  const int64_t per_head = s.nope_dim + s.v_dim;
  kv_.resize(static_cast<size_t>(S * H * per_head));  // [S, H, nope + v]
  k_.resize(static_cast<size_t>(S * H * s.q_dim()));  // [S, H, nope + rope]
  v_.resize(static_cast<size_t>(S * H * s.v_dim));    // [S, H, v]
  const int64_t row_bytes = dtype_row_bytes(kv_b_.dtype, kv_b_.ld);
  const float* latent = static_cast<const float*>(t.latent);
  if (t.latent_type != DType::kF32) {  // a 16-bit cache: the S latent rows widened once
    latent_f32_.resize(static_cast<size_t>(S * lr));
    widen_half(t.latent_type, static_cast<const uint16_t*>(t.latent), latent_f32_.data(), S * lr);
    latent = latent_f32_.data();
  }
  for_each_head(H, S * per_head * r, [&](int64_t h) {  // kv[:, h] = latent c . W_kv_b[h]^T
    const WeightView w{static_cast<const uint8_t*>(kv_b_.data) + h * per_head * row_bytes, kv_b_.dtype, kv_b_.ld};
    matmul_nt(latent, lr, w, kv_.data() + h * per_head, H * per_head, MatmulShape{S, per_head, r}, false);
  });
  for (int64_t j = 0; j < S; ++j) {
    const float* rope = latent + j * lr + r;
    for (int64_t h = 0; h < H; ++h) {
      const float* src = kv_.data() + (j * H + h) * per_head;
      float* k = k_.data() + (j * H + h) * s.q_dim();
      std::copy(src, src + s.nope_dim, k);
      std::copy(rope, rope + s.rope_dim, k + s.nope_dim);
      std::copy(src + s.nope_dim, src + per_head, v_.data() + (j * H + h) * s.v_dim);
    }
  }
  AttentionTensors at{t.q, k_.data(), v_.data(), t.out, t.n_tokens, S};
  attention_forward(at, AttentionShape{H, H, s.q_dim(), s.v_dim}, options);
}

void MlaAttention::forward_absorbed(const MlaTensors& t, const AttentionOptions& options) {
  const MlaShape& s = shape_;
  const int64_t T = t.n_tokens, H = s.n_head, r = s.kv_lora_rank, lr = s.latent_row();
  q_cat_.resize(static_cast<size_t>(T * H * lr));        // [T, H, r + rope]
  out_lat_.resize(static_cast<size_t>(T * H * r));       // [T, H, r]
  for_each_head(H, T * r * s.nope_dim, [&](int64_t h) {  // q_lat[:, h] = q_nope[:, h] . W_uk[h]
    const WeightView uk_t{w_uk_t_.data() + h * r * s.nope_dim, DType::kF32, s.nope_dim};
    matmul_nt(t.q + h * s.q_dim(), H * s.q_dim(), uk_t, q_cat_.data() + h * lr, H * lr, MatmulShape{T, r, s.nope_dim},
              false);
  });
  for (int64_t i = 0; i < T; ++i) {
    for (int64_t h = 0; h < H; ++h) {
      const float* q_rope = t.q + (i * H + h) * s.q_dim() + s.nope_dim;
      std::copy(q_rope, q_rope + s.rope_dim, q_cat_.data() + (i * H + h) * lr + r);
    }
  }
  // MQA over the latent rows: keys [c | k_rope] (width r + rope), values c (width r).
  AttentionTensors at{q_cat_.data(), t.latent, t.latent, out_lat_.data(), T, t.n_keys, lr, lr};
  at.kv_type = t.latent_type;
  attention_forward(at, AttentionShape{H, 1, lr, r}, options);
  const int64_t row_bytes = dtype_row_bytes(kv_b_.dtype, kv_b_.ld);
  const int64_t per_head = s.nope_dim + s.v_dim;
  for_each_head(H, T * s.v_dim * r, [&](int64_t h) {  // out[:, h] = out_lat[:, h] . W_uv[h]^T
    const auto* uv = static_cast<const uint8_t*>(kv_b_.data) + (h * per_head + s.nope_dim) * row_bytes;
    const WeightView w{uv, kv_b_.dtype, kv_b_.ld};
    matmul_nt(out_lat_.data() + h * r, H * r, w, t.out + h * s.v_dim, H * s.v_dim, MatmulShape{T, s.v_dim, r}, false);
  });
}

}  // namespace moe
