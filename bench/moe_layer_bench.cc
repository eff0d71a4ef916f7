// Google Benchmark for MoeLayer::forward in the Qwen3-30B-A3B layer shape (D 2048, F 768, E 128,
// K 8), bf16 weights, T = 1, 16, 512, plus the dense FFN of equal activated parameters; and the layer as a
// Q4_K_M GGUF stores it (BM_MoeLayerQ4KM) beside the read ceiling of the same run.
// Routing is rotated by K experts per iteration over a 1.2 GB weight set so experts are not cache-resident.
// `moe bench layer` is the full benchmark (ceilings, dense baselines, JSON); this one is for quick A/B.
#include <benchmark/benchmark.h>

#include <random>

#include "kernels/ceilings.h"
#include "kernels/quant_blocks.h"
#include "moe/dense_ffn.h"
#include "moe/moe_layer.h"
#include "runtime/thread_pool.h"

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

// The layer as a Q4_K_M GGUF stores it (gate and up Q4_K, down Q6_K), packed at load as the decoder packs
// it: {T, threads}. Four layers' copies of the experts (1.6 GB) are rotated, as a 4-layer model's decode
// step reads them; GB/s of expert bytes read, beside BM_ReadCeiling's of the same run.
struct QuantLayers {
  static constexpr int kCopies = 4;
  std::vector<float> router;
  std::vector<moe::PackedExpertWeights> packed;
  QuantLayers() : router(kE * kD) {
    std::mt19937 rng(2);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    for (auto& x : router) x = normal(rng);
    const auto quantized = [&](moe::DType t, int64_t n, int64_t k) {
      std::vector<float> row(static_cast<size_t>(k));
      const int64_t rb = moe::dtype_row_bytes(t, k);
      std::vector<uint8_t> rows(static_cast<size_t>(n * rb));
      for (int64_t j = 0; j < n; ++j) {
        for (auto& v : row) v = normal(rng);
        moe::quantize_row(t, row.data(), rows.data() + j * rb, k);
      }
      return rows;
    };
    // One expert's bytes, shared by every expert's rows: the packed copies are distinct memory all the same.
    const std::vector<uint8_t> gate = quantized(moe::DType::kQ4_K, kF, kD), up = quantized(moe::DType::kQ4_K, kF, kD),
                               down = quantized(moe::DType::kQ6_K, kD, kF);
    moe::ExpertWeights w;
    w.d_model = kD;
    w.d_ff = kF;
    for (int e = 0; e < kE; ++e)
      w.experts.push_back({{gate.data(), moe::DType::kQ4_K, kD},
                           {up.data(), moe::DType::kQ4_K, kD},
                           {down.data(), moe::DType::kQ6_K, kF}});
    for (int c = 0; c < kCopies; ++c) packed.push_back(moe::pack_expert_weights(w));
  }
  moe::MoeLayerWeights weights(int copy) const {
    moe::MoeLayerWeights w;
    w.router.weight = {router.data(), moe::DType::kF32, kD};
    w.experts = packed[static_cast<size_t>(copy)].weights;
    return w;
  }
};

void BM_MoeLayerQ4KM(benchmark::State& state) {
  const int64_t T = state.range(0);
  moe::set_num_threads(static_cast<int>(state.range(1)));
  static const QuantLayers sets;
  moe::MoeLayerConfig cfg;
  cfg.d_model = kD;
  cfg.router.n_expert = kE;
  cfg.router.top_k = kK;
  cfg.router.norm_topk_prob = true;
  std::vector<moe::MoeLayer> layers;
  for (int c = 0; c < QuantLayers::kCopies; ++c) layers.emplace_back(cfg, sets.weights(c));
  std::vector<float> x(T * kD), out(T * kD);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& v : x) v = normal(rng);
  std::vector<int32_t> ids(T * kK);
  int64_t call = 0, bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (int64_t t = 0; t < T; ++t) {
      for (int k = 0; k < kK; ++k) ids[t * kK + k] = static_cast<int32_t>((call / 4 * kK + t * 37 + k) % kE);
    }
    state.ResumeTiming();
    moe::RunOptions ro;
    ro.expert_ids = ids.data();
    moe::MoeTelemetry tel;
    layers[static_cast<size_t>(call++ % QuantLayers::kCopies)].forward(x.data(), T, out.data(), ro, &tel);
    bytes += tel.expert_bytes_streamed;
  }
  state.counters["GB/s"] = benchmark::Counter(double(bytes) * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MoeLayerQ4KM)
    ->Args({1, 1})
    ->Args({1, 2})
    ->Args({4, 2})
    ->Args({16, 2})
    ->Args({512, 2})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

void BM_ReadCeiling(benchmark::State& state) {
  moe::set_num_threads(static_cast<int>(state.range(0)));
  moe::ReadProbe probe;
  double gbps = 0;
  for (auto _ : state) gbps = probe.gbps();
  state.counters["GB/s"] = gbps;
}
BENCHMARK(BM_ReadCeiling)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
