#include "model/logit_compare.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "util/error.h"

namespace moe {
namespace {

// log-softmax of one row in double.
void log_softmax(const float* x, int64_t n, std::vector<double>& out) {
  out.resize(static_cast<size_t>(n));
  double mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, double(x[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = double(x[i]) - lse;
}

}  // namespace

LogitComparison compare_logits(std::span<const float> reference, std::span<const float> ours, int64_t vocab) {
  if (vocab <= 0 || reference.size() != ours.size() || reference.size() % static_cast<size_t>(vocab) != 0) {
    fail("eval", "the reference logits hold {} values and these {}; expected the same [T, {}]", reference.size(),
         ours.size(), vocab);
  }
  for (size_t i = 0; i < reference.size(); ++i) {
    if (!std::isfinite(reference[i]) || !std::isfinite(ours[i])) {
      fail("eval", "non-finite logit at position {}, token {}", i / static_cast<size_t>(vocab),
           i % static_cast<size_t>(vocab));
    }
  }
  LogitComparison c;
  c.positions = static_cast<int64_t>(reference.size()) / vocab;
  std::vector<double> lp, lq, kls;
  double dp2 = 0.0;
  int64_t agree = 0;
  for (int64_t t = 0; t < c.positions; ++t) {
    const float* r = reference.data() + t * vocab;
    const float* o = ours.data() + t * vocab;
    log_softmax(r, vocab, lp);
    log_softmax(o, vocab, lq);
    double kl = 0.0;
    for (int64_t i = 0; i < vocab; ++i) {
      const double p = std::exp(lp[i]), q = std::exp(lq[i]);
      kl += p * (lp[i] - lq[i]);
      dp2 += (q - p) * (q - p);
    }
    kls.push_back(std::max(kl, 0.0));
    agree += std::max_element(r, r + vocab) - r == std::max_element(o, o + vocab) - o;
  }
  if (c.positions > 0) {
    double sum = 0.0;
    for (double k : kls) sum += k;
    c.mean_kl = sum / double(c.positions);
    c.max_kl = *std::max_element(kls.begin(), kls.end());
    std::nth_element(kls.begin(), kls.begin() + static_cast<long>(kls.size() / 2), kls.end());
    c.median_kl = kls[kls.size() / 2];
    c.top1_agreement = double(agree) / double(c.positions);
    c.rms_dp = std::sqrt(dp2 / double(c.positions * vocab));
  }
  return c;
}

}  // namespace moe
