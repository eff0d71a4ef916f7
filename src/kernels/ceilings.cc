// Drives the ceiling loops on 1 and all threads and takes medians.
#include "kernels/ceilings.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "runtime/aligned.h"
#include "runtime/blas.h"
#include "runtime/cpu_features.h"
#include "runtime/process_limits.h"
#include "runtime/thread_pool.h"
#include "runtime/timer.h"
#include "util/json_out.h"

namespace moe {
namespace {

using namespace ceilings_detail;

// pattern 0: one stream per thread; 1: four concurrent streams per thread.
double read_sum(const float* a, size_t n, int pattern) {
  const Isa isa = active_isa();
  if (isa >= Isa::kAvx512) return pattern ? read_sum4_avx512(a, n) : read_sum_avx512(a, n);
  if (isa >= Isa::kAvx2) return pattern ? read_sum4_avx2(a, n) : read_sum_avx2(a, n);
  return read_sum_scalar(a, n);
}

void triad(float* a, const float* b, const float* c, float s, size_t n) {
  const Isa isa = active_isa();
  if (isa >= Isa::kAvx512) return triad_avx512(a, b, c, s, n);
  if (isa >= Isa::kAvx2) return triad_avx2(a, b, c, s, n);
  triad_scalar(a, b, c, s, n);
}

double fma_loop(long iters, float* sink) {
  const Isa isa = active_isa();
  if (isa >= Isa::kAvx512) return fma_loop_avx512(iters, sink);
  if (isa >= Isa::kAvx2) return fma_loop_avx2(iters, sink);
  return fma_loop_scalar(iters, sink);
}

// Splits [0, n) into `parts` 64-element-aligned ranges.
std::pair<size_t, size_t> split(size_t n, int part, int parts) {
  const size_t blocks = n / 64;
  return {blocks * part / parts * 64, part + 1 == parts ? n : blocks * (part + 1) / parts * 64};
}

// The read ceiling is the better median of two read patterns (one stream per thread, four
// streams per thread), alternated rep by rep so both see the same machine; which one wins
// depends on the CPU's prefetchers, and a ceiling below what a kernel reaches would overstate it.
double measure_read(ThreadPool& pool, const AlignedBuffer<float>& a, int reps) {
  std::vector<double> gbps[2];
  std::vector<double> sink(pool.size());
  for (int r = 0; r < reps + 1; ++r) {
    for (int pattern = 0; pattern < 2; ++pattern) {
      Timer t;
      pool.run([&](int i) {
        auto [b, e] = split(a.size(), i, pool.size());
        sink[i] += read_sum(a.data() + b, e - b, pattern);
      });
      const double s = t.seconds();
      if (r > 0) gbps[pattern].push_back(a.size() * sizeof(float) / s * 1e-9);  // first rep warms up
    }
  }
  return std::max(median(gbps[0]), median(gbps[1]));
}

double measure_triad(ThreadPool& pool, AlignedBuffer<float>& a, const AlignedBuffer<float>& b,
                     const AlignedBuffer<float>& c, int reps) {
  std::vector<double> gbps;
  for (int r = 0; r < reps + 1; ++r) {
    Timer t;
    pool.run([&](int i) {
      auto [lo, hi] = split(a.size(), i, pool.size());
      triad(a.data() + lo, b.data() + lo, c.data() + lo, 0.5f, hi - lo);
    });
    const double s = t.seconds();
    if (r > 0) gbps.push_back(3.0 * a.size() * sizeof(float) / s * 1e-9);
  }
  return median(gbps);
}

template <typename Loop>
double measure_compute(ThreadPool& pool, Loop loop, int reps) {
  constexpr long kIters = 4'000'000;
  std::vector<double> gflops;
  std::vector<float> sink(pool.size());
  for (int r = 0; r < reps + 1; ++r) {
    std::vector<double> flops(pool.size());
    Timer t;
    pool.run([&](int i) { flops[i] = loop(kIters, &sink[i]); });
    const double s = t.seconds();
    double total = 0;
    for (double f : flops) total += f;
    if (r > 0) gflops.push_back(total / s * 1e-9);
  }
  return median(gflops);
}

double measure_sgemm(int threads, int n, int reps) {
  if (!blas::available()) return 0;
  blas::set_threads(threads);
  AlignedBuffer<float> a(size_t(n) * n), b(size_t(n) * n), c(size_t(n) * n);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = static_cast<float>((i % 13) * 0.01);
    b[i] = static_cast<float>((i % 7) * 0.02);
  }
  std::vector<double> gflops;
  for (int r = 0; r < reps + 1; ++r) {
    Timer t;
    blas::sgemm(false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    const double s = t.seconds();
    if (r > 0) gflops.push_back(2.0 * n * n * double(n) / s * 1e-9);
  }
  return median(gflops);
}

}  // namespace

Ceilings measure_ceilings(const CeilingsOptions& options) {
  Ceilings result;
  result.isa = isa_name(active_isa());
  result.openblas_core = blas::core_name();
  result.openblas_inherited_coretype = blas::inherited_coretype();
  std::vector<int> counts = options.thread_counts;
  const int all = num_threads();
  if (counts.empty()) counts = all > 1 ? std::vector<int>{1, all} : std::vector<int>{1};

  const size_t mib = options.stream_mib != 0 ? options.stream_mib : default_stream_mib();
  const size_t n = mib * 1024 * 1024 / sizeof(float);
  result.stream_bytes = n * sizeof(float);
  const size_t half = options.measure_triad ? n / 2 : 0;
  AlignedBuffer<float> a(n), b(half), c(half), d(half);
  for (size_t i = 0; i < n; ++i) a[i] = 1e-6f * static_cast<float>(i & 1023);
  for (size_t i = 0; i < b.size(); ++i) {
    b[i] = 1.0f;
    c[i] = 2.0f;
  }
  const bool has_bf16 = active_isa() >= Isa::kAvx512Bf16;
  const bool has_vnni = active_isa() >= Isa::kAvx512 && cpu_features().avx512_vnni;
  for (int threads : counts) {
    ThreadPool pool(threads);
    CeilingRow row;
    row.threads = threads;
    row.read_gbps = measure_read(pool, a, options.repetitions);
    if (options.measure_triad) row.triad_gbps = measure_triad(pool, d, b, c, options.repetitions);
    row.fma_f32_gflops = measure_compute(pool, fma_loop, options.repetitions);
    if (has_bf16) row.dot_bf16_gflops = measure_compute(pool, dot_bf16_loop_avx512bf16, options.repetitions);
    if (has_vnni)
      row.dot_i8_gops = measure_compute(pool, dot_i8_loop_avx512vnni, options.repetitions);
    else if (active_isa() >= Isa::kAvx2)
      row.dot_i8_gops = measure_compute(pool, dot_i8_loop_avx2, options.repetitions);
    if (options.measure_sgemm) row.sgemm_gflops = measure_sgemm(threads, options.sgemm_n, options.repetitions);
    result.rows.push_back(row);
  }
  result.all = result.rows.back();
  return result;
}

size_t default_stream_mib() {
  static const size_t cached = [] {
    const int64_t llc_mib = (last_level_cache_bytes() + (int64_t(1) << 20) - 1) >> 20;
    int64_t mib = std::max<int64_t>(256, 2 * llc_mib);
    // At most a sixteenth of the memory this process may use, though never under 256 MiB: a run held to a
    // small cgroup limit (scripts/bench-offload.sh's budget + 0.5 GiB) keeps the room it had.
    const auto usable_mib = static_cast<int64_t>(usable_memory(read_memory_limits()) >> 20);
    if (usable_mib > 0) mib = std::min(mib, std::max<int64_t>(256, usable_mib / 16));
    return static_cast<size_t>(mib);
  }();  // the cache and the limits do not change while the process runs
  return cached;
}

ReadProbe::ReadProbe(size_t mib) : a_((mib != 0 ? mib : default_stream_mib()) * 1024 * 1024 / sizeof(float)) {
  for (size_t i = 0; i < a_.size(); ++i) a_[i] = 1e-6f * static_cast<float>(i & 1023);
  gbps();  // page faults and first touch out of the way
}

double ReadProbe::gbps() {
  ThreadPool& pool = thread_pool();
  sink_.resize(static_cast<size_t>(pool.size()));
  double best = 0;
  for (int pattern = 0; pattern < 2; ++pattern) {
    Timer t;
    pool.run([&](int i) {
      auto [b, e] = split(a_.size(), i, pool.size());
      sink_[static_cast<size_t>(i)] += read_sum(a_.data() + b, e - b, pattern);
    });
    best = std::max(best, a_.size() * sizeof(float) / t.seconds() * 1e-9);
  }
  return best;
}

int64_t private_cache_bytes() {
  long l2 = -1;
#ifdef _SC_LEVEL2_CACHE_SIZE
  l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
  return l2 > 0 ? static_cast<int64_t>(l2) * thread_pool().size() : 0;
}

bool cache_holds(double bytes, double dram_gbps, double* gbps) {
  if (gbps) *gbps = 0;
  if (!(bytes > 0) || bytes > static_cast<double>(last_level_cache_bytes())) return false;
  if (bytes <= static_cast<double>(private_cache_bytes())) return true;
  // Not where the buffer would take more than a sixteenth of the memory this process may use (a run held
  // to a small cgroup limit, as scripts/bench-offload.sh runs them): the reported size answers.
  const auto usable = static_cast<double>(usable_memory(read_memory_limits()));
  if (usable > 0 && bytes > usable / 16) return true;
  const auto mib = static_cast<size_t>(std::ceil(bytes / (1 << 20)));
  ReadProbe probe(std::max<size_t>(1, mib));  // its constructor's pass is the warm one
  const double rate = std::max(probe.gbps(), probe.gbps());
  if (gbps) *gbps = rate;
  return !(dram_gbps > 0) || rate > kCacheGain * dram_gbps;
}

CeilingRow measure_quick_ceilings(int repetitions) {
  CeilingsOptions o;
  o.repetitions = repetitions;
  o.measure_sgemm = false;
  o.measure_triad = false;
  o.thread_counts = {num_threads()};
  return measure_ceilings(o).all;
}

}  // namespace moe
