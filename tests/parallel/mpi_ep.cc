// The mpirun test program: `mpirun -np R mpi_ep MODE`. Modes: `check` (collectives, the EP
// exchange against the naive reference, EpMoeLayer bitwise against one process), `fail-load`
// (rank 1 fails while loading: every rank exits 1 with the error), `abort` (rank 1 throws
// outside any guard while rank 0 waits in a collective: MPI_Abort ends the job).
#include <cmath>
#include <cstdio>
#include <string>

#include "ep_test_model.h"
#include "ep_test_util.h"
#include "parallel/comm.h"
#include "parallel/ep_layer.h"
#include "runtime/cpu_features.h"
#include "util/error.h"

namespace moe::parallel::testing {
namespace {

int g_failures = 0;

void expect(bool ok, const std::string& what, const Comm& comm) {
  if (ok) return;
  std::fprintf(stderr, "mpi_ep: rank %d: FAILED: %s\n", comm.rank(), what.c_str());
  ++g_failures;
}

void check_collectives(Comm& comm) {
  const int R = comm.size(), me = comm.rank();
  std::vector<int64_t> send(static_cast<size_t>(R)), recv(static_cast<size_t>(R));
  for (int d = 0; d < R; ++d) send[size_t(d)] = int64_t(me) * 10 + d;  // rank 0 sends 0 rows to itself
  comm.all_to_all_counts(send.data(), recv.data());
  for (int s = 0; s < R; ++s) expect(recv[size_t(s)] == int64_t(s) * 10 + me, "all_to_all_counts", comm);
  const VLayout sl = VLayout::packed(send), rl = VLayout::packed(recv);
  std::vector<float> x(size_t(sl.total() * 3)), y(size_t(rl.total() * 3));
  for (int d = 0; d < R; ++d)
    for (int64_t i = 0; i < send[size_t(d)] * 3; ++i)
      x[size_t(sl.displs[size_t(d)] * 3 + i)] = float(me * 1000 + d * 100 + i);
  comm.all_to_all_v_f32(x.data(), sl, y.data(), rl, 3);
  for (int s = 0; s < R; ++s)
    for (int64_t i = 0; i < recv[size_t(s)] * 3; ++i)
      expect(y[size_t(rl.displs[size_t(s)] * 3 + i)] == float(s * 1000 + me * 100 + i), "all_to_all_v_f32", comm);
  expect(comm.all_reduce_sum(int64_t(me + 1)) == int64_t(R) * (R + 1) / 2, "all_reduce sum", comm);
  expect(comm.all_reduce_max(double(me)) == double(R - 1), "all_reduce max", comm);
  const auto strings = comm.all_gather_strings(std::string(size_t(me + 1), 'x'));
  for (int r = 0; r < R; ++r) expect(strings[size_t(r)] == std::string(size_t(r + 1), 'x'), "all_gather", comm);
  comm.barrier();
}

void check_exchange_cases(Comm& comm) {
  const int R = comm.size();
  struct Case {
    int n_expert, top_k;
    std::string placement;
    bool capacity;
  };
  for (const Case& c : {Case{7, 2, "contiguous", false}, Case{7, 3, "round-robin", false},
                        Case{R + 1, 1, "contiguous", false}, Case{6, 2, "round-robin", true}}) {
    const auto placement = ExpertPlacement::parse(c.placement, c.n_expert, R);
    // Rank 0 has no tokens; the others have different counts; expert 3 % E gets none.
    const int64_t T = comm.rank() == 0 ? 0 : 5 + 7 * comm.rank();
    const RankTokens mine = make_tokens(comm.rank(), T, c.top_k, c.n_expert, 3 % c.n_expert);
    DispatchOptions dispatch;
    if (c.capacity) {
      dispatch.mode = CapacityMode::kCapacity;
      dispatch.capacity_factor = 0.5;
    }
    EpExchangeStats stats;
    const std::string diff = check_exchange(comm, placement, mine, c.n_expert, dispatch, &stats);
    expect(diff.empty(), "exchange vs naive reference (" + c.placement + "): " + diff, comm);
    expect(stats.bytes_sent == ep_bytes_sent(R, kD, stats.rows_sent, stats.rows_received), "bytes formula", comm);
  }
}

void check_layer(Comm& comm) {
  const Model m = make_model(6, 2, 32, 24, true, false, false);
  const int64_t T = 29, D = m.config.d_model;
  const std::vector<float> x = random_vec(size_t(T * D), 99, 4.0f);  // [T, D] the same on every rank
  const auto placement = ExpertPlacement::round_robin(6, comm.size());
  const MoeLayerWeights mine = weights_of_rank(m, placement, comm.rank());
  for (bool scalar : {false, true}) {
    const Isa previous = set_isa_override(scalar ? Isa::kScalar : Isa::kAvx512Bf16);
    std::vector<float> want(size_t(T * D)), got(size_t(T * D));  // [T, D]
    MoeLayer(m.config, m.weights).forward(x.data(), T, want.data());
    EpMoeLayer layer(comm, placement, m.config, mine);
    layer.forward_replicated(x.data(), T, got.data());
    expect(std::memcmp(got.data(), want.data(), 4 * got.size()) == 0, "replicated layer bitwise", comm);
    if (scalar) {  // data parallel: rank r takes tokens [T r / R, T (r + 1) / R)
      const int64_t t0 = T * comm.rank() / comm.size(), t1 = T * (comm.rank() + 1) / comm.size();
      std::vector<float> part(size_t((t1 - t0) * D));  // [t1 - t0, D]
      layer.forward(x.data() + t0 * D, t1 - t0, part.data());
      expect(std::memcmp(part.data(), want.data() + t0 * D, 4 * part.size()) == 0, "data-parallel layer bitwise", comm);
    }
    set_isa_override(previous);
  }
}

int run(const std::string& mode) {
  auto comm = make_world_comm();
  if (mode == "check") {
    check_collectives(*comm);
    check_exchange_cases(*comm);
    check_layer(*comm);
    const int64_t failures = comm->all_reduce_sum(int64_t(g_failures));
    if (comm->rank() == 0)
      std::printf("mpi_ep: %d ranks (%s): %lld failures\n", comm->size(), comm->kind(), (long long)failures);
    return failures == 0 ? 0 : 1;
  }
  if (mode == "fail-load") {
    try {
      run_collectively(*comm, "loading experts", [&] {
        if (comm->rank() == 1) fail("io", "rank 1: model-00002.safetensors is truncated");
      });
    } catch (const Error& e) {
      std::fprintf(stderr, "moe: rank %d: %s\n", comm->rank(), e.what());
      return 1;
    }
    return 0;
  }
  if (mode == "abort") {
    try {
      if (comm->rank() == 1) fail("io", "rank 1 cannot map its experts");
      comm->barrier();  // rank 0 waits here for a rank that will never come
    } catch (const Error& e) {
      comm->abort(e.what());
    }
    return 0;
  }
  std::fprintf(stderr, "usage: mpi_ep check|fail-load|abort\n");
  return 2;
}

}  // namespace
}  // namespace moe::parallel::testing

int main(int argc, char** argv) { return moe::parallel::testing::run(argc > 1 ? argv[1] : ""); }
