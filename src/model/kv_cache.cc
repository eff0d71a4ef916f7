// KV cache (see kv_cache.h).
#include "model/kv_cache.h"

#include <algorithm>

#include "runtime/process_limits.h"
#include "util/check.h"
#include "util/error.h"

namespace moe {

KvCache::KvCache(int64_t n_layer, int64_t max_tokens, int64_t k_row, int64_t v_row, int64_t heads)
    : n_layer_(n_layer), max_tokens_(max_tokens), k_row_(k_row), v_row_(v_row), heads_(heads) {
  if (n_layer <= 0 || max_tokens <= 0 || k_row <= 0 || v_row < 0 || heads <= 0 || k_row % heads != 0 ||
      v_row % heads != 0) {
    fail("kv-cache",
         "expected positive sizes, rows divisible by the heads; found layers {} tokens {} key row {} "
         "value row {} heads {}",
         n_layer, max_tokens, k_row, v_row, heads);
  }
  const long double bytes = 4.0L * n_layer * max_tokens * (static_cast<long double>(k_row) + v_row);
  check_fits_in_memory(bytes, "kv-cache",
                       fmt::format("a context of {} tokens (the KV cache: {} layers x {} floats per token)", max_tokens,
                                   n_layer, k_row + v_row));
  k_.assign(static_cast<size_t>(n_layer * max_tokens * k_row), 0.0f);  // [L, S, k_row]
  v_.assign(static_cast<size_t>(n_layer * max_tokens * v_row), 0.0f);  // [L, S, v_row]
}

float* KvCache::keys(int64_t layer) {
  MOE_CHECK(layer >= 0 && layer < n_layer_);
  return k_.data() + layer * max_tokens_ * k_row_;
}
float* KvCache::values(int64_t layer) {
  MOE_CHECK(layer >= 0 && layer < n_layer_);
  return v_row_ ? v_.data() + layer * max_tokens_ * v_row_ : nullptr;
}
const float* KvCache::keys(int64_t layer) const { return const_cast<KvCache*>(this)->keys(layer); }
const float* KvCache::values(int64_t layer) const { return const_cast<KvCache*>(this)->values(layer); }

void KvCache::store(int64_t layer, const float* k_rows, const float* v_rows, int64_t n_tokens) {
  if (length_ + n_tokens > max_tokens_) {
    fail("kv-cache", "{} new tokens after {} do not fit the context of {} tokens", n_tokens, length_, max_tokens_);
  }
  auto put = [&](const float* rows, float* base, int64_t row) {
    const int64_t w = row / heads_;
    for (int64_t h = 0; h < heads_; ++h) {
      float* dst = base + h * max_tokens_ * w + length_ * w;
      for (int64_t t = 0; t < n_tokens; ++t)
        std::copy(rows + t * row + h * w, rows + t * row + (h + 1) * w, dst + t * w);
    }
  };
  put(k_rows, keys(layer), k_row_);
  if (v_row_) put(v_rows, values(layer), v_row_);
}

void KvCache::advance(int64_t n_tokens) {
  if (n_tokens < 0 || length_ + n_tokens > max_tokens_) {
    fail("kv-cache", "cannot advance by {} tokens after {} in a context of {} tokens", n_tokens, length_, max_tokens_);
  }
  length_ += n_tokens;
}

void KvCache::enable_state(int64_t floats_per_layer) {
  if (floats_per_layer <= 0) fail("kv-cache", "a recurrent state needs a positive size, found {}", floats_per_layer);
  check_fits_in_memory(4.0L * n_layer_ * floats_per_layer, "kv-cache",
                       fmt::format("the recurrent state ({} layers x {} floats)", n_layer_, floats_per_layer));
  state_floats_ = floats_per_layer;
  state_.assign(static_cast<size_t>(n_layer_ * floats_per_layer), 0.0f);
}

float* KvCache::state(int64_t layer) {
  MOE_CHECK(layer >= 0 && layer < n_layer_ && state_floats_ > 0);
  return state_.data() + layer * state_floats_;
}

void KvCache::truncate(int64_t n_tokens) {
  if (n_tokens < 0 || n_tokens > length_)
    fail("kv-cache", "cannot keep {} tokens of a cache holding {}", n_tokens, length_);
  if (has_state() && n_tokens > 0 && n_tokens < length_)
    fail("kv-cache", "cannot keep {} of {} tokens: a linear-attention state cannot be rolled back", n_tokens, length_);
  length_ = n_tokens;
  if (ids_.size() > static_cast<size_t>(n_tokens)) ids_.resize(static_cast<size_t>(n_tokens));
}

uint64_t KvCache::bytes_for(int64_t tokens) const {
  return static_cast<uint64_t>(n_layer_) * static_cast<uint64_t>(tokens) * static_cast<uint64_t>(k_row_ + v_row_) *
         sizeof(float);
}

}  // namespace moe
