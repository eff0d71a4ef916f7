// Google Benchmark for the NT matmul kernels at MoE expert shapes (Qwen3-30B-A3B: 768x2048 and
// 2048x768; Mixtral-8x7B: 14336x4096), decode (m = 1..8) and prefill (m = 512), f32 / bf16
// weights, 1 thread and 2 threads split by rows of B, with OpenBLAS sgemm and the read-stream
// ceiling in the same run. Decode rotates over weight copies totalling >= 384 MiB, so every
// timed call streams its weights from memory, not from the last-level cache.
// Panel variants (BM_*Panels): the same weights packed once into the kernels' panel layout
// (kernels/packed_weights.h), incl. m = 32 and 128 from memory, the rows per expert of a 512-token
// balanced Qwen3-30B-A3B / Mixtral layer.
// Run: build-kernels/bin/matmul_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only
#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "kernels/ceilings.h"
#include "kernels/matmul.h"
#include "kernels/matmul_internal.h"
#include "kernels/packed_weights.h"
#include "runtime/aligned.h"
#include "runtime/blas.h"
#include "runtime/cpu_features.h"
#include "runtime/thread_pool.h"

namespace {

using moe::DType;
using moe::MatmulShape;
using moe::WeightView;

constexpr size_t kRotationBytes = size_t(384) << 20;

// Weight copies of one [n, k] matrix, enough of them to exceed the last-level cache.
struct WeightSets {
  std::vector<moe::AlignedBuffer<uint16_t>> bf16;
  std::vector<moe::AlignedBuffer<float>> f32;
  std::vector<moe::AlignedBuffer<uint8_t>> packed;  // panels: each copy packed (then the row copies are dropped)
  std::vector<WeightView> packed_views;
  DType dtype;
  int64_t n, k;
  size_t next = 0;

