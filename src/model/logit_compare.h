// How far one model's next-token distributions are from a reference's over the same tokens (what
// quantization costs): mean and worst KL(P_ref || P), the share of positions whose most likely token is
// the same, and the RMS of the probability differences. llama.cpp's perplexity tool reports the same
// (--kl-divergence); `moe eval --kl-base FILE` computes it against a saved --logits-out of the reference.
#pragma once

#include <cstdint>
#include <span>

namespace moe {

struct LogitComparison {
  int64_t positions = 0;
  double mean_kl = 0.0, max_kl = 0.0, median_kl = 0.0;  // nats
  double top1_agreement = 0.0;                          // fraction of positions with the same argmax
  double rms_dp = 0.0;                                  // RMS over positions and tokens of p - p_ref
};

// reference and ours are [T, V] logits (row-major). Throws moe::Error "[eval]" on a size mismatch or a
// non-finite logit.
LogitComparison compare_logits(std::span<const float> reference, std::span<const float> ours, int64_t vocab);

}  // namespace moe
