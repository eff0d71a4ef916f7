// The machine's ceilings, measured: memory bandwidth (read-only and triad), peak f32 FMA
// rate, peak bf16 dot rate (AVX512_BF16), peak int8 dot rate and OpenBLAS sgemm rate, for 1 thread and all
// threads, median of repetitions. Every benchmark reports its figures as fractions of these.
#pragma once

#include <string>
#include <vector>

#include "runtime/aligned.h"

namespace moe {

struct CeilingRow {
  int threads = 1;
  double read_gbps = 0, triad_gbps = 0, fma_f32_gflops = 0, dot_bf16_gflops = 0, sgemm_gflops = 0;
  // Int8 dot products (the quantized kernels' arithmetic), 2 ops per multiply-add: AVX512-VNNI vpdpbusd,
  // else AVX2's vpmaddubsw + vpmaddwd; 0 without either. AMX-INT8 tiles (prefill on CPUs that have them)
  // are faster still and not measured.
  double dot_i8_gops = 0;
};

struct Ceilings {
  std::vector<CeilingRow> rows;  // one per thread count measured (1, then all)
  CeilingRow all;                // the all-threads row (what later benchmarks divide by)
  std::string isa;               // kernel ISA used for the FMA / dot loops
  std::string openblas_core;     // core type OpenBLAS reported
  std::string openblas_inherited_coretype;
  size_t stream_bytes = 0;  // bytes of the largest stream array
};

struct CeilingsOptions {
  int repetitions = 5;
  size_t stream_mib = 0;  // the read array's MiB (triad's three: half each); 0: default_stream_mib()
  int sgemm_n = 2048;
  bool measure_sgemm = true;
  // The triad's three arrays (1.5x the read array) cost their first touch: 4-8 s per GB on a VM whose fresh
  // huge pages come from its host. measure_quick_ceilings, whose callers never read the triad, skips it.
  bool measure_triad = true;
  std::vector<int> thread_counts;  // empty: {1, all}
};

Ceilings measure_ceilings(const CeilingsOptions& options);

// The read array that measures memory, not cache: twice the last-level cache, and at least 256 MiB (but at
// most a sixteenth of the usable memory above that, for runs under a tight cgroup limit). A
// 256 MiB array read 44 GB/s on a VM with a 260 MB L3 where 384 MiB to 2 GiB read 34-35 (much of it
// came from the L3, as much as its neighbours left); a decode step's few hundred MB come from memory.
size_t default_stream_mib();

// Only the all-threads read bandwidth and FMA peak (quick, for other benchmarks' ratios).
CeilingRow measure_quick_ceilings(int repetitions = 3);

// The read ceiling again, one pass at a time, for pairing with each timed call of a benchmark:
// on a machine whose memory bandwidth moves with its neighbours' load (a shared VM host), a
// ceiling measured seconds earlier can be far off, while a pass right before the call sees the
// same conditions (and also evicts the caches). Runs on the global thread pool; the buffer
// (default_stream_mib() by default) lives as long as the probe.
class ReadProbe {
 public:
  explicit ReadProbe(size_t mib = 0);  // 0: default_stream_mib()
  double gbps();                       // one pass of each read pattern over the buffer; the faster one, in GB/s

 private:
  AlignedBuffer<float> a_;
  std::vector<double> sink_;
};

// Whether the last-level cache holds a working set of `bytes` here, judged by measuring it: the bytes fit
// last_level_cache_bytes() and, read again and again (a warm pass, then the better of two), they stream
// faster than dram_gbps x kCacheGain. A VM may report its host's L3, shared with other guests: a step
// that "fits" it can read no faster than DRAM, and then the DRAM floor applies to it. `gbps` (optional)
// gets the working set's measured rate (0 when not measured: the bytes do not fit, or measuring them would
// take more than a sixteenth of the memory this process may use, where the reported size answers).
// Within private_cache_bytes() it is held without measuring (a read loop over an L2-sized buffer times its
// own instructions, under a sanitizer slower than DRAM).
inline constexpr double kCacheGain = 1.15;
bool cache_holds(double bytes, double dram_gbps, double* gbps = nullptr);
// The L2 caches of the pool's threads together (sysconf; 0 when the system does not say).
int64_t private_cache_bytes();

namespace ceilings_detail {
// Per-ISA loops (ceilings_*.cc). Each returns a checksum so the work is not optimized away.
double read_sum_scalar(const float* a, size_t n);
double read_sum_avx2(const float* a, size_t n);
double read_sum_avx512(const float* a, size_t n);
// The same sum read as four concurrent streams (a second read pattern for the ceiling).
double read_sum4_avx2(const float* a, size_t n);
double read_sum4_avx512(const float* a, size_t n);
void triad_scalar(float* a, const float* b, const float* c, float s, size_t n);
void triad_avx2(float* a, const float* b, const float* c, float s, size_t n);
void triad_avx512(float* a, const float* b, const float* c, float s, size_t n);
// Each runs `iters` iterations of an unrolled FMA (or dpbf16) chain; returns FLOPs done.
double fma_loop_scalar(long iters, float* sink);
double fma_loop_avx2(long iters, float* sink);
double fma_loop_avx512(long iters, float* sink);
double dot_bf16_loop_avx512bf16(long iters, float* sink);
double dot_i8_loop_avx512vnni(long iters, float* sink);
double dot_i8_loop_avx2(long iters, float* sink);
}  // namespace ceilings_detail

}  // namespace moe
