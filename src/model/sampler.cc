// Greedy and top-k / top-p / temperature sampling (see sampler.h).
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

Sampler::Sampler(const SamplerOptions& o) : options_(o), rng_(o.seed) {
  if (!(o.temperature >= 0.0f)) fail("sampler", "temperature must be >= 0, found {}", o.temperature);
  if (o.top_k < 0) fail("sampler", "top-k must be >= 0, found {}", o.top_k);
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) fail("sampler", "top-p must be in (0, 1], found {}", o.top_p);
}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::sample(const float* logits, int64_t n) {
  MOE_CHECK(n > 0);
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(logits[i])) fail("sampler", "logit {} of {} is NaN", i, n);
  }
  if (options_.temperature == 0.0f) return argmax(logits, n);
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
  double kept = 0.0;
  for (int64_t i = 0; i < keep; ++i) kept += probs_[i];
  const double u = uniform() * kept;
  double acc = 0.0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += probs_[i];
    if (u < acc) return order_[i];
  }
  return order_[keep - 1];
}

}  // namespace moe
