// KV cache of one sequence: per layer, key rows [S_max, k_row] and value rows [S_max, v_row]
// (k_row = Hkv * Dk for GQA/MHA; for MLA the key row is the latent [c_kv | k_rope] and v_row = 0).
// The decoder writes the rows of new tokens at positions length() .. length() + T - 1 in every
// layer, then calls advance(T).
#pragma once

#include <cstdint>
#include <vector>

namespace moe {

class KvCache {
 public:
  KvCache() = default;
  // Throws moe::Error "[kv-cache] ..." on non-positive sizes.
  KvCache(int64_t n_layer, int64_t max_tokens, int64_t k_row, int64_t v_row);

  int64_t n_layer() const { return n_layer_; }
  int64_t max_tokens() const { return max_tokens_; }
  int64_t k_row() const { return k_row_; }
  int64_t v_row() const { return v_row_; }
  int64_t length() const { return length_; }

  float* keys(int64_t layer);    // [max_tokens, k_row]
  float* values(int64_t layer);  // [max_tokens, v_row]; null when v_row == 0
  const float* keys(int64_t layer) const;
  const float* values(int64_t layer) const;

  // Copies T rows into every position length() + i of one layer. Throws when it would overflow.
  void store(int64_t layer, const float* k_rows, const float* v_rows, int64_t n_tokens);
  void advance(int64_t n_tokens);  // throws when it would pass max_tokens()
  // Keeps the first n_tokens positions (a prefix another prompt shares); throws beyond length().
  void truncate(int64_t n_tokens);
  void reset() {
    length_ = 0;
    ids_.clear();
  }
  // The token ids of the cached positions, as the decoder recorded them (LongRoPE recomputes the
  // prefix from them when a sequence first outgrows original_max_position_embeddings).
  void record_ids(const int32_t* ids, int64_t n_tokens) { ids_.insert(ids_.end(), ids, ids + n_tokens); }
  const std::vector<int32_t>& ids() const { return ids_; }
  // Bytes held by the cache for `tokens` tokens (all layers).
  uint64_t bytes_for(int64_t tokens) const;

 private:
  int64_t n_layer_ = 0, max_tokens_ = 0, k_row_ = 0, v_row_ = 0, length_ = 0;
  std::vector<float> k_, v_;  // [L, max_tokens, k_row], [L, max_tokens, v_row]
  std::vector<int32_t> ids_;  // [length]
};

}  // namespace moe
