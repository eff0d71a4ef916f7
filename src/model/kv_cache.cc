// KV cache (see kv_cache.h).
#include "model/kv_cache.h"

#include "model/deepseek_v4.h"

#include <algorithm>

#include "kernels/attention_kv16.h"
#include "kernels/half_rows.h"
#include "runtime/process_limits.h"
#include "util/check.h"
#include "util/error.h"

namespace moe {

KvCache::KvCache(int64_t n_layer, int64_t max_tokens, int64_t k_row, int64_t v_row, int64_t heads,
                 const RecurrentLayers& recurrent, DType dtype, bool tile_keys)
    : n_layer_(n_layer), max_tokens_(max_tokens), k_row_(k_row), v_row_(v_row), heads_(heads), dtype_(dtype) {
  if (dtype != DType::kF32 && !is_half_float(dtype))
    fail("kv-cache", "rows of {}: expected F32, F16 or BF16", dtype_name(dtype));
  if (n_layer <= 0 || max_tokens <= 0 || k_row <= 0 || v_row < 0 || heads <= 0 || k_row % heads != 0 ||
      v_row % heads != 0) {
    fail("kv-cache",
         "expected positive sizes, rows divisible by the heads; found layers {} tokens {} key row {} "
         "value row {} heads {}",
         n_layer, max_tokens, k_row, v_row, heads);
  }
  if (!recurrent.mask.empty() &&
      (static_cast<int64_t>(recurrent.mask.size()) != n_layer || recurrent.state_floats <= 0))
    fail("kv-cache", "recurrent layers: a mask of {} layers (expected {}) with states of {} floats",
         recurrent.mask.size(), n_layer, recurrent.state_floats);
  recurrent_.assign(static_cast<size_t>(n_layer), 0);
  slot_.resize(static_cast<size_t>(n_layer));
  int64_t n_state = 0;
  for (int64_t l = 0; l < n_layer; ++l) {
    recurrent_[size_t(l)] = !recurrent.mask.empty() && recurrent.mask[size_t(l)];
    slot_[size_t(l)] = recurrent_[size_t(l)] ? n_state++ : n_kv_layers_++;
  }
  if (n_state > 0) state_floats_ = recurrent.state_floats;
  key_tiled_ = tile_keys && is_half_float(dtype) && attention_kv16_native();
  key_positions_ = key_tiled_ ? (max_tokens + kKeyTile - 1) / kKeyTile * kKeyTile : max_tokens;
  const long double elem = dtype == DType::kF32 ? 4.0L : 2.0L;
  const long double bytes = elem * n_kv_layers_ * max_tokens * (static_cast<long double>(k_row) + v_row) +
                            4.0L * n_state * static_cast<long double>(state_floats_);
  check_fits_in_memory(bytes, "kv-cache",
                       fmt::format("a context of {} tokens (the KV cache: {} layers x {} {} values per token)",
                                   max_tokens, n_kv_layers_, k_row + v_row, dtype_name(dtype)));
  const auto kn = static_cast<size_t>(n_kv_layers_ * key_positions_ * k_row);  // [L, S, k_row]
  const auto vn = static_cast<size_t>(n_kv_layers_ * max_tokens * v_row);      // [L, S, v_row]
  if (dtype == DType::kF32) {
    k_.assign(kn, 0.0f);
    v_.assign(vn, 0.0f);
  } else {
    kh_.assign(kn, 0);
    vh_.assign(vn, 0);
  }
  state_.assign(static_cast<size_t>(n_state * state_floats_), 0.0f);
}

float* KvCache::keys(int64_t layer) {
  MOE_CHECK(dtype_ == DType::kF32);
  return static_cast<float*>(const_cast<void*>(key_data(layer)));
}
float* KvCache::values(int64_t layer) {
  MOE_CHECK(dtype_ == DType::kF32);
  return static_cast<float*>(const_cast<void*>(value_data(layer)));
}
const float* KvCache::keys(int64_t layer) const { return const_cast<KvCache*>(this)->keys(layer); }
const float* KvCache::values(int64_t layer) const { return const_cast<KvCache*>(this)->values(layer); }

const void* KvCache::key_data(int64_t layer) const {
  MOE_CHECK(layer >= 0 && layer < n_layer_ && !recurrent_[size_t(layer)]);
  const int64_t at = slot_[size_t(layer)] * key_positions_ * k_row_;
  return dtype_ == DType::kF32 ? static_cast<const void*>(k_.data() + at) : kh_.data() + at;
}
const void* KvCache::value_data(int64_t layer) const {
  MOE_CHECK(layer >= 0 && layer < n_layer_ && !recurrent_[size_t(layer)]);
  if (!v_row_) return nullptr;
  const int64_t at = slot_[size_t(layer)] * max_tokens_ * v_row_;
  return dtype_ == DType::kF32 ? static_cast<const void*>(v_.data() + at) : vh_.data() + at;
}

void KvCache::store(int64_t layer, const float* k_rows, const float* v_rows, int64_t n_tokens) {
  if (length_ + n_tokens > max_tokens_) {
    fail("kv-cache", "{} new tokens after {} do not fit the context of {} tokens", n_tokens, length_, max_tokens_);
  }
  if (key_tiled_) {
    put_tiled_keys(key_data(layer), k_rows, n_tokens);
  } else {
    put_rows(key_data(layer), k_rows, k_row_, n_tokens);
  }
  if (v_row_) put_rows(value_data(layer), v_rows, v_row_, n_tokens);
}

// Rows [T, row] (heads interleaved) to positions length() + t of the head-major rows at base.
void KvCache::put_rows(const void* base, const float* rows, int64_t row, int64_t n_tokens) {
  const int64_t w = row / heads_;
  for (int64_t h = 0; h < heads_; ++h) {
    const int64_t at = h * max_tokens_ * w + length_ * w;
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* src = rows + t * row + h * w;
      if (dtype_ == DType::kF32) {
        std::copy(src, src + w, static_cast<float*>(const_cast<void*>(base)) + at + t * w);
      } else {
        narrow_half(dtype_, src, static_cast<uint16_t*>(const_cast<void*>(base)) + at + t * w, w);
      }
    }
  }
}

