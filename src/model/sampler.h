// Next-token choice from a row of logits: greedy (temperature 0), or sampling at a temperature
// after top-k and top-p (nucleus) filtering, from a seeded generator whose draws are defined
// here (mt19937_64, 53-bit uniforms), so a seed gives the same tokens on every platform.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace moe {

struct SamplerOptions {
  float temperature = 0.0f;  // 0: greedy
  int64_t top_k = 0;         // 0: no limit
  float top_p = 1.0f;        // keep the smallest set of most likely tokens whose mass reaches top_p
  uint64_t seed = 0;
};

// Index of the largest logit; the lowest index wins ties. n > 0.
int32_t argmax(const float* logits, int64_t n);

class Sampler {
 public:
  // Throws moe::Error "[sampler] ..." on temperature < 0, top_k < 0, top_p outside (0, 1].
  explicit Sampler(const SamplerOptions& options);
  // logits [n]; NaN logits are an error (moe::Error).
  int32_t sample(const float* logits, int64_t n);
  const SamplerOptions& options() const { return options_; }

 private:
  double uniform();  // [0, 1)
  SamplerOptions options_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;
  std::vector<double> probs_;
};

}  // namespace moe
