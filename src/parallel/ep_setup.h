// What the CLI calls to turn `--ep R --ep-placement P` into a communicator and a placement, plus
// the expert-parallel predictions `moe inspect --ep R` prints (weight bytes per rank, bytes each
// rank sends per MoE layer), so the command files stay thin.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "parallel/comm.h"
#include "parallel/placement.h"

namespace moe::parallel {

struct EpArgs {
  int ep = 1;                            // --ep R: ranks the routed experts are spread over (1 = off)
  std::string placement = "contiguous";  // --ep-placement contiguous|round-robin|file:PATH
};

struct EpContext {
  std::shared_ptr<Comm> comm;  // MPI under mpirun with --ep R > 1, else the single-rank stub
  std::string placement_spec;
  bool is_root() const { return comm->rank() == 0; }  // rank 0 prints
  ExpertPlacement placement(int n_expert) const {
    return ExpertPlacement::parse(placement_spec, n_expert, comm->size());
  }
};

// Checks --ep against how the process was started and builds the communicator. Usage errors
// (exit 2): --ep < 1; --ep R > 1 without mpirun; mpirun -np N with N != R. moe::Error when the
// build has no MPI. The placement spec is checked here too (a file is read per layer shape later).
EpContext init_from_args(const EpArgs& args);

// The multi-rank communicator of this process, kept alive past the command (so that an error
// unwinding the command does not finalize MPI while other ranks still wait in a collective).
// abort_world_on_error(): on a multi-rank job, an error that is not a CollectiveError (which
// every rank already has) aborts the whole job with the message instead of leaving the other
// ranks waiting; it returns when there is nothing to abort. release_world() drops the
// communicator (MPI is finalized when the last reference goes); call it once the command ended.
void abort_world_on_error(const std::exception& error);
void release_world();

// Weight bytes each rank holds: its routed experts over all MoE layers plus the replicated rest.
std::vector<int64_t> ep_weight_bytes_per_rank(const ExpertPlacement& placement, int64_t expert_bytes_per_layer,
                                              int n_moe_layers, int64_t replicated_bytes);

// Bytes one rank sends (and receives) per MoE layer with uniform routing and T tokens on each
// rank: 8 (R - 1) + rows (4 D + 8) + rows 4 D, rows = T K (R - 1) / R (rounded to the nearest).
int64_t ep_predicted_bytes_per_layer(int64_t n_tokens, int top_k, int64_t d_model, int n_rank);

}  // namespace moe::parallel
