// Cost of one next-token choice over a real vocabulary (Qwen3's 151936 logits), per sampling
// setting: greedy, temperature alone, top-k, top-p and min-p, on a peaked row (what a trained model
// gives at temperature <= 1) and a flat one (random weights, or a high temperature).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "model/sampler.h"

namespace {

constexpr int64_t kVocab = 151936;

// Logits ~ N(0, sd^2) plus, when peaked, 16 tokens 14 above the rest (a confident model: a handful of
// tokens hold most of the mass); flat: sd 0.1, every token about as likely (random weights, or a
// high temperature), the worst case for top-p.
std::vector<float> logits_row(bool peaked) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, peaked ? 1.0f : 0.1f);
  std::vector<float> row(kVocab);
  for (float& x : row) x = normal(rng);
  for (int i = 0; peaked && i < 16; ++i) row[(i * 7919 + 13) % kVocab] += 14.0f;
  return row;
}

void run(benchmark::State& state, moe::SamplerOptions options, bool peaked) {
  const std::vector<float> row = logits_row(peaked);
  moe::Sampler sampler(options);
  for (auto _ : state) benchmark::DoNotOptimize(sampler.sample(row.data(), kVocab));
  state.SetItemsProcessed(state.iterations());
}

void BM_Sample(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  moe::SamplerOptions o;
  o.seed = 1;
  const char* names[] = {"greedy", "temp1", "top_k40", "top_p0.95", "min_p0.05"};
  if (which >= 1) o.temperature = 1.0f;
  if (which == 2) o.top_k = 40;
  if (which == 3) o.top_p = 0.95f;
  if (which == 4) o.min_p = 0.05f;
  state.SetLabel(std::string(names[which]) + (state.range(1) ? " peaked" : " flat"));
  run(state, o, state.range(1) != 0);
}
BENCHMARK(BM_Sample)->ArgsProduct({{0, 1, 2, 3, 4}, {1, 0}})->Unit(benchmark::kMicrosecond);

// --logprobs / the OpenAI logprobs field: log softmax of the chosen token and the top 5.
void BM_Logprobs(benchmark::State& state) {
  const std::vector<float> row = logits_row(true);
  for (auto _ : state) benchmark::DoNotOptimize(moe::logprobs_of(row.data(), kVocab, 17, state.range(0)));
}
BENCHMARK(BM_Logprobs)->Arg(0)->Arg(5)->Arg(20)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
