// n standard-normal floats from a fixed seed, for kernel tests that compare two implementations.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace moe::test {

inline std::vector<float> random_normal_floats(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace moe::test
