// Google Benchmark for the ceiling loops: read stream and f32 FMA chain on one thread.
#include <benchmark/benchmark.h>

#include "kernels/ceilings.h"
#include "runtime/aligned.h"
#include "runtime/cpu_features.h"

namespace {

void BM_ReadStream(benchmark::State& state) {
  moe::AlignedBuffer<float> a(size_t(state.range(0)) << 20 >> 2);
  double sink = 0;
  for (auto _ : state) {
    if (moe::active_isa() >= moe::Isa::kAvx512) {
      sink += moe::ceilings_detail::read_sum_avx512(a.data(), a.size());
    } else {
      sink += moe::ceilings_detail::read_sum_scalar(a.data(), a.size());
    }
  }
  benchmark::DoNotOptimize(sink);
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(a.size() * sizeof(float)));
}
BENCHMARK(BM_ReadStream)->Arg(256)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
