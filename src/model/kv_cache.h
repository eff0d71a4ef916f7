// KV cache of one sequence: per layer, the keys and values of S_max positions, k_row and v_row
// floats per position (k_row = Hkv * Dk for GQA/MHA; for MLA the key row is the latent
// [c_kv | k_rope] and v_row = 0). With `heads` > 1 the layout is head-major, [heads, S_max,
// row / heads] per layer: the positions of one kv head are contiguous, so attention streams them
// (a position-major row interleaves the heads, and reading one head's quarter of every row wastes
// most of what the memory system fetches).
// The decoder writes the rows of new tokens at positions length() .. length() + T - 1 in every
// layer, then calls advance(T). Rows are kept as f32, or as 16-bit floats (f16 / bf16: half the bytes,
// which attention streams at every decode step; store() rounds, attention widens; 16-bit keys may be kept in
// tiles, key_tiled()). Recurrent layers (MiniMax lightning attention) hold a fixed-size state instead of rows.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "util/dtype.h"

namespace moe {

class Dsv4Cache;  // model/deepseek_v4.h

// The DeepSeek-V4 state of one KvCache: a copy of the cache copies the state (never shares it).
struct Dsv4CacheSlot {
  std::shared_ptr<Dsv4Cache> state;
  Dsv4CacheSlot() = default;
  Dsv4CacheSlot(const Dsv4CacheSlot& o);  // kv_cache.cc: a deep copy
  Dsv4CacheSlot& operator=(const Dsv4CacheSlot& o);
  Dsv4CacheSlot(Dsv4CacheSlot&&) noexcept = default;
  Dsv4CacheSlot& operator=(Dsv4CacheSlot&&) noexcept = default;
};

// Layers that keep a recurrent state of state_floats floats instead of key and value rows (mask[l] != 0).
struct RecurrentLayers {
  std::vector<char> mask;  // [L], or empty: none
  int64_t state_floats = 0;
};

class KvCache {
 public:
  KvCache() = default;
  // Throws moe::Error "[kv-cache] ..." on non-positive sizes or a dtype other than kF32, kF16, kBF16.
  // tile_keys: keep 16-bit keys in tiles (key_tiled()) where the decode kernel for them is vectorized.
  KvCache(int64_t n_layer, int64_t max_tokens, int64_t k_row, int64_t v_row, int64_t heads = 1,
          const RecurrentLayers& recurrent = {}, DType dtype = DType::kF32, bool tile_keys = false);

  int64_t n_layer() const { return n_layer_; }
  int64_t max_tokens() const { return max_tokens_; }
  int64_t k_row() const { return k_row_; }
  int64_t v_row() const { return v_row_; }
  int64_t length() const { return length_; }

  int64_t heads() const { return heads_; }
  DType dtype() const { return dtype_; }  // of the key and value rows
  // Keys in tiles: each head's keys in tiles of kKeyTile positions, dimension-major within a tile
  // (kernels/attention_kv16.h: decode attention's scores then need no sums across lanes), the head's
  // max_tokens rounded up to whole tiles. Otherwise rows of k_row / heads per position.
  bool key_tiled() const { return key_tiled_; }
  // Elements between heads (max_tokens * row / heads; max_tokens rounded up to whole tiles for tiled keys)
  // and between positions of a head (row / heads).
  int64_t key_head_stride() const { return key_positions_ * (k_row_ / heads_); }
  int64_t value_head_stride() const { return max_tokens_ * (v_row_ / heads_); }
  // A recurrent layer has neither (MOE_CHECK). keys() and values(): an f32 cache only (MOE_CHECK);
  // key_data() and value_data(): rows of dtype().
  float* keys(int64_t layer);    // [heads, max_tokens, k_row / heads] (never tiled)
  float* values(int64_t layer);  // [heads, max_tokens, v_row / heads]; null when v_row == 0
  const float* keys(int64_t layer) const;
  const float* values(int64_t layer) const;
  const void* key_data(int64_t layer) const;
  const void* value_data(int64_t layer) const;  // null when v_row == 0

  // Copies T rows ([T, k_row], heads interleaved) to positions length() + i of one layer, rounded to
  // dtype(). Throws when it would overflow.
  void store(int64_t layer, const float* k_rows, const float* v_rows, int64_t n_tokens);
  void advance(int64_t n_tokens);  // throws when it would pass max_tokens()
  // Keeps the first n_tokens positions (a prefix another prompt shares); throws beyond length().
  void truncate(int64_t n_tokens);
  void reset() {
    length_ = 0;
    ids_.clear();
  }
  // The state of a recurrent layer (MiniMax lightning: [H, Dk, Dv]), which the decoder zeroes while
  // length() is 0. A prefix of such a sequence has no state to return to: truncate() to fewer tokens
  // than length() then throws (reset() and truncate(0) start over).
  bool has_state() const { return state_floats_ > 0; }
  float* state(int64_t layer);
  // The token ids of the cached positions, as the decoder recorded them (LongRoPE recomputes the
  // prefix from them when a sequence first outgrows original_max_position_embeddings).
  void record_ids(const int32_t* ids, int64_t n_tokens) { ids_.insert(ids_.end(), ids, ids + n_tokens); }
  const std::vector<int32_t>& ids() const { return ids_; }
  // Bytes held by the cache for `tokens` tokens (all layers' rows and states). DeepSeek-V4: what its state
  // holds now (window rows, compressed entries, pending windows), whatever `tokens`.
  uint64_t bytes_for(int64_t tokens) const;
  // DeepSeek-V4: the window rows and compressor states the decoder keeps for this sequence (all its layers
  // are recurrent here, without rows); made at the first forward, made anew whenever length() is 0.
  std::shared_ptr<Dsv4Cache>& dsv4_state() { return dsv4_.state; }

 private:
  void put_rows(const void* base, const float* rows, int64_t row, int64_t n_tokens);
  void put_tiled_keys(const void* base, const float* rows, int64_t n_tokens);

  int64_t n_layer_ = 0, max_tokens_ = 0, k_row_ = 0, v_row_ = 0, heads_ = 1, length_ = 0, state_floats_ = 0;
  int64_t n_kv_layers_ = 0;
  bool key_tiled_ = false;
  int64_t key_positions_ = 0;    // per head: max_tokens, rounded up to whole tiles for tiled keys
  std::vector<int64_t> slot_;    // [L]: the layer's index among the row layers, or among the recurrent ones
  std::vector<char> recurrent_;  // [L]
  std::vector<float> state_;     // [recurrent layers, state_floats_]
  DType dtype_ = DType::kF32;
  std::vector<float> k_, v_;       // f32: [row layers, max_tokens, k_row], [row layers, max_tokens, v_row]
  std::vector<uint16_t> kh_, vh_;  // f16 / bf16: the same
  std::vector<int32_t> ids_;       // [length]
  Dsv4CacheSlot dsv4_;
};

}  // namespace moe
