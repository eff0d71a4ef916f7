// The expert-parallel exchange, cut between dispatch and combine of one MoE layer: each rank
// sends the rows of its RoutingPlan (token activations + expert id + routing weight) to the
// ranks owning their experts (all-to-all of counts, then all-to-all-v), the owners compute their
// experts, and the results travel back in the order they came, into the plan's row order.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "moe/routing_plan.h"
#include "parallel/comm.h"
#include "parallel/placement.h"

namespace moe::parallel {

// The rows this rank computes, gathered from every rank, expert-major: local experts in
// increasing global id, inside one expert the source ranks in order, inside one source its
// plan's row order (token order). With each rank holding a consecutive block of the tokens, an
// expert's rows are therefore exactly the rows one process would give it for all the tokens.
struct EpLocalBatch {
  int64_t d_model = 0;               // D
  std::vector<int> experts;          // [n_local] global ids of this rank's experts
  std::vector<int64_t> offsets;      // [n_local + 1] rows of local expert j: [offsets[j], offsets[j + 1])
  std::vector<float> x;              // [n_rows, D] token activations
  std::vector<int32_t> expert_ids;   // [n_rows] global expert id per row
  std::vector<float> weights;        // [n_rows] routing weight per row
  std::vector<int32_t> source_rank;  // [n_rows] rank the row came from
  int64_t n_rows() const { return offsets.empty() ? 0 : offsets.back(); }
};

// Bytes count what crosses between ranks (rows a rank keeps for itself are not counted):
//   sent = 8 (R - 1) [counts] + rows_sent (4 D + 8) [rows, ids, weights] + rows_received 4 D [results]
//   received = 8 (R - 1) + rows_received (4 D + 8) + rows_sent 4 D
struct EpExchangeStats {
  int64_t rows_sent = 0;      // this rank's plan rows computed on another rank
  int64_t rows_received = 0;  // rows from other ranks computed here
  int64_t rows_local = 0;     // this rank's rows computed here
  int64_t bytes_sent = 0;
  int64_t bytes_received = 0;
  double pack_ms = 0;     // packing, regrouping and unpacking rows (memory work)
  double comm_ms = 0;     // inside the collectives (transfer and waiting for the other ranks)
  double compute_ms = 0;  // the compute callback
};

// Predicted bytes one rank sends, the formula above (received: swap the two row counts); the
// stats' bytes are measured from the layouts the collectives really moved.
int64_t ep_bytes_sent(int n_rank, int64_t d_model, int64_t rows_sent, int64_t rows_received);

// Computes y [n_rows, D] (expert-major, like batch.x) for the rows of this rank's experts.
using EpExpertCompute = std::function<void(const EpLocalBatch& batch, float* y)>;

struct EpExchangeArgs {
  const RoutingPlan* plan = nullptr;  // this rank's tokens
  const float* x = nullptr;           // [T, D] this rank's token activations
  int64_t d_model = 0;
  EpExpertCompute compute;
  float* y_rows = nullptr;  // [plan n_rows, D] out: expert outputs in the plan's row order
};

// Buffers kept between calls (a layer owns one) so a call neither allocates nor faults in pages.
struct EpExchangeWorkspace {
  std::vector<int32_t> send_row;   // [n_rows] plan row sent at each send position
  std::vector<float> send_x;       // [n_rows, D] rows in send order, then the results coming back
  std::vector<int32_t> send_meta;  // [n_rows, 2] expert id, weight bits
  std::vector<float> recv_x;       // [n_recv, D] rows as they arrive, then the results going back
  std::vector<int32_t> recv_meta;  // [n_recv, 2]
  std::vector<int64_t> perm;       // [n_recv] batch row of each arrived row
  std::vector<float> y_batch;      // [n_recv, D] expert outputs, expert-major
  EpLocalBatch batch;
};

// Collective: every rank calls it once per layer call, also with no tokens. workspace may be null.
void ep_exchange(Comm& comm, const ExpertPlacement& placement, const EpExchangeArgs& args, EpExchangeStats* stats,
                 EpExchangeWorkspace* workspace = nullptr);

}  // namespace moe::parallel
