// Google Benchmark for MoeLayer::forward in the Qwen3-30B-A3B layer shape (D 2048, F 768, E 128,
// K 8), bf16 weights, T = 1, 16, 512, plus the dense FFN of equal activated parameters.
// Routing is rotated by K experts per iteration over a 1.2 GB weight set so experts are not cache-resident.
// `moe bench layer` is the full benchmark (ceilings, dense baselines, JSON); this one is for quick A/B.
#include <benchmark/benchmark.h>

#include <random>

#include "moe/dense_ffn.h"
#include "moe/moe_layer.h"

namespace {

constexpr int64_t kD = 2048, kF = 768;
constexpr int kE = 128, kK = 8;

struct Setup {
  std::vector<uint16_t> gate, up, down;  // [E, F, D], [E, F, D], [E, D, F] bf16
  std::vector<float> router;             // [E, D]
  Setup() : gate(kE * kF * kD), up(kE * kF * kD), down(kE * kD * kF), router(kE * kD) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-0.05f, 0.05f);
    for (auto* v : {&gate, &up, &down}) {
      for (auto& x : *v) x = moe::f32_to_bf16(u(rng));
    }
    for (auto& x : router) x = u(rng);
  }
  moe::MoeLayerWeights weights() const {
    moe::MoeLayerWeights w;
    w.router.weight = {router.data(), moe::DType::kF32, kD};
    w.experts = moe::ExpertWeights::stacked(kE, kD, kF, moe::DType::kBF16, gate.data(), up.data(), down.data());
    return w;
  }
};

const Setup& setup() {
  static const Setup s;
  return s;
}

void BM_MoeLayer(benchmark::State& state) {
  const int64_t T = state.range(0);
  moe::MoeLayerConfig cfg;
  cfg.d_model = kD;
  cfg.router.n_expert = kE;
  cfg.router.top_k = kK;
  cfg.router.norm_topk_prob = true;
  moe::MoeLayer layer(cfg, setup().weights());
  std::vector<float> x(T * kD, 0.01f), out(T * kD);
  std::vector<int32_t> ids(T * kK);
  int64_t call = 0, bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (int64_t t = 0; t < T; ++t) {
      for (int k = 0; k < kK; ++k) ids[t * kK + k] = static_cast<int32_t>((call * kK + t * 37 + k) % kE);
    }
    ++call;
    state.ResumeTiming();
    moe::RunOptions ro;
    ro.expert_ids = ids.data();
    moe::MoeTelemetry tel;
    layer.forward(x.data(), T, out.data(), ro, &tel);
    bytes += tel.expert_bytes_streamed;
  }
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_MoeLayer)->Arg(1)->Arg(16)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_DenseActivated(benchmark::State& state) {
  const int64_t T = state.range(0);
  const moe::MoeLayerWeights w = setup().weights();
  std::vector<float> x(T * kD, 0.01f), out(T * kD), h;
  int64_t call = 0;
  for (auto _ : state) {
    moe::ExpertWeights chunks;
    chunks.d_model = kD;
    chunks.d_ff = kF;
    for (int k = 0; k < kK; ++k) chunks.experts.push_back(w.experts.experts[(call * kK + k) % kE]);
    ++call;
    moe::dense_ffn_forward(chunks, {}, x.data(), T, out.data(), {}, &h);
  }
  state.SetBytesProcessed(state.iterations() * kK * 3 * kD * kF * 2);
}
BENCHMARK(BM_DenseActivated)->Arg(1)->Arg(16)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