  WeightSets(DType t, int64_t n_, int64_t k_, bool rotate, bool panels = false) : dtype(t), n(n_), k(k_) {
    const size_t bytes = size_t(n * k) * moe::dtype_size(t);
    const size_t copies = rotate ? std::max<size_t>(1, (kRotationBytes + bytes - 1) / bytes) : 1;
    for (size_t c = 0; c < copies; ++c) {
      if (t == DType::kBF16) {
        bf16.emplace_back(size_t(n * k));
        for (size_t i = 0; i < bf16.back().size(); ++i) bf16.back()[i] = moe::f32_to_bf16(float(i % 97) * 1e-3f);
      } else {
        f32.emplace_back(size_t(n * k));
        for (size_t i = 0; i < f32.back().size(); ++i) f32.back()[i] = float(i % 97) * 1e-3f;
      }
      if (!panels) continue;
      const WeightView rows =
          t == DType::kBF16 ? WeightView{bf16.back().data(), t, k} : WeightView{f32.back().data(), t, k};
      packed.emplace_back(moe::panel_bytes(t, n, k));
      packed_views.push_back(moe::pack_panels(rows, n, k, packed.back().data()));
      if (t == DType::kBF16) bf16.back() = {};
      if (t == DType::kF32) f32.back() = {};
    }
  }
  size_t count() const { return dtype == DType::kBF16 ? bf16.size() : f32.size(); }
  WeightView view(size_t c) const {
    if (!packed_views.empty()) return packed_views[c];
    if (dtype == DType::kBF16) return {bf16[c].data(), DType::kBF16, k};
    return {f32[c].data(), DType::kF32, k};
  }
  WeightView take() { return view(next++ % count()); }
  size_t bytes() const { return size_t(n * k) * moe::dtype_size(dtype); }
};

// The last weight sets built, kept across repetitions and benchmarks of the same shape
// (filling hundreds of MiB per run would dominate the benchmark's wall time).
WeightSets& cached_weights(DType t, int64_t n, int64_t k, bool rotate, bool panels = false) {
  static std::unique_ptr<WeightSets> cache;
  static bool cached_rotate = false, cached_panels = false;
  if (!cache || cache->dtype != t || cache->n != n || cache->k != k || cached_rotate != rotate ||
      cached_panels != panels) {
    cache.reset();
    cache = std::make_unique<WeightSets>(t, n, k, rotate, panels);
    cached_rotate = rotate;
    cached_panels = panels;
  }
  return *cache;
}

using Kernel = void (*)(const moe::matmul_detail::MatmulArgs&);

void public_kernel(const moe::matmul_detail::MatmulArgs& g) {
  moe::matmul_nt(g.a, g.lda, g.b, g.c, g.ldc, g.s, g.accumulate);
}

// One matmul over weight rows [j0, j1) of b (all of n for 1 thread).
void run_rows(Kernel kernel, const float* a, int64_t k, const WeightView& b, float* c, int64_t n, int64_t m, int64_t j0,
              int64_t j1) {
  WeightView part = b;
  const size_t esize = moe::dtype_size(b.dtype);
  part.data = static_cast<const char*>(b.data) + size_t(j0 * b.ld) * esize;
  kernel({a, k, part, c + j0, n, MatmulShape{m, j1 - j0, k}, false});
}

// args: m, n, k, dtype (0 f32, 1 bf16), threads (1 or 2), kernel choice.
void bench_matmul(benchmark::State& state, Kernel kernel, bool rotate, bool panels = false) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const DType dtype = state.range(3) ? DType::kBF16 : DType::kF32;
  const int threads = int(state.range(4));
  if (panels && !moe::panel_layout_supported(dtype)) return state.SkipWithError("no panel kernel for this dtype");
  WeightSets& w = cached_weights(dtype, n, k, rotate, panels);
  moe::AlignedBuffer<float> a(size_t(m * k)), c(size_t(m * n));
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(i % 13) * 0.01f;
  moe::ThreadPool pool(threads);
  for (auto _ : state) {
    const WeightView b = w.take();
    if (threads == 1) {
      run_rows(kernel, a.data(), k, b, c.data(), n, m, 0, n);
    } else {
      // Row blocks of 64 keep each thread's share of B contiguous and aligned.
      const int64_t blocks = (n + 63) / 64;
      pool.parallel_for(blocks, [&](int64_t b0, int64_t b1, int) {
        run_rows(kernel, a.data(), k, b, c.data(), n, m, b0 * 64, std::min(n, b1 * 64));
      });
    }
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  const double iters = double(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(iters * double(w.bytes()) * 1e-9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(iters * 2.0 * m * n * k * 1e-9, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(dtype == DType::kBF16 ? "bf16" : "f32") + (rotate ? " rotated" : " resident") +
                 (panels ? " panels" : ""));
}

void BM_Decode(benchmark::State& s) { bench_matmul(s, public_kernel, true); }
void BM_DecodeBf16Dot(benchmark::State& s) {
  if (moe::detected_isa() < moe::Isa::kAvx512Bf16) return s.SkipWithError("no AVX512_BF16");
  bench_matmul(s, moe::matmul_detail::decode_bf16dot_avx512bf16, true);
}
void BM_Prefill(benchmark::State& s) { bench_matmul(s, public_kernel, false); }
void BM_DecodePanels(benchmark::State& s) { bench_matmul(s, public_kernel, true, true); }
void BM_PrefillPanels(benchmark::State& s) { bench_matmul(s, public_kernel, false, true); }
// Rows per expert of a 512-token balanced layer, weights from memory: row layout vs panels.
void BM_ExpertRows(benchmark::State& s) { bench_matmul(s, public_kernel, true); }
void BM_ExpertRowsPanels(benchmark::State& s) { bench_matmul(s, public_kernel, true, true); }
void BM_PrefillF32Gemm(benchmark::State& s) {  // the f32-FMA GEMM on bf16 weights (widened while packing)
  if (moe::detected_isa() < moe::Isa::kAvx512) return s.SkipWithError("no AVX-512");
  bench_matmul(s, moe::matmul_detail::gemm_avx512, false);
}

// OpenBLAS sgemm with B transposed (the same NT problem), f32 weights.
void BM_Sgemm(benchmark::State& state) {
  if (!moe::blas::available()) return state.SkipWithError("OpenBLAS not available");
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const int threads = int(state.range(4));
  WeightSets w(DType::kF32, n, k, m < 16);
  moe::AlignedBuffer<float> a(size_t(m * k)), c(size_t(m * n));
  moe::blas::set_threads(threads);
  for (auto _ : state) {
    const WeightView b = w.take();
    moe::blas::sgemm(true, int(m), int(n), int(k), 1.0f, a.data(), int(k), static_cast<const float*>(b.data), int(k),
                     0.0f, c.data(), int(n));
    benchmark::DoNotOptimize(c.data());
  }
  const double iters = double(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(iters * double(w.bytes()) * 1e-9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(iters * 2.0 * m * n * k * 1e-9, benchmark::Counter::kIsRate);
}

// The read-stream ceiling (same loop as `moe bench ceilings`) on 1 and 2 threads.
void BM_ReadCeiling(benchmark::State& state) {
  const int threads = int(state.range(0));
  moe::AlignedBuffer<float> a(size_t(256) << 20 >> 2);
  moe::ThreadPool pool(threads);
  std::vector<double> sink(threads);
  for (auto _ : state) {
    pool.run([&](int t) {
      const size_t blocks = a.size() / 64;
      const size_t b = blocks * t / threads * 64, e = blocks * (t + 1) / threads * 64;
      sink[t] += moe::active_isa() >= moe::Isa::kAvx512 ? moe::ceilings_detail::read_sum_avx512(a.data() + b, e - b)
                                                        : moe::ceilings_detail::read_sum_avx2(a.data() + b, e - b);
    });
  }
  benchmark::DoNotOptimize(sink.data());
  state.counters["GB/s"] =
      benchmark::Counter(double(state.iterations()) * double(a.size() * 4) * 1e-9, benchmark::Counter::kIsRate);
}

// The f32 FMA and bf16 dot ceilings (same loops as `moe bench ceilings`), one thread.
void BM_FmaCeiling(benchmark::State& state) {
  float sink = 0;
  double flops = 0;
  for (auto _ : state) {
    flops += moe::active_isa() >= moe::Isa::kAvx512 ? moe::ceilings_detail::fma_loop_avx512(1'000'000, &sink)
                                                    : moe::ceilings_detail::fma_loop_avx2(1'000'000, &sink);
  }
  benchmark::DoNotOptimize(sink);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
}

void BM_DotBf16Ceiling(benchmark::State& state) {
  if (moe::detected_isa() < moe::Isa::kAvx512Bf16) return state.SkipWithError("no AVX512_BF16");
  float sink = 0;
  double flops = 0;
  for (auto _ : state) flops += moe::ceilings_detail::dot_bf16_loop_avx512bf16(1'000'000, &sink);
  benchmark::DoNotOptimize(sink);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
}

// Shapes: Qwen3-30B-A3B expert gate/up (n=768, k=2048) and down (2048, 768); Mixtral (14336, 4096).
void decode_args(benchmark::internal::Benchmark* b, bool bf16_only) {
  b->ArgNames({"m", "n", "k", "bf16", "threads"});
  const int64_t shapes[][2] = {{768, 2048}, {2048, 768}, {14336, 4096}};
  for (const auto& nk : shapes) {  // shape outermost, so the cached weight sets are reused
    for (int bf16 : {0, 1}) {
      if (bf16_only && !bf16) continue;
      for (int m : {1, 4, 8})
        for (int threads : {1, 2}) b->Args({m, nk[0], nk[1], bf16, threads});
    }
  }
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

void prefill_args(benchmark::internal::Benchmark* b, bool bf16_only) {
  b->ArgNames({"m", "n", "k", "bf16", "threads"});
  for (int threads : {1, 2}) {
    for (int bf16 : {0, 1}) {
      if (bf16_only && !bf16) continue;
      b->Args({512, 768, 2048, bf16, threads});
      b->Args({512, 2048, 768, bf16, threads});
      b->Args({512, 2048, 4096, bf16, threads});  // a 2048-row block of the Mixtral expert
    }
  }
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_ReadCeiling)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FmaCeiling)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DotBf16Ceiling)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Decode)->Apply([](auto* b) { decode_args(b, false); });
BENCHMARK(BM_DecodeBf16Dot)->Apply([](auto* b) { decode_args(b, true); });
BENCHMARK(BM_Prefill)->Apply([](auto* b) { prefill_args(b, false); });
BENCHMARK(BM_PrefillF32Gemm)->Apply([](auto* b) { prefill_args(b, true); });
BENCHMARK(BM_DecodePanels)->Apply([](auto* b) { decode_args(b, false); });
BENCHMARK(BM_PrefillPanels)->Apply([](auto* b) { prefill_args(b, false); });
void expert_rows_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "n", "k", "bf16", "threads"});
  for (int bf16 : {0, 1}) {
    b->Args({32, 768, 2048, bf16, 1});     // Qwen3-30B-A3B gate/up, 32 rows per expert
    b->Args({32, 2048, 768, bf16, 1});     // its down projection
    b->Args({128, 14336, 4096, bf16, 1});  // Mixtral w1/w3, 128 rows per expert
  }
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_ExpertRows)->Apply(expert_rows_args);
BENCHMARK(BM_ExpertRowsPanels)->Apply(expert_rows_args);
BENCHMARK(BM_Sgemm)->Apply([](auto* b) {
  b->ArgNames({"m", "n", "k", "bf16", "threads"});
  for (int threads : {1, 2}) {
    b->Args({1, 768, 2048, 0, threads});
    b->Args({8, 14336, 4096, 0, threads});
    b->Args({512, 768, 2048, 0, threads});
    b->Args({512, 2048, 4096, 0, threads});
  }
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
});

}  // namespace

BENCHMARK_MAIN();
