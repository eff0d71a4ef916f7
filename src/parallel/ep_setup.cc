// init_from_args and the expert-parallel predictions for inspect.
#include "parallel/ep_setup.h"

#include <cmath>
#include <cstdlib>

#include "parallel/ep_exchange.h"
#include "util/error.h"

namespace moe::parallel {

namespace {
std::shared_ptr<Comm>& world_comm() {
  static std::shared_ptr<Comm> comm;
  return comm;
}

int mpirun_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  return 1;
}
}  // namespace

EpContext init_from_args(const EpArgs& args) {
  if (args.ep < 1) fail_usage("parallel", "--ep must be >= 1, got {}", args.ep);
  if (args.placement != "contiguous" && args.placement != "round-robin" && args.placement.rfind("file:", 0) != 0)
    fail_usage("parallel", "--ep-placement '{}': expected contiguous, round-robin or file:PATH", args.placement);
  const int world = launched_by_mpirun() ? mpirun_world_size() : 1;
  if (args.ep > 1 && !mpi_built())
    fail("parallel", "--ep {} needs MPI, but this build has none (install libopenmpi-dev and reconfigure)", args.ep);
  if (args.ep > 1 && !launched_by_mpirun())
    fail_usage("parallel", "--ep {0} runs one process per rank: start it as 'mpirun -np {0} moe ... --ep {0}'",
               args.ep);
  if (world != args.ep)
    fail_usage("parallel", "mpirun started {} processes but --ep is {}: they must be equal", world, args.ep);
  EpContext ctx;
  ctx.comm = args.ep > 1 ? std::shared_ptr<Comm>(make_mpi_comm()) : std::shared_ptr<Comm>(make_single_comm());
  ctx.placement_spec = args.placement;
  if (ctx.comm->size() > 1) world_comm() = ctx.comm;
  return ctx;
}

void abort_world_on_error(const std::exception& error) {
  const std::shared_ptr<Comm>& comm = world_comm();
  if (!comm || comm->size() < 2 || dynamic_cast<const CollectiveError*>(&error)) return;
  comm->abort(error.what());
}

void release_world() { world_comm().reset(); }

std::vector<int64_t> ep_weight_bytes_per_rank(const ExpertPlacement& placement, int64_t expert_bytes_per_layer,
                                              int n_moe_layers, int64_t replicated_bytes) {
  std::vector<int64_t> bytes(static_cast<size_t>(placement.n_rank()), replicated_bytes);
  for (int r = 0; r < placement.n_rank(); ++r)
    bytes[size_t(r)] += int64_t(placement.experts_of(r).size()) * expert_bytes_per_layer * n_moe_layers;
  return bytes;
}

int64_t ep_predicted_bytes_per_layer(int64_t n_tokens, int top_k, int64_t d_model, int n_rank) {
  const auto rows = static_cast<int64_t>(std::llround(double(n_tokens) * top_k * (n_rank - 1) / n_rank));
  return ep_bytes_sent(n_rank, d_model, rows, rows);
}

}  // namespace moe::parallel
