// Scaled dot-product attention of one sequence's new tokens over its KV cache: GQA/MHA
// (query head h reads kv head h / (H / Hkv)), causal, optional sliding window or chunks, optional
// attention sinks (gpt-oss), softmax in f32. QK-norm and RoPE are applied by the caller to q and
// k before this call (norm.h, rope.h), as each family orders them differently.
#pragma once

#include <cstdint>

#include "util/dtype.h"

namespace moe {

struct AttentionShape {
  int64_t n_head = 0;     // H
  int64_t n_kv_head = 0;  // Hkv, divides H
  int64_t qk_dim = 0;     // Dqk
  int64_t v_dim = 0;      // Dv
};

struct AttentionOptions {
  float scale = 0.0f;            // multiplies q.k (Dqk^-0.5, or MLA's YaRN-corrected scale)
  int64_t sliding_window = 0;    // 0: full causal; W: key k visible to query q iff 0 <= q - k < W
  const float* sinks = nullptr;  // [H]: an extra logit per head in the softmax denominator, or null
  int64_t chunk = 0;             // Llama 4 chunked attention: a key is visible only within its query's chunk
};

// The T new tokens are the last T of the n_keys cached positions (query i sits at position
// n_keys - T + i). Rows of q and out are packed (H * Dqk, H * Dv); key and value rows may be
// wider than Hkv * D (MLA's absorbed path reads keys and values out of one latent row). Keys and
// values are f32, or 16-bit floats (kv_type kF16 / kBF16: a 16-bit KV cache) that attention widens
// a span of positions at a time; strides count elements of kv_type.
struct AttentionTensors {
  const float* q = nullptr;  // [T, H, Dqk]
  const void* k = nullptr;   // [S, Hkv, Dqk]
  const void* v = nullptr;   // [S, Hkv, Dv]
  float* out = nullptr;      // [T, H, Dv]
  int64_t n_tokens = 0;      // T
  int64_t n_keys = 0;        // S >= T
  int64_t k_stride = 0;      // floats between key rows; 0 = Hkv * Dqk
  int64_t v_stride = 0;      // floats between value rows; 0 = Hkv * Dv
  // floats between kv heads' keys / values: 0 = Dqk / Dv (heads interleaved in a row); a head-major
  // cache ([Hkv, S, D], KvCache with heads) gives S_max * D with k_stride = Dqk, v_stride = Dv.
  int64_t k_head_stride = 0;
  int64_t v_head_stride = 0;
  DType kv_type = DType::kF32;  // of k and v: kF32, kF16 or kBF16
  // 16-bit keys only: each head's keys in tiles of kKeyTile positions (kernels/attention_kv16.h), the head's
  // first tile k_head_stride elements after the previous head's; k_stride is then unused.
  bool k_tiled = false;
};

// Parallel over (kv head, query block, head chunk) items on thread_pool(), through the NT matmul
// kernels; validates shapes with MOE_CHECK.
void attention_forward(const AttentionTensors& t, const AttentionShape& shape, const AttentionOptions& options);

// The same contract in double precision, serial, for tests.
void attention_forward_ref(const AttentionTensors& t, const AttentionShape& shape, const AttentionOptions& options);

}  // namespace moe
