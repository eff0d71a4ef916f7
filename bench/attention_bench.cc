// Decode attention over a long KV cache: one query token per sequence, Qwen3-30B-A3B's heads
// (32 query heads over 4 kv heads of 128), a cache of S positions in f32, f16 or bf16. Reports the KV
// bytes read per second next to the read ceiling measured in the same run, the figure the decode floor
// assumes (the cache is streamed once per token): BM_AttentionDecode/S/threads/layout/kv_type (layout 0
// position-major rows, 1 head-major rows, 2 head-major with 16-bit keys in tiles as the decoder keeps them;
// kv_type 0 f32, 1 f16, 2 bf16). A 16-bit cache reads half the bytes, so at the same GB/s it takes half the
// time. The cache's values are random, so a tiled layout reads the same buffer as tiles.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <vector>

#include "kernels/ceilings.h"
#include "kernels/half_rows.h"
#include "model/attention.h"
#include "runtime/thread_pool.h"

namespace {

void BM_AttentionDecode(benchmark::State& state) {
  const int64_t S = state.range(0), H = 32, Hkv = 4, D = 128;
  moe::set_num_threads(static_cast<int>(state.range(1)));
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(H * D)), k(static_cast<size_t>(S * Hkv * D)),
      v(static_cast<size_t>(S * Hkv * D)), out(static_cast<size_t>(H * D));
  for (auto* buf : {&q, &k, &v})
    for (float& x : *buf) x = dist(rng);
  // The decoder's cache layout: head-major, [Hkv, S, D] (KvCache with heads), 16-bit keys in tiles (range(2)
  // = 2); range(2) = 0: the position-major [S, Hkv, D] layout it replaced.
  const bool head_major = state.range(2) != 0;
  const moe::DType types[] = {moe::DType::kF32, moe::DType::kF16, moe::DType::kBF16};
  const moe::DType kv = types[state.range(3)];
  std::vector<uint16_t> kh(k.size()), vh(v.size());
  moe::narrow_half_ref(kv == moe::DType::kF32 ? moe::DType::kF16 : kv, k.data(), kh.data(), ssize(k));
  moe::narrow_half_ref(kv == moe::DType::kF32 ? moe::DType::kF16 : kv, v.data(), vh.data(), ssize(v));
  moe::AttentionTensors t{q.data(), k.data(), v.data(), out.data(), 1, S};
  if (kv != moe::DType::kF32) t.k = kh.data(), t.v = vh.data(), t.kv_type = kv;
  if (head_major) t.k_stride = t.v_stride = D, t.k_head_stride = t.v_head_stride = S * D;
  t.k_tiled = state.range(2) == 2 && kv != moe::DType::kF32;  // S is a multiple of the tile
  const moe::AttentionShape shape{H, Hkv, D, D};
  const moe::AttentionOptions options{1.0f / 11.3137f, 0, nullptr};
  for (auto _ : state) {
    moe::attention_forward(t, shape, options);
    benchmark::DoNotOptimize(out.data());
  }
  const double bytes = 2.0 * static_cast<double>(S * Hkv * D) * (kv == moe::DType::kF32 ? 4 : 2);
  state.counters["GB/s"] = benchmark::Counter(double(state.iterations()) * bytes * 1e-9, benchmark::Counter::kIsRate);
  moe::ReadProbe probe;
  state.counters["read_ceiling_GB/s"] = probe.gbps();
}

BENCHMARK(BM_AttentionDecode)
    ->Args({512, 2, 1, 0})
    ->Args({4096, 1, 1, 0})
    ->Args({4096, 2, 1, 0})
    ->Args({4096, 2, 0, 0})
    ->Args({32768, 2, 1, 0})
    ->Args({512, 2, 1, 1})
    ->Args({512, 2, 2, 1})
    ->Args({4096, 1, 1, 1})
    ->Args({4096, 1, 2, 1})
    ->Args({4096, 2, 1, 1})
    ->Args({4096, 2, 2, 1})
    ->Args({4096, 2, 1, 2})
    ->Args({4096, 2, 2, 2})
    ->Args({32768, 2, 1, 1})
    ->Args({32768, 2, 2, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// The same from memory, as in a model's decode step (whose weights evict the cache between layers): f16
// caches of S positions, head-major, enough copies rotated (at least twice the last-level cache) that each
// call reads its keys and values from memory. BM_AttentionDecodeCold/S/threads/tiled (keys in tiles).
void BM_AttentionDecodeCold(benchmark::State& state) {
  const int64_t S = state.range(0), H = 32, Hkv = 4, D = 128;
  moe::set_num_threads(static_cast<int>(state.range(1)));
  std::mt19937 rng(2);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(H * D)), kv(static_cast<size_t>(S * Hkv * D)), out(q.size());
  for (float& x : q) x = dist(rng);
  for (float& x : kv) x = dist(rng);
  std::vector<uint16_t> half(kv.size());
  moe::narrow_half_ref(moe::DType::kF16, kv.data(), half.data(), ssize(kv));
  const size_t bytes = 2 * half.size() * sizeof(uint16_t);  // keys and values
  const size_t copies = std::max<size_t>(2, moe::default_stream_mib() * (size_t(1) << 20) / bytes + 1);
  std::vector<std::vector<uint16_t>> caches(2 * copies, half);  // keys, values of each copy
  const moe::AttentionShape shape{H, Hkv, D, D};
  const moe::AttentionOptions options{1.0f / 11.3137f, 0, nullptr};
  size_t next = 0;
  for (auto _ : state) {
    moe::AttentionTensors t{q.data(), caches[2 * next].data(), caches[2 * next + 1].data(), out.data(), 1, S};
    t.kv_type = moe::DType::kF16;
    t.k_stride = t.v_stride = D, t.k_head_stride = t.v_head_stride = S * D;
    t.k_tiled = state.range(2) != 0;
    moe::attention_forward(t, shape, options);
    benchmark::DoNotOptimize(out.data());
    next = (next + 1) % copies;
  }
  state.counters["GB/s"] =
      benchmark::Counter(double(state.iterations()) * double(bytes) * 1e-9, benchmark::Counter::kIsRate);
  moe::ReadProbe probe;
  state.counters["read_ceiling_GB/s"] = probe.gbps();
}
BENCHMARK(BM_AttentionDecodeCold)
    ->Args({512, 2, 0})
    ->Args({512, 2, 1})
    ->Args({4096, 2, 0})
    ->Args({4096, 2, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
