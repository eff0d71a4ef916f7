// AdamW, schedule and clipping (see optimizer.h). The update is elementwise, split across
// thread_pool() statically, so it is deterministic.
#include "train/optimizer.h"

#include <cmath>

#include "kernels/vmath.h"
#include "train/linalg.h"

namespace moe::train {

double learning_rate(const AdamWOptions& o, int64_t step) {
  if (o.warmup_steps > 0 && step < o.warmup_steps) return o.lr * static_cast<double>(step + 1) / o.warmup_steps;
  if (o.total_steps <= o.warmup_steps) return o.lr;
  const double progress =
      std::min(1.0, static_cast<double>(step - o.warmup_steps) / static_cast<double>(o.total_steps - o.warmup_steps));
  const double floor = o.lr * o.min_lr_ratio;
  return floor + 0.5 * (1.0 + std::cos(M_PI * progress)) * (o.lr - floor);
}

double grad_norm(const std::vector<float>& grads) {
  // 8 interleaved partial sums (a fixed order, so the same bits every run) let the loop vectorize.
  double part[8] = {};
  const size_t n = grads.size(), n8 = n / 8 * 8;
  const float* g = grads.data();
  for (size_t i = 0; i < n8; i += 8)
    for (size_t j = 0; j < 8; ++j) part[j] += static_cast<double>(g[i + j]) * g[i + j];
  for (size_t i = n8; i < n; ++i) part[0] += static_cast<double>(g[i]) * g[i];
  double ss = 0;
  for (double p : part) ss += p;
  return std::sqrt(ss);
}

float clip_coefficient(double norm, double max_norm) {
  if (max_norm <= 0) return 1.0f;
  const double coef = max_norm / (norm + 1e-6);
  return coef < 1.0 ? static_cast<float>(coef) : 1.0f;
}

double clip_grad_norm(std::vector<float>& grads, double max_norm) {
  const double norm = grad_norm(grads);
  const float cf = clip_coefficient(norm, max_norm);
  if (cf != 1.0f)
    for (float& x : grads) x *= cf;
  return norm;
}

void AdamW::update(std::vector<float>& params, const std::vector<float>& grads, const ParamLayout& layout,
                   const AdamWOptions& o, double lr, float grad_scale) {
  ++step;
  const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(step));
  const float b1 = static_cast<float>(o.beta1), b2 = static_cast<float>(o.beta2);
  const float step_size = static_cast<float>(lr / bc1), bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float eps = static_cast<float>(o.eps);
  for (const auto& t : layout.tensors) {
    const float decay = t.decay ? static_cast<float>(1.0 - lr * o.weight_decay) : 1.0f;
    const AdamWStep st{decay, b1, b2, step_size, bc2_sqrt, eps, grad_scale};
    parallel_items(t.numel, 16, [&](int64_t b, int64_t e) {
      adamw_f32(st, params.data() + t.offset + b, m.data() + t.offset + b, v.data() + t.offset + b,
                grads.data() + t.offset + b, e - b);
    });
  }
}

}  // namespace moe::train
