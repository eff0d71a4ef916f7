// Causal attention on the training GEMM (see attention_f32.h). Work items are (sequence, head)
// forward and (sequence, kv head) backward, so every output row has a single writer.
#include "train/attention_f32.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/gemm_f32.h"
#include "kernels/vmath.h"
#include "runtime/aligned.h"
#include "train/linalg.h"

namespace moe::train {
namespace {

constexpr int64_t kRows = 32;  // query rows per block

struct HeadView {
  int64_t S, Dh, qs, kvs;  // sequence length, head dim, row strides of q/out and k/v
};

// Row i of the scores in place: scale, causal softmax over j <= i, zeros after up to column
// `cols` (the end of the row's 32-row block). No product reads a row past its block's end, so the
// rest of the [S, S] buffer is never written (it was ~40% of the bytes of P and dS).
void softmax_row(float* p, int64_t i, int64_t cols, float scale) {
  softmax_f32(p, i + 1, scale);
  std::fill(p + i + 1, p + cols, 0.0f);
}

// Packed copies of a head's operands, made once per head: every 32-row block then reads a prefix
// of the columns (or a range of the rows) of the same panels instead of packing its own.
struct HeadPacks {
  AlignedBuffer<float> a, b;
  float* get(AlignedBuffer<float>& buf, GemmOperand src, int64_t k, int64_t n) {
    const auto size = static_cast<size_t>(gemm_f32_packed_size(k, n));
    if (buf.size() < size) buf = AlignedBuffer<float>(size);
    gemm_f32_pack_b(src, k, n, buf.data());
    return buf.data();
  }
};

void head_forward(float* o, float* P, const float* q, const float* k, const float* v, const HeadView& h,
                  HeadPacks& packs) {
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(h.Dh)));
  const float* kt = packs.get(packs.a, {k, 1, h.kvs}, h.Dh, h.S);  // K^T [Dh, S]
  const float* vp = packs.get(packs.b, {v, h.kvs, 1}, h.S, h.Dh);  // V [S, Dh]
  for (int64_t i0 = 0; i0 < h.S; i0 += kRows) {
    const int64_t r = std::min(kRows, h.S - i0), cols = i0 + r;
    gemm_f32_packed({q + i0 * h.qs, h.qs, 1}, kt, h.Dh, 0, P + i0 * h.S, h.S, {r, cols, h.Dh}, false);  // [r, cols]
    for (int64_t i = i0; i < i0 + r; ++i) softmax_row(P + i * h.S, i, cols, scale);
    gemm_f32_packed({P + i0 * h.S, h.S, 1}, vp, h.S, 0, o + i0 * h.qs, h.qs, {r, h.Dh, cols}, false);  // [r, Dh]
  }
}

// Packs of the kv head's K and V^T, shared by the heads of its group.
struct KvPacks {
  HeadPacks kv;
  const float *k = nullptr, *vt = nullptr;
};

// dS = P * (dP - rowsum(dP * P)) * scale with dP = dO V^T; dQ += dS K; dK += dS^T Q; dV += P^T dO.
void head_backward(float* dq, float* dk, float* dv, float* ds, const float* dout, const float* q, const KvPacks& kvp,
                   const float* P, const HeadView& h, HeadPacks& packs) {
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(h.Dh)));
  const int64_t S = h.S;
  for (int64_t i0 = 0; i0 < S; i0 += kRows) {
    const int64_t r = std::min(kRows, S - i0), cols = i0 + r;
    gemm_f32_packed({dout + i0 * h.qs, h.qs, 1}, kvp.vt, h.Dh, 0, ds + i0 * S, S, {r, cols, h.Dh}, false);  // dP
    for (int64_t i = i0; i < i0 + r; ++i) {
      float* d = ds + i * S;
      softmax_backward_f32(d, P + i * S, i + 1, scale);
      std::fill(d + i + 1, d + cols, 0.0f);
    }
    gemm_f32_packed({ds + i0 * S, S, 1}, kvp.k, S, 0, dq + i0 * h.qs, h.qs, {r, h.Dh, cols}, true);  // dQ rows
  }
  const float* qp = packs.get(packs.a, {q, h.qs, 1}, S, h.Dh);      // Q [S, Dh]
  const float* dop = packs.get(packs.b, {dout, h.qs, 1}, S, h.Dh);  // dO [S, Dh]
  for (int64_t j0 = 0; j0 < S; j0 += kRows) {                       // key rows j see query rows i >= j only
    const int64_t r = std::min(kRows, S - j0), depth = S - j0;
    const int64_t at = j0 * S + j0;
    gemm_f32_packed({ds + at, 1, S}, qp, S, j0, dk + j0 * h.kvs, h.kvs, {r, h.Dh, depth}, true);
    gemm_f32_packed({P + at, 1, S}, dop, S, j0, dv + j0 * h.kvs, h.kvs, {r, h.Dh, depth}, true);
  }
}

}  // namespace

void attention_forward_f32(float* out, float* probs, const float* q, const float* k, const float* v,
                           const AttentionShape& s) {
  const int64_t S = s.seq, H = s.n_head, Dh = s.head_dim, group = s.n_head / s.n_kv_head;
  const HeadView hv{S, Dh, H * Dh, s.n_kv_head * Dh};
  parallel_items(s.batch * H, S * S * Dh, [&](int64_t b0, int64_t b1) {
    HeadPacks packs;
    for (int64_t bh = b0; bh < b1; ++bh) {
      const int64_t b = bh / H, h = bh % H, kh = h / group;
      head_forward(out + b * S * hv.qs + h * Dh, probs + bh * S * S, q + b * S * hv.qs + h * Dh,
                   k + b * S * hv.kvs + kh * Dh, v + b * S * hv.kvs + kh * Dh, hv, packs);
    }
  });
}

void attention_backward_f32(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                            const float* v, const float* probs, const AttentionShape& s) {
  const int64_t S = s.seq, H = s.n_head, Hkv = s.n_kv_head, Dh = s.head_dim, group = H / Hkv;
  const HeadView hv{S, Dh, H * Dh, Hkv * Dh};
  parallel_items(s.batch * Hkv, 2 * group * S * S * Dh, [&](int64_t b0, int64_t b1) {
    std::vector<float> ds(static_cast<size_t>(S * S));  // [S, S] dS of one head
    HeadPacks packs;
    KvPacks kvp;
    for (int64_t bk = b0; bk < b1; ++bk) {
      const int64_t b = bk / Hkv, kh = bk % Hkv;
      const int64_t kv_at = b * S * hv.kvs + kh * Dh;
      kvp.k = kvp.kv.get(kvp.kv.a, {k + kv_at, hv.kvs, 1}, S, Dh);   // K [S, Dh]
      kvp.vt = kvp.kv.get(kvp.kv.b, {v + kv_at, 1, hv.kvs}, Dh, S);  // V^T [Dh, S]
      for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
        const int64_t q_at = b * S * hv.qs + h * Dh;
        head_backward(dq + q_at, dk + kv_at, dv + kv_at, ds.data(), dout + q_at, q + q_at, kvp,
                      probs + (b * H + h) * S * S, hv, packs);
      }
    }
  });
}

}  // namespace moe::train
