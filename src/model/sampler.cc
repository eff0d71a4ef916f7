// Penalties, greedy and temperature / top-k / top-p / min-p sampling, logprobs (see sampler.h).
#include "model/sampler.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <numeric>

#include "kernels/vmath.h"
#include "util/check.h"
#include "util/error.h"

namespace moe {

int32_t argmax(const float* logits, int64_t n) {
  MOE_CHECK(n > 0);
  const float mx = max_f32(logits, n);
  const float* at = std::find(logits, logits + n, mx);
  return static_cast<int32_t>(at == logits + n ? 0 : at - logits);  // no element equals the max: all NaN
}

TokenLogprobs logprobs_of(const float* logits, int64_t n, int32_t token, int64_t top_n) {
  MOE_CHECK(n > 0 && token >= 0 && token < n);
  // log Z = max + log sum exp(l - max): float exponentials (vmath), summed in double 4096 at a time.
  const float mx = max_f32(logits, n);
  thread_local std::vector<float> e;
  e.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) e[i] = logits[i] - mx;
  exp_f32(e.data(), e.data(), n);
  double sum = 0.0;
  for (int64_t i = 0; i < n; i += 4096) sum += sum_f32(e.data() + i, std::min<int64_t>(4096, n - i));
  const double log_z = double(mx) + std::log(sum);
  TokenLogprobs r;
  r.chosen = {token, double(logits[token]) - log_z};
  top_n = std::clamp<int64_t>(top_n, 0, n);
  if (top_n == 0) return r;
  thread_local std::vector<int32_t> order;
  thread_local std::vector<uint32_t> scratch;
  order.resize(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  rank_tokens(logits, order, top_n, scratch);
  for (int64_t i = 0; i < top_n; ++i) r.top.push_back({order[i], double(logits[order[i]]) - log_z});
  return r;
}

Sampler::Sampler(const SamplerOptions& o) : options_(o), rng_(o.seed) {
  if (!(o.temperature >= 0.0f)) fail("sampler", "temperature must be >= 0, found {}", o.temperature);
  if (o.top_k < 0) fail("sampler", "top-k must be >= 0, found {}", o.top_k);
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) fail("sampler", "top-p must be in (0, 1], found {}", o.top_p);
  if (!(o.min_p >= 0.0f && o.min_p <= 1.0f)) fail("sampler", "min-p must be in [0, 1], found {}", o.min_p);
  if (!(o.repetition_penalty > 0.0f && std::isfinite(o.repetition_penalty)))
    fail("sampler", "repetition penalty must be a finite number > 0 (1 = off), found {}", o.repetition_penalty);
  if (!std::isfinite(o.presence_penalty) || !std::isfinite(o.frequency_penalty))
    fail("sampler", "presence and frequency penalties must be finite, found {} and {}", o.presence_penalty,
         o.frequency_penalty);
}

void Sampler::add_context(std::span<const int32_t> tokens) {
  for (int32_t t : tokens) context_[t] = true;
}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

const float* Sampler::penalized(const float* logits, int64_t n) {
  const SamplerOptions& o = options_;
  const bool repetition = o.repetition_penalty != 1.0f && !context_.empty();
  const bool openai = (o.presence_penalty != 0.0f || o.frequency_penalty != 0.0f) && !generated_.empty();
  if (!repetition && !openai) return logits;
  work_.assign(logits, logits + n);  // [n]
  if (repetition) {
    for (const auto& [t, seen] : context_) {
      if (t < 0 || t >= n) continue;
      float& l = work_[static_cast<size_t>(t)];
      l = l > 0.0f ? l / o.repetition_penalty : l * o.repetition_penalty;
    }
  }
  if (openai) {
    for (const auto& [t, count] : generated_) {
      if (t < 0 || t >= n) continue;
      work_[static_cast<size_t>(t)] -= o.presence_penalty + o.frequency_penalty * static_cast<float>(count);
    }
  }
  return work_.data();
}

int32_t Sampler::sample(const float* raw, int64_t n) {
  MOE_CHECK(n > 0);
  uint32_t widest = 0;  // the largest |logit| as bits: above infinity's when one is NaN (vectorizes)
  for (int64_t i = 0; i < n; ++i) widest = std::max(widest, std::bit_cast<uint32_t>(raw[i]) & 0x7fffffffu);
  if (widest > 0x7f800000u) {
    const int64_t i = std::find_if(raw, raw + n, [](float x) { return std::isnan(x); }) - raw;
    fail("sampler", "logit {} of {} is NaN", i, n);
  }
  const float* logits = penalized(raw, n);
  const int32_t chosen = options_.temperature == 0.0f ? argmax(logits, n) : draw(logits, n);
  ++generated_[chosen];
  context_[chosen] = true;
  return chosen;
}

