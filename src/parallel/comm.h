// Comm: the collectives expert parallelism needs (all-to-all of counts, all-to-all-v of rows,
// all-reduce, barrier, abort), behind one interface with three implementations: Open MPI
// (comm_mpi.cc, compiled when MOE_HAVE_MPI is defined), in-process ranks as threads
// (comm_local.cc, for tests without mpirun) and a single-rank stub.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "util/error.h"

namespace moe::parallel {

enum class ReduceOp { kSum, kMax };
enum class ReduceType { kF32, kF64, kI64 };

// Layout of one side of an all-to-all-v: counts[r] elements to/from rank r, starting at
// element displs[r] of the buffer. Elements are `elem_bytes` wide (a row of D floats, an int32).
struct VLayout {
  std::vector<int64_t> counts;  // [R]
  std::vector<int64_t> displs;  // [R]
  int64_t total() const;        // sum of counts
  // Packed layout (displs = exclusive prefix sum of counts).
  static VLayout packed(std::vector<int64_t> counts);
};

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* kind() const = 0;  // "mpi", "local" or "single"

  // recv[s] = what rank s put in its send[rank()]. send, recv: [R].
  virtual void all_to_all_counts(const int64_t* send, int64_t* recv) = 0;

  // Rank r's elements send[send_layout.displs[d] ...] (send_layout.counts[d] of them) land at
  // recv[recv_layout.displs[r] ...] on rank d. recv_layout.counts[s] must equal what s sends here
  // (exchange the counts first with all_to_all_counts). Buffers must not overlap.
  virtual void all_to_all_v(const void* send, const VLayout& send_layout, void* recv, const VLayout& recv_layout,
                            int64_t elem_bytes) = 0;

  // In place: data[i] = op over ranks of data[i]; every rank gets the same result.
  virtual void all_reduce(void* data, int64_t n, ReduceType type, ReduceOp op) = 0;

  virtual void barrier() = 0;

  // Ends the whole job with the message: MPI aborts every process (MPI_Abort); the in-process
  // communicator wakes every rank blocked in a collective and makes it throw moe::Error("parallel").
  [[noreturn]] virtual void abort(const std::string& message) = 0;

  // Typed helpers over all_to_all_v / all_reduce. row_elems: elements per row (D for activations).
  void all_to_all_v_f32(const float* send, const VLayout& send_rows, float* recv, const VLayout& recv_rows,
                        int64_t row_elems);
  void all_to_all_v_i32(const int32_t* send, const VLayout& send_rows, int32_t* recv, const VLayout& recv_rows,
                        int64_t row_elems);
  void all_reduce_sum(std::vector<double>& v);
  void all_reduce_sum(std::vector<int64_t>& v);
  void all_reduce_max(std::vector<double>& v);
  int64_t all_reduce_sum(int64_t v);
  double all_reduce_max(double v);
  // Every rank receives every rank's bytes (a variable-length all-gather built on all_to_all_v).
  std::vector<std::string> all_gather_strings(const std::string& mine);
};

// The single-rank stub: rank 0 of 1; collectives copy or do nothing.
std::unique_ptr<Comm> make_single_comm();

// True when this build has the Open MPI communicator (MOE_HAVE_MPI).
bool mpi_built();
// True when the process was started by mpirun (OMPI_COMM_WORLD_SIZE or PMI_SIZE is set).
bool launched_by_mpirun();
// The MPI_COMM_WORLD communicator; initializes MPI (MPI_THREAD_FUNNELED) on first use and
// finalizes it when the last one is destroyed. Every MPI call is checked: a failure prints
// file, line, the call and MPI's message, then MPI_Abort()s all ranks. Throws moe::Error("parallel")
// when the build has no MPI.
std::unique_ptr<Comm> make_mpi_comm();
// MPI when launched by mpirun and built with MPI, otherwise the single-rank stub.
std::unique_ptr<Comm> make_world_comm();

// R in-process ranks that share one rendezvous; comms[r] must be used by one thread only.
std::vector<std::unique_ptr<Comm>> make_local_comms(int n_rank);

// Runs fn(comm) on R threads, one per in-process rank, and joins them. If a rank throws, the
// others are woken from their collectives (the group is aborted) and the first rank's error, in
// rank order among the original failures, is rethrown here.
void run_local_ranks(int n_rank, const std::function<void(Comm&)>& fn);

// What run_collectively throws: every rank has the same error, so each may exit normally (no
// abort needed to wake the others).
class CollectiveError : public Error {
 public:
  using Error::Error;
};

// Runs fn on every rank; if it throws on any rank, every rank throws CollectiveError("parallel") naming
// the failed ranks and their messages (so a rank that fails to load its weights stops all of
// them instead of leaving them waiting in the next collective). `what` names the step.
void run_collectively(Comm& comm, const char* what, const std::function<void()>& fn);

}  // namespace moe::parallel
