// Expert-parallel MoE layer under mpirun: `mpirun -np R bin/ep_bench [--tokens 1,512] [--reps N]
// [--threads N] [--placement contiguous|round-robin]`. Qwen3-30B-A3B layer shape (D 2048, F 768,
// E 128, K 8, bf16). Each rank routes its own T tokens (data parallel); rank 0 prints, per rank,
// the median time split into route / dispatch / experts / combine / wait, the communication
// share (wait / layer time), bytes sent and received per layer measured next to the formula,
// and the baseline: one MoeLayer holding all experts over the same T tokens, measured in the
// same run. A plain program (not Google Benchmark) because every rank must run the same loop.
// `mpirun -np R moe bench layer --ep R` measures the same without the one-process baseline.
#include <cstdio>
#include <random>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "parallel/comm.h"
#include "parallel/ep_layer.h"
#include "runtime/thread_pool.h"
#include "runtime/timer.h"
#include "util/dtype.h"

namespace {

using namespace moe;
using namespace moe::parallel;

constexpr int64_t kD = 2048, kF = 768;
constexpr int kE = 128, kK = 8;

struct Args {
  std::vector<int64_t> tokens = {1, 512};
  int reps = 0;  // 0: 40 for T < 64, else 8
  int threads = 0;
  std::string placement = "contiguous";
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--tokens") {
      a.tokens.clear();
      std::stringstream ss(v);
      for (std::string t; std::getline(ss, t, ',');) a.tokens.push_back(std::stoll(t));
    } else if (k == "--reps") {
      a.reps = std::stoi(v);
    } else if (k == "--threads") {
      a.threads = std::stoi(v);
    } else if (k == "--placement") {
      a.placement = v;
    }
  }
  return a;
}

struct Weights {
  std::vector<uint16_t> gate, up, down;  // [E, F, D], [E, F, D], [E, D, F] bf16
  std::vector<float> router;             // [E, D]
  Weights() : gate(kE * kF * kD), up(kE * kF * kD), down(kE * kD * kF), router(kE * kD) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-0.05f, 0.05f);
    for (auto* v : {&gate, &up, &down})
      for (auto& x : *v) x = f32_to_bf16(u(rng));
    for (auto& x : router) x = u(rng);
  }
  MoeLayerWeights view() const {
    MoeLayerWeights w;
    w.router.weight = {router.data(), DType::kF32, kD};
    w.experts = ExpertWeights::stacked(kE, kD, kF, DType::kBF16, gate.data(), up.data(), down.data());
    return w;
  }
};

MoeLayerConfig config() {
  MoeLayerConfig c;
  c.d_model = kD;
  c.router.n_expert = kE;
  c.router.top_k = kK;
  c.router.norm_topk_prob = true;
  return c;
}

std::string measure(Comm& comm, const Weights& w, const ExpertPlacement& placement, int64_t T, int reps) {
  std::mt19937 rng(uint32_t(7 + comm.rank()));
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> x(size_t(T * kD)), out(size_t(T * kD));  // [T, D]
  for (auto& v : x) v = n(rng);
  EpMoeLayer ep(comm, placement, config(), w.view());
  MoeLayer single(config(), w.view());
  std::vector<double> total, wait, base;
  EpTelemetry sum, tel;
  int64_t predicted_sum = 0;
  for (int rep = -2; rep < reps; ++rep) {
    comm.barrier();
    Timer timer;
    ep.forward(x.data(), T, out.data(), {}, &tel);
    const double ms = timer.ms();
    comm.barrier();
    timer.reset();
    single.forward(x.data(), T, out.data());
    const double base_ms = timer.ms();
    if (rep < 0) continue;
    total.push_back(ms);
    wait.push_back(tel.wait_ms);
    base.push_back(base_ms);
    sum.accumulate(tel);
    predicted_sum += ep_bytes_sent(comm.size(), kD, tel.exchange.rows_sent, tel.exchange.rows_received);
  }
  const double calls = double(sum.calls);
  const EpExchangeStats& ex = sum.exchange;
  const int64_t predicted = predicted_sum / sum.calls;
  // Uniform routing: T K (R - 1) / R rows each way.
  const double uniform_rows = double(T) * kK * (comm.size() - 1) / comm.size();
  const double uniform = 8.0 * (comm.size() - 1) + uniform_rows * (8.0 * kD + 8);
  return fmt::format(
      "T={:4d} rank {}: layer {:8.3f} ms (route {:.3f} dispatch {:.3f} experts {:.3f} combine {:.3f} wait {:.3f}) "
      "comm share {:5.1f}% | one process, all experts: {:8.3f} ms | rows computed {} sent {} recv {} | bytes/layer "
      "sent {} recv {} formula {} uniform-routing {:.0f}",
      T, comm.rank(), median(total), sum.route_ms / calls, sum.dispatch_ms / calls, sum.experts_ms / calls,
      sum.combine_ms / calls, median(wait), 100.0 * median(wait) / median(total), median(base),
      sum.rows_computed() / sum.calls, ex.rows_sent / sum.calls, ex.rows_received / sum.calls,
      ex.bytes_sent / sum.calls, ex.bytes_received / sum.calls, predicted, uniform);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args = parse(argc, argv);
    auto comm = make_world_comm();
    if (args.threads > 0) set_num_threads(args.threads);
    const Weights w;
    const ExpertPlacement placement = ExpertPlacement::parse(args.placement, kE, comm->size());
    if (comm->rank() == 0)
      std::printf("ep_bench: %d ranks (%s), %d threads each, D %lld F %lld E %d K %d bf16, %s\n", comm->size(),
                  comm->kind(), num_threads(), (long long)kD, (long long)kF, kE, kK, placement.describe().c_str());
    for (int64_t T : args.tokens) {
      const int reps = args.reps > 0 ? args.reps : (T < 64 ? 40 : 8);
      const auto lines = comm->all_gather_strings(measure(*comm, w, placement, T, reps));
      if (comm->rank() == 0)
        for (const auto& l : lines) std::printf("%s\n", l.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ep_bench: %s\n", e.what());
    return 1;
  }
}
