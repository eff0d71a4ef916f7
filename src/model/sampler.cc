// Penalties, greedy and temperature / top-k / top-p / min-p sampling, logprobs (see sampler.h).
#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "util/check.h"
#include "util/error.h"

namespace moe {

int32_t argmax(const float* logits, int64_t n) {
  MOE_CHECK(n > 0);
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

TokenLogprobs logprobs_of(const float* logits, int64_t n, int32_t token, int64_t top_n) {
  MOE_CHECK(n > 0 && token >= 0 && token < n);
  const double mx = *std::max_element(logits, logits + n);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(logits[i]) - mx);
  const double log_z = mx + std::log(sum);
  TokenLogprobs r;
  r.chosen = {token, double(logits[token]) - log_z};
  top_n = std::clamp<int64_t>(top_n, 0, n);
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + top_n, order.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
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
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(raw[i])) fail("sampler", "logit {} of {} is NaN", i, n);
  }
  const float* logits = penalized(raw, n);
  int32_t chosen = 0;
  if (options_.temperature == 0.0f) {
    chosen = argmax(logits, n);
  } else {
    // Candidates by decreasing logit (ties: lower id first), cut to top-k.
    const int64_t k = options_.top_k > 0 ? std::min(options_.top_k, n) : n;
    order_.resize(static_cast<size_t>(n));
    std::iota(order_.begin(), order_.end(), 0);
    auto before = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
    std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), before);
    order_.resize(static_cast<size_t>(k));
    // Softmax at the temperature over the candidates, in double.
    probs_.resize(static_cast<size_t>(k));
    const double mx = logits[order_[0]], inv_t = 1.0 / options_.temperature;
    double sum = 0.0;
    for (int64_t i = 0; i < k; ++i) sum += probs_[i] = std::exp((logits[order_[i]] - mx) * inv_t);
    // Nucleus: the shortest prefix whose mass reaches top_p (at least one token).
    int64_t keep = k;
    if (options_.top_p < 1.0f) {
      double mass = 0.0;
      for (int64_t i = 0; i < k; ++i) {
        mass += probs_[i] / sum;
        if (mass >= options_.top_p) {
          keep = i + 1;
          break;
        }
      }
    }
    // min-p: drop what is less likely than min_p times the most likely (probs_[0]).
    if (options_.min_p > 0.0f) {
      const double floor = probs_[0] * options_.min_p;
      int64_t above = 1;
      while (above < keep && probs_[above] >= floor) ++above;
      keep = above;
    }
    double kept = 0.0;
    for (int64_t i = 0; i < keep; ++i) kept += probs_[i];
    const double u = uniform() * kept;
    double acc = 0.0;
    chosen = order_[keep - 1];
    for (int64_t i = 0; i < keep; ++i) {
      acc += probs_[i];
      if (u < acc) {
        chosen = order_[i];
        break;
      }
    }
  }
  ++generated_[chosen];
  context_[chosen] = true;
  return chosen;
}

}  // namespace moe
