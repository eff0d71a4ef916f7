// Finite-difference gradient checks in double, shared by the training tests: central differences
// on sampled elements against the analytic gradient, and the whole-model check that perturbs every
// parameter tensor of a TrainModel<double> in turn.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "train/model.h"
#include "train/rng.h"

namespace moe::train::testing {

inline std::vector<double> randn(int64_t n, uint64_t seed, double scale = 1.0) {
  Rng r(seed);
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) x = scale * r.normal();
  return v;
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Central differences on every `stride`-th element of x against the analytic gradient.
inline void expect_grad(std::vector<double>& x, const std::vector<double>& grad, const std::function<double()>& loss,
                        const std::string& what, int64_t stride = 1, double tol = 1e-6) {
  ASSERT_EQ(x.size(), grad.size());
  double gmax = 1e-12;
  for (double g : grad) gmax = std::max(gmax, std::abs(g));
  const double h = 1e-6;
  for (size_t i = 0; i < x.size(); i += stride) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double lp = loss();
    x[i] = x0 - h;
    const double lm = loss();
    x[i] = x0;
    ASSERT_NEAR((lp - lm) / (2 * h), grad[i], tol * gmax + 1e-9) << what << " element " << i;
  }
}

// Every parameter tensor of m (about 17 elements each) on random tokens [2, 5]: the total loss's
// gradient from backward() against central differences. The weights are moved away from the fresh
// initialization (norm weights of one) by `noise_seed` first; router_bias is left as the caller set it.
inline void expect_whole_model_grads(TrainModel<double>& m, uint64_t noise_seed = 5) {
  Rng r(noise_seed);
  for (auto& w : m.params) w += 0.3 * r.normal();
  const int64_t B = 2, S = 5;
  std::vector<int32_t> tok(B * S), tgt(B * S);
  for (auto& t : tok) t = static_cast<int32_t>(r.below(m.config().vocab));
  for (auto& t : tgt) t = static_cast<int32_t>(r.below(m.config().vocab));
  m.forward(tok.data(), tgt.data(), B, S);
  m.zero_grad();
  m.backward();
  const std::vector<double> grad = m.grads;
  auto loss = [&] { return m.forward(tok.data(), tgt.data(), B, S).total; };
  for (const auto& t : m.layout().tensors) {
    std::vector<double> x(m.params.begin() + t.offset, m.params.begin() + t.offset + t.numel);
    std::vector<double> g(grad.begin() + t.offset, grad.begin() + t.offset + t.numel);
    auto tensor_loss = [&] {
      std::copy(x.begin(), x.end(), m.params.begin() + t.offset);
      return loss();
    };
    expect_grad(x, g, tensor_loss, t.name, std::max<int64_t>(1, t.numel / 17), 1e-5);
    std::copy(x.begin(), x.end(), m.params.begin() + t.offset);
  }
}

}  // namespace moe::train::testing