// p_i = exp((l_i - mx) / t) for the candidates in order_, into probs_.
void Sampler::weigh(const float* logits, float mx, bool in_id_order) {
  const float inv_t = 1.0f / options_.temperature;
  probs_.resize(order_.size());
  if (in_id_order) {  // order_ is 0, 1, ...: read the row straight (vectorizes)
    for (size_t i = 0; i < order_.size(); ++i) probs_[i] = (logits[i] - mx) * inv_t;
  } else {
    for (size_t i = 0; i < order_.size(); ++i) probs_[i] = (logits[order_[i]] - mx) * inv_t;
  }
  exp_f32(probs_.data(), probs_.data(), static_cast<int64_t>(probs_.size()));
}

int32_t Sampler::draw(const float* logits, int64_t n) {
  const SamplerOptions& o = options_;
  // Candidates: the top-k by decreasing logit (ties: lower id first), else every token in id order
  // (the draw's distribution does not depend on the order; top-p ranks what it needs below).
  order_.resize(static_cast<size_t>(n));
  std::iota(order_.begin(), order_.end(), 0);
  const int64_t k = o.top_k > 0 ? std::min(o.top_k, n) : n;
  bool ranked = k < n;
  if (ranked) rank_tokens(logits, order_, k, rank_keys_);
  // Softmax at the temperature, relative to the most likely token (p = 1).
  const float mx = ranked ? logits[order_[0]] : max_f32(logits, n);
  weigh(logits, mx, !ranked);
  int64_t keep = k;
  if (o.top_p < 1.0f) {  // nucleus: the shortest ranked prefix whose mass reaches top_p (at least one token)
    double sum = 0.0, mass = 0.0;
    for (int64_t i = 0; i < k; ++i) sum += probs_[i];
    const double reach = o.top_p * sum;
    if (!ranked) {
      // {p >= floor} is a prefix of the ranking; the first floor whose set holds the mass holds the
      // nucleus, so only that set is ranked (a peaked row: a few hundred tokens, not the vocabulary).
      for (float floor : {1e-3f, 1e-6f, 0.0f}) {
        double held = 0.0;
        for (int64_t i = 0; i < k; ++i) held += probs_[i] >= floor ? probs_[i] : 0.0f;
        if (held < reach && floor > 0.0f) continue;
        order_.erase(std::remove_if(order_.begin(), order_.end(), [&](int32_t id) { return probs_[id] < floor; }),
                     order_.end());
        break;
      }
      rank_tokens(logits, order_, static_cast<int64_t>(order_.size()), rank_keys_);
      weigh(logits, mx, false);
      ranked = true;
    }
    keep = static_cast<int64_t>(order_.size());
    for (int64_t i = 0; i < keep; ++i) {
      mass += probs_[i];
      if (mass >= reach) {
        keep = i + 1;
        break;
      }
    }
  }
  if (o.min_p > 0.0f) {  // drop what is less likely than min_p times the most likely (p = 1)
    int64_t kept = 0;
    for (int64_t i = 0; i < keep; ++i) {
      if (probs_[i] < o.min_p) continue;
      order_[kept] = order_[i];
      probs_[kept++] = probs_[i];
    }
    keep = kept;
  }
  double total = 0.0;
  for (int64_t i = 0; i < keep; ++i) total += probs_[i];
  const double u = uniform() * total;
  double acc = 0.0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += probs_[i];
    if (u < acc) return order_[i];
  }
  return order_[keep - 1];
}

void rank_tokens(const float* logits, std::vector<int32_t>& order, int64_t k, std::vector<uint32_t>& scratch) {
  const int64_t n = static_cast<int64_t>(order.size());
  MOE_CHECK(n > 0 && k > 0 && k <= n && n <= INT32_MAX);
  if (k * 16 <= n) {  // a few: a heap over the ids
    auto before = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
    std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
  } else {  // many: a stable radix sort of every id by decreasing logit, 11 bits a pass
    scratch.resize(4 * static_cast<size_t>(n));
    uint32_t *key = scratch.data(), *key2 = key + n, *id = key2 + n, *id2 = id + n;
    if (!std::is_sorted(order.begin(), order.end())) std::sort(order.begin(), order.end());  // ties: lower id first
    for (int64_t i = 0; i < n; ++i) {
      const float x = logits[order[i]];
      const uint32_t b = std::bit_cast<uint32_t>(x == 0.0f ? 0.0f : x);  // -0 ranks with +0
      key[i] = (b & 0x80000000u) ? b : (~b & 0x7fffffffu);               // ascending key = descending logit
      id[i] = static_cast<uint32_t>(order[i]);
    }
    for (int shift = 0; shift < 32; shift += 11) {
      std::array<uint32_t, 2049> start{};
      for (int64_t i = 0; i < n; ++i) ++start[((key[i] >> shift) & 2047u) + 1];
      for (size_t b = 0; b < 2048; ++b) start[b + 1] += start[b];
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t at = start[(key[i] >> shift) & 2047u]++;
        key2[at] = key[i];
        id2[at] = id[i];
      }
      std::swap(key, key2);
      std::swap(id, id2);
    }
    for (int64_t i = 0; i < k; ++i) order[i] = static_cast<int32_t>(id[i]);
  }
  order.resize(static_cast<size_t>(k));
}

}  // namespace moe
