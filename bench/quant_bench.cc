// Google Benchmark for the quantized matmul (kernels/quant_matmul.h) at MoE expert shapes (Qwen3-30B-A3B:
// gate/up 768x2048, down 2048x768; gpt-oss-20b: 5760x2880): decode (m = 1, weights streamed from memory,
// rotating over >= 384 MiB of packed copies; 1 and 2 threads split by 16-row groups) as GB/s of weight
// bytes beside the read ceiling of the same run, and prefill (m = 32, 512: one expert's rows in a 512-token
// layer, and a dense 512-token projection; m = 2..16: a batched decode step's rows; an LM head at m = 16) as
// GFLOP/s beside the bf16 panel kernel on the same shape.
// Run: build/bin/quant_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only
#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <random>
#include <vector>

#include "kernels/ceilings.h"
#include "kernels/matmul.h"
#include "kernels/packed_weights.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_matmul.h"
#include "runtime/aligned.h"
#include "runtime/cpu_features.h"
#include "runtime/thread_pool.h"

namespace {

using moe::DType;

constexpr size_t kRotationBytes = size_t(384) << 20;
const DType kTypes[] = {DType::kQ4_0, DType::kQ8_0,  DType::kQ4_K,  DType::kQ5_K,
                        DType::kQ6_K, DType::kMXFP4, DType::kIQ4_XS};

struct QuantSets {
  std::vector<moe::AlignedBuffer<uint8_t>> panels;
  std::vector<moe::WeightView> views;
  DType dtype;
  int64_t n, k;
  size_t next = 0;
  QuantSets(DType t, int64_t n_, int64_t k_, bool rotate) : dtype(t), n(n_), k(k_) {
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::vector<float> row(static_cast<size_t>(k));
    const int64_t rb = moe::dtype_row_bytes(t, k);
    std::vector<uint8_t> rows(size_t(n * rb));
    for (int64_t j = 0; j < n; ++j) {
      for (auto& v : row) v = normal(rng);
      moe::quantize_row(t, row.data(), rows.data() + j * rb, k);
    }
    const size_t copies = rotate ? std::max<size_t>(1, kRotationBytes / rows.size() + 1) : 1;
    for (size_t c = 0; c < copies; ++c) {
      panels.emplace_back(moe::quant_panel_bytes(t, n, k));
      views.push_back(
          moe::pack_quant_panels({rows.data(), t, k, moe::WeightLayout::kRows}, n, k, panels.back().data()));
    }
  }
  moe::WeightView take() { return views[next++ % views.size()]; }
  size_t bytes() const { return moe::quant_panel_bytes(dtype, n, k); }
};

QuantSets& cached(DType t, int64_t n, int64_t k, bool rotate) {
  static std::unique_ptr<QuantSets> cache;
  static bool cached_rotate = false;
  if (!cache || cache->dtype != t || cache->n != n || cache->k != k || cached_rotate != rotate) {
    cache.reset();
    cache = std::make_unique<QuantSets>(t, n, k, rotate);
    cached_rotate = rotate;
  }
  return *cache;
}

std::vector<uint8_t> quantized_acts(DType t, int64_t m, int64_t k) {
  std::vector<float> x(size_t(m * k));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 61) - 30) * 0.03f;
  std::vector<uint8_t> q(size_t(m * moe::q8_row_bytes(k)));
  moe::quantize_rows_q8(moe::act_format(t), x.data(), k, m, k, q.data());
  return q;
}

// Columns split across the pool in 16-row groups (as the decoder's linear layers split them).
void run_split(const moe::Q8Rows& a, const moe::WeightView& w, float* c, int64_t m, int64_t n, int64_t k) {
  const int64_t groups = (n + 15) / 16;
  moe::thread_pool().parallel_for(groups, [&](int64_t g0, int64_t g1, int) {
    const int64_t c0 = g0 * 16, c1 = std::min(n, g1 * 16);
    moe::matmul_q8(a, moe::weight_rows(w, c0), c + c0, n, {m, c1 - c0, k}, false);
  });
}

// {type, n, k, threads, m}: decode (m 1) or the few rows a batched decode step gives one matrix (m 2-8:
// experts several of the batch's tokens chose), the weights streamed from memory (rotated copies): GB/s of
// weights.
void BM_QuantDecode(benchmark::State& state) {
  const auto t = static_cast<DType>(state.range(0));
  const int64_t n = state.range(1), k = state.range(2), m = state.range(4);
  moe::set_num_threads(int(state.range(3)));
  QuantSets& w = cached(t, n, k, true);
  const std::vector<uint8_t> qa = quantized_acts(t, m, k);
  std::vector<float> c(static_cast<size_t>(m * n));
  const moe::Q8Rows a{qa.data(), moe::q8_row_bytes(k), nullptr, nullptr, moe::act_format(t)};
  for (auto _ : state) {
    run_split(a, w.take(), c.data(), m, n, k);
    benchmark::DoNotOptimize(c.data());
  }
  state.SetLabel(std::string(moe::dtype_name(t)));
  state.counters["GB/s"] =
      benchmark::Counter(double(state.iterations()) * double(w.bytes()) * 1e-9, benchmark::Counter::kIsRate);
}

