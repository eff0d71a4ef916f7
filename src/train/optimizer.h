// AdamW with decoupled weight decay (PyTorch torch.optim.AdamW semantics), f32 master weights,
// the learning-rate schedule (linear warmup, then cosine decay to a floor) and global-norm
// gradient clipping (torch.nn.utils.clip_grad_norm_ semantics).
#pragma once

#include <cstdint>
#include <vector>

#include "train/model_config.h"

namespace moe::train {

struct AdamWOptions {
  double lr = 3e-3;
  double min_lr_ratio = 0.1;  // cosine floor = lr * min_lr_ratio
  int64_t warmup_steps = 0;   // linear warmup: lr * (step + 1) / warmup_steps
  int64_t total_steps = 0;    // the cosine reaches its floor here
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;  // applied to matrices only (ParamTensor::decay)
  double grad_clip = 1.0;     // max global L2 norm; 0 = off
};

// Learning rate for 0-based step `step`.
double learning_rate(const AdamWOptions& o, int64_t step);

// Scales grads so their global L2 norm is at most max_norm (no-op when max_norm <= 0);
// returns the norm before clipping.
double clip_grad_norm(std::vector<float>& grads, double max_norm);

// The parts of clip_grad_norm, for a caller that folds the scaling into the update: the global L2
// norm, and the factor clip_grad_norm would scale by (exactly 1 when it would not clip).
double grad_norm(const std::vector<float>& grads);
float clip_coefficient(double norm, double max_norm);

class AdamW {
 public:
  explicit AdamW(int64_t n_params) : m(n_params, 0.0f), v(n_params, 0.0f) {}
  // One update with learning rate lr on grads * grad_scale (the clipping factor, applied in
  // registers instead of a pass that rewrites the gradients); increments step.
  void update(std::vector<float>& params, const std::vector<float>& grads, const ParamLayout& layout,
              const AdamWOptions& o, double lr, float grad_scale = 1.0f);

  std::vector<float> m, v;  // first and second moments [n_params]
  int64_t step = 0;         // updates done
};

}  // namespace moe::train
