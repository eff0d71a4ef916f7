// Google Benchmark for the training kernels (kernels/gemm_f32.h, kernels/vmath.h), one thread, each
// at the scalar level (the portable twin), AVX2 (the twin vectorized by the compiler) and AVX-512,
// with OpenBLAS sgemm and the f32 FMA ceiling in the same run as baselines. GEMM shapes are those of
// a training step (T = 512 tokens of a batch, D = 128..512, F = 256..1024, an expert's 128 rows) in
// the three layouts of training: A.B^T (forward), A.B (dX), A^T.B (dW). GEMMs report GFLOP/s, the
// vector kernels GB/s (bytes read + written, from L2 at these sizes).
// Run: build/bin/train_kernels_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only
#include <benchmark/benchmark.h>

#include <vector>

#include "kernels/ceilings.h"
#include "kernels/gemm_f32.h"
#include "kernels/vmath.h"
#include "runtime/blas.h"
#include "runtime/cpu_features.h"

namespace {

using moe::Isa;

// Forces an ISA level for one benchmark; false (and the benchmark skipped) where the CPU lacks it.
class IsaScope {
 public:
  IsaScope(benchmark::State& state, int64_t level) : level_(static_cast<Isa>(level)) {
    ok_ = level_ <= moe::detected_isa();
    if (!ok_) state.SkipWithError("this CPU lacks the ISA level");
    prev_ = moe::set_isa_override(level_);
    state.SetLabel(moe::isa_name(level_));
  }
  ~IsaScope() { moe::set_isa_override(prev_); }
  bool ok() const { return ok_; }