void BM_QuantPrefill(benchmark::State& state) {
  const auto t = static_cast<DType>(state.range(0));
  const int64_t n = state.range(1), k = state.range(2), m = state.range(3);
  const int threads = int(state.range(4));
  moe::set_num_threads(threads);
  QuantSets& w = cached(t, n, k, false);
  const std::vector<uint8_t> qa = quantized_acts(t, m, k);
  std::vector<float> c(size_t(m * n));
  const moe::Q8Rows a{qa.data(), moe::q8_row_bytes(k), nullptr, nullptr, moe::act_format(t)};
  for (auto _ : state) {
    if (threads == 1) {
      moe::matmul_q8(a, w.views[0], c.data(), n, {m, n, k}, false);
    } else {
      run_split(a, w.views[0], c.data(), m, n, k);
    }
    benchmark::DoNotOptimize(c.data());
  }
  state.SetLabel(std::string(moe::dtype_name(t)));
  state.counters["GFLOP/s"] =
      benchmark::Counter(double(state.iterations()) * 2.0 * double(m * n * k) * 1e-9, benchmark::Counter::kIsRate);
}

// The same prefill shape on bf16 panels (the baseline: our bf16 path).
void BM_Bf16PanelsPrefill(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  moe::set_num_threads(1);
  std::vector<uint16_t> rows(size_t(n * k));
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = moe::f32_to_bf16(float(int(i % 41) - 20) * 1e-3f);
  moe::AlignedBuffer<uint8_t> panels(moe::panel_bytes(DType::kBF16, n, k));
  const moe::WeightView w = moe::pack_panels({rows.data(), DType::kBF16, k}, n, k, panels.data());
  std::vector<float> x(size_t(m * k), 0.5f), c(size_t(m * n));
  for (auto _ : state) {
    moe::matmul_nt(x.data(), k, w, c.data(), n, {m, n, k}, false);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(double(state.iterations()) * 2.0 * double(m * n * k) * 1e-9, benchmark::Counter::kIsRate);
}

// FP8 block-scaled weights (F8_E4M3_B128 rows, f32 activations): decode streams them with rotation over
// 384 MiB (out of cache, as in a model), prefill converts slices and runs the f32 GEMM.
struct Fp8Sets {
  std::vector<std::vector<uint8_t>> rows;
  int64_t n, k;
  size_t next = 0;
  Fp8Sets(int64_t n_, int64_t k_, bool rotate) : n(n_), k(k_) {
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::vector<float> row(static_cast<size_t>(k));
    const int64_t rb = moe::dtype_row_bytes(DType::kF8E4M3_B128, k);
    std::vector<uint8_t> r(size_t(n * rb));
    for (int64_t j = 0; j < n; ++j) {
      for (auto& v : row) v = normal(rng);
      moe::quantize_row(DType::kF8E4M3_B128, row.data(), r.data() + j * rb, k);
    }
    const size_t copies = rotate ? std::max<size_t>(1, kRotationBytes / r.size() + 1) : 1;
    for (size_t c = 0; c < copies; ++c) rows.push_back(r);
  }
  moe::WeightView take() { return {rows[next++ % rows.size()].data(), DType::kF8E4M3_B128, k}; }
};

void BM_Fp8Decode(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1);
  moe::set_num_threads(int(state.range(2)));
  static std::unique_ptr<Fp8Sets> sets;
  if (!sets || sets->n != n || sets->k != k) sets = std::make_unique<Fp8Sets>(n, k, true);
  std::vector<float> x(static_cast<size_t>(k), 0.25f), c(static_cast<size_t>(n));
  for (auto _ : state) {
    const moe::WeightView w = sets->take();
    const int64_t groups = (n + 15) / 16;
    moe::thread_pool().parallel_for(groups, [&](int64_t g0, int64_t g1, int) {
      const int64_t c0 = g0 * 16, c1 = std::min(n, g1 * 16);
      moe::matmul_nt(x.data(), k, moe::weight_rows(w, c0), c.data() + c0, n, {1, c1 - c0, k}, false);
    });
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GB/s"] =
      benchmark::Counter(double(state.iterations()) * double(moe::dtype_row_bytes(DType::kF8E4M3_B128, k) * n) * 1e-9,
                         benchmark::Counter::kIsRate);
}

void BM_Fp8Prefill(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  moe::set_num_threads(1);
  Fp8Sets w(n, k, false);
  std::vector<float> x(size_t(m * k), 0.5f), c(size_t(m * n));
  for (auto _ : state) {
    moe::matmul_nt(x.data(), k, w.take(), c.data(), n, {m, n, k}, false);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(double(state.iterations()) * 2.0 * double(m * n * k) * 1e-9, benchmark::Counter::kIsRate);
}

void BM_ReadCeiling(benchmark::State& state) {
  moe::set_num_threads(int(state.range(0)));
  moe::ReadProbe probe;
  double gbps = 0;
  for (auto _ : state) gbps = probe.gbps();
  state.counters["GB/s"] = gbps;
}

void decode_args(benchmark::internal::Benchmark* b) {
  for (DType t : kTypes) {
    for (int threads : {1, 2}) {
      b->Args({int64_t(t), 768, 2048, threads, 1});
      b->Args({int64_t(t), 2048, 768, threads, 1});
    }
  }
  for (DType t : {DType::kQ8_0, DType::kQ6_K})
    for (int threads : {1, 2}) b->Args({int64_t(t), 151936, 2048, threads, 1});
  for (DType t : {DType::kQ8_0, DType::kQ4_0, DType::kMXFP4, DType::kQ4_K, DType::kQ6_K})
    for (int64_t m : {2, 3, 4, 5, 6, 8}) b->Args({int64_t(t), 768, 2048, 1, m});
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

// {type, n, k, m, threads}: an expert's rows of a 512-token prefill (m 32) and a dense 512-token projection
// on 1 and 2 threads; the rows a batched decode step gives one weight matrix (m 4, 8, 16: attention
// projections, experts seeing several of the batch's tokens); and an LM head (n 151936, Qwen3's vocab) at
// m 8 and 16 for the types a Q8_0 / Q4_K_M model stores it in; and m 1, 8, 16, 32 on 256 x 2048 (in L2):
// the kernels' rate when memory is not the limit (2048 x 2048, 4.4 MB at Q8_0, spills a 2 MB L2 into a
// last-level cache that may read no faster than memory). Weights stay cached (not rotated): GFLOP/s of the
// kernel, not of memory.
void prefill_args(benchmark::internal::Benchmark* b) {
  for (DType t : kTypes) {
    b->Args({int64_t(t), 768, 2048, 32, 1});
    b->Args({int64_t(t), 2048, 2048, 512, 1});
    b->Args({int64_t(t), 2048, 2048, 512, 2});
    for (int64_t m : {2, 3, 4, 8, 16, 32, 64}) b->Args({int64_t(t), 2048, 2048, m, 1});
    for (int64_t m : {1, 8, 16, 32}) b->Args({int64_t(t), 256, 2048, m, 1});
    b->Args({int64_t(t), 2048, 2048, 16, 2});
  }
  for (DType t : {DType::kQ8_0, DType::kQ6_K})
    for (int64_t m : {8, 16, 32}) b->Args({int64_t(t), 151936, 2048, m, 2});
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

}  // namespace

// Re-laying one expert matrix (768 x 2048) from the file's rows into panels on one thread, as the expert
// cache does for every expert it reads from disk (--mem-budget): GB/s of row bytes, to compare with the
// disk's read rate (1.4-2.7 GB/s on these machines) it must keep up with.
void BM_QuantPack(benchmark::State& state) {
  const auto t = static_cast<DType>(state.range(0));
  const int64_t n = 768, k = 2048;
  moe::set_num_threads(1);
  const int64_t rb = moe::dtype_row_bytes(t, k);
  std::vector<uint8_t> rows(size_t(n * rb));
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t j = 0; j < n; ++j) {
    for (auto& v : row) v = normal(rng);
    moe::quantize_row(t, row.data(), rows.data() + j * rb, k);
  }
  moe::AlignedBuffer<uint8_t> out(moe::quant_panel_bytes(t, n, k));
  for (auto _ : state) {
    moe::pack_quant_panels({rows.data(), t, k, moe::WeightLayout::kRows}, n, k, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(std::string(moe::dtype_name(t)));
  state.counters["GB/s"] =
      benchmark::Counter(double(state.iterations()) * double(rows.size()) * 1e-9, benchmark::Counter::kIsRate);
}

BENCHMARK(BM_QuantPack)
    ->Apply([](benchmark::internal::Benchmark* b) {
      for (DType t : kTypes) b->Arg(static_cast<int64_t>(t));
    })
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ReadCeiling)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_QuantDecode)->Apply(decode_args);
BENCHMARK(BM_QuantPrefill)->Apply(prefill_args);
BENCHMARK(BM_Fp8Decode)
    ->Args({768, 2048, 1})
    ->Args({768, 2048, 2})
    ->Args({2048, 768, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Fp8Prefill)->Args({768, 2048, 32})->Args({2048, 2048, 512})->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Bf16PanelsPrefill)
    ->Args({768, 2048, 32})
    ->Args({2048, 2048, 512})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