// Key rows [T, k_row] to positions length() + t of the tiled keys at base (key_tile_offset).
void KvCache::put_tiled_keys(const void* base, const float* rows, int64_t n_tokens) {
  const int64_t w = k_row_ / heads_;
  std::vector<uint16_t> half(static_cast<size_t>(w));
  for (int64_t h = 0; h < heads_; ++h) {
    uint16_t* head = static_cast<uint16_t*>(const_cast<void*>(base)) + h * key_head_stride();
    for (int64_t t = 0; t < n_tokens; ++t) {
      narrow_half(dtype_, rows + t * k_row_ + h * w, half.data(), w);
      const int64_t j = length_ + t;
      for (int64_t p = 0; p < w; ++p) head[key_tile_offset(j, p, w)] = half[static_cast<size_t>(p)];
    }
  }
}

void KvCache::advance(int64_t n_tokens) {
  if (n_tokens < 0 || length_ + n_tokens > max_tokens_) {
    fail("kv-cache", "cannot advance by {} tokens after {} in a context of {} tokens", n_tokens, length_, max_tokens_);
  }
  length_ += n_tokens;
}

float* KvCache::state(int64_t layer) {
  MOE_CHECK(layer >= 0 && layer < n_layer_ && recurrent_[size_t(layer)]);
  return state_.data() + slot_[size_t(layer)] * state_floats_;
}

void KvCache::truncate(int64_t n_tokens) {
  if (n_tokens < 0 || n_tokens > length_)
    fail("kv-cache", "cannot keep {} tokens of a cache holding {}", n_tokens, length_);
  if (has_state() && n_tokens > 0 && n_tokens < length_)
    fail("kv-cache", "cannot keep {} of {} tokens: a linear-attention state cannot be rolled back", n_tokens, length_);
  length_ = n_tokens;
  if (ids_.size() > static_cast<size_t>(n_tokens)) ids_.resize(static_cast<size_t>(n_tokens));
}

Dsv4CacheSlot::Dsv4CacheSlot(const Dsv4CacheSlot& o)
    : state(o.state ? std::make_shared<Dsv4Cache>(*o.state) : nullptr) {}

Dsv4CacheSlot& Dsv4CacheSlot::operator=(const Dsv4CacheSlot& o) {
  if (this != &o) state = o.state ? std::make_shared<Dsv4Cache>(*o.state) : nullptr;
  return *this;
}

uint64_t KvCache::bytes_for(int64_t tokens) const {
  if (dsv4_.state)
    return dsv4_.state->kv_bytes() + dsv4_.state->pending_bytes();  // what the sequence's state holds now
  const uint64_t elem = dtype_ == DType::kF32 ? 4 : 2;
  return static_cast<uint64_t>(n_kv_layers_) * static_cast<uint64_t>(tokens) * static_cast<uint64_t>(k_row_ + v_row_) *
             elem +
         static_cast<uint64_t>(state_.size()) * sizeof(float);
}

}  // namespace moe