 private:
  Isa level_, prev_ = Isa::kScalar;
  bool ok_ = false;
};

std::vector<float> filled(int64_t n, float scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = scale * (static_cast<float>(i % 97) - 48.0f) / 48.0f;
  return v;
}

// C[m, n] = A . B in one of training's layouts: 0 A[m,k] . W[n,k]^T, 1 A[m,k] . B[k,n], 2 A[k,m]^T . B[k,n].
void BM_TrainGemm(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2), layout = state.range(3);
  IsaScope isa(state, state.range(4));
  if (!isa.ok()) return;
  const auto a = filled(m * k, 1.0f), b = filled(k * n, 0.5f);
  std::vector<float> c(static_cast<size_t>(m * n));
  const moe::GemmOperand ao = layout == 2 ? moe::GemmOperand{a.data(), 1, m} : moe::GemmOperand{a.data(), k, 1};
  const moe::GemmOperand bo = layout == 0 ? moe::GemmOperand{b.data(), 1, k} : moe::GemmOperand{b.data(), n, 1};
  for (auto _ : state) {
    moe::gemm_f32(ao, bo, c.data(), n, {m, n, k}, false);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(double(state.iterations()) * 2.0 * double(m * n * k) * 1e-9, benchmark::Counter::kIsRate);
}

// OpenBLAS sgemm (one thread) on the A.B^T and A.B layouts: the baseline the training GEMM replaced.
void BM_TrainSgemm(benchmark::State& state) {
  if (!moe::blas::available()) return state.SkipWithError("OpenBLAS not available");
  const int m = static_cast<int>(state.range(0)), n = static_cast<int>(state.range(1));
  const int k = static_cast<int>(state.range(2));
  const bool nt = state.range(3) == 0;
  moe::blas::set_threads(1);
  const auto a = filled(int64_t(m) * k, 1.0f), b = filled(int64_t(k) * n, 0.5f);
  std::vector<float> c(size_t(m) * size_t(n));
  for (auto _ : state) {
    moe::blas::sgemm(nt, m, n, k, 1.0f, a.data(), k, b.data(), nt ? k : n, 0.0f, c.data(), n);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(double(state.iterations()) * 2.0 * double(m) * n * k * 1e-9, benchmark::Counter::kIsRate);
}

void BM_FmaCeiling(benchmark::State& state) {
  float sink = 0;
  double flops = 0;
  for (auto _ : state) {
    flops += moe::detected_isa() >= Isa::kAvx512 ? moe::ceilings_detail::fma_loop_avx512(1'000'000, &sink)
                                                 : moe::ceilings_detail::fma_loop_avx2(1'000'000, &sink);
  }
  benchmark::DoNotOptimize(sink);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
}

void gemm_args(benchmark::internal::Benchmark* b, bool with_isa) {
  b->ArgNames({"m", "n", "k", "layout", "isa"});
  const int64_t shapes[][3] = {{512, 128, 128}, {512, 512, 128}, {512, 128, 512}, {128, 1024, 512}, {512, 512, 512}};
  for (const auto& s : shapes)
    for (int64_t layout : {0, 1, 2}) {
      if (!with_isa) {
        if (layout < 2) b->Args({s[0], s[1], s[2], layout, 0});
        continue;
      }
      for (int64_t isa : {0, 1, 2}) b->Args({s[0], s[1], s[2], layout, isa});
    }
  b->Unit(benchmark::kMicrosecond);
}

// Vector kernels over n floats; bytes = floats read + written per element x 4.
template <typename Fn>
void run_vector(benchmark::State& state, int64_t floats_per_element, Fn&& fn) {
  IsaScope isa(state, state.range(1));
  if (!isa.ok()) return;
  for (auto _ : state) {
    fn();
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] = benchmark::Counter(
      double(state.iterations()) * double(state.range(0) * floats_per_element * 4) * 1e-9, benchmark::Counter::kIsRate);
}

void BM_Exp(benchmark::State& state) {
  const int64_t n = state.range(0);
  const auto x = filled(n, 20.0f);
  std::vector<float> y(static_cast<size_t>(n));
  run_vector(state, 2, [&] { moe::exp_f32(y.data(), x.data(), n); });
}

void BM_Softmax(benchmark::State& state) {  // one row of attention probabilities or router scores, n long
  const int64_t n = state.range(0);
  const auto x = filled(n, 4.0f);
  std::vector<float> y = x;  // in place, again and again (the values tend to uniform; the work stays)
  run_vector(state, 2, [&] { moe::softmax_f32(y.data(), n, 0.125f); });
}

void BM_SwigluBackward(benchmark::State& state) {  // reads dout, gate, up; writes dgate, dup, out
  const int64_t n = state.range(0);
  const auto g = filled(n, 4.0f), u = filled(n, 1.0f), d = filled(n, 0.1f);
  std::vector<float> dg(static_cast<size_t>(n)), du(dg.size()), out(dg.size());
  run_vector(state, 6,
             [&] { moe::swiglu_backward_f32(dg.data(), du.data(), d.data(), g.data(), u.data(), n, out.data()); });
}

void BM_RmsnormRows(benchmark::State& state) {  // rows of 512: reads x, writes out
  const int64_t n = state.range(0), c = 512;
  const auto x = filled(n, 1.0f), w = filled(c, 1.0f);
  std::vector<float> out(static_cast<size_t>(n)), rstd(static_cast<size_t>(n / c));
  run_vector(state, 2, [&] { moe::rmsnorm_rows_f32(out.data(), rstd.data(), x.data(), w.data(), n / c, c, 1e-6); });
}

void BM_Adamw(benchmark::State& state) {  // reads p, m, v, g; writes p, m, v
  const int64_t n = state.range(0);
  auto p = filled(n, 1.0f), m = filled(n, 0.01f), v = filled(n, 0.001f);
  for (auto& x : v) x *= x;
  const auto g = filled(n, 0.1f);
  const moe::AdamWStep st{0.9999f, 0.9f, 0.95f, 1e-4f, 0.5f, 1e-8f, 1.0f};
  run_vector(state, 7, [&] { moe::adamw_f32(st, p.data(), m.data(), v.data(), g.data(), n); });
}

void vector_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "isa"});
  for (int64_t n : {4096, 65536})
    for (int64_t isa : {0, 2}) b->Args({n, isa});
  b->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_FmaCeiling)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TrainGemm)->Apply([](auto* b) { gemm_args(b, true); });
BENCHMARK(BM_TrainSgemm)->Apply([](auto* b) { gemm_args(b, false); });
BENCHMARK(BM_Exp)->Apply(vector_args);
BENCHMARK(BM_Softmax)->Apply(vector_args);
BENCHMARK(BM_SwigluBackward)->Apply(vector_args);
BENCHMARK(BM_RmsnormRows)->Apply(vector_args);
BENCHMARK(BM_Adamw)->Apply(vector_args);

}  // namespace

BENCHMARK_MAIN();
