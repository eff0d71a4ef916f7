// Open MPI communicator over a duplicate of MPI_COMM_WORLD. Errors are returned (not fatal
// inside MPI), every call is checked, and a failure prints file:line, the call and MPI's message
// before MPI_Abort ends every rank, so a broken job never hangs.
#ifdef MOE_HAVE_MPI

// Only MPI's C API is used; its deprecated C++ bindings stay out.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "parallel/comm.h"
#include "util/check.h"
#include "util/error.h"

namespace moe::parallel {
namespace {

[[noreturn]] void mpi_die(const char* file, int line, const char* what, const std::string& message) {
  int rank = -1, initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::fprintf(stderr, "moe: [parallel] rank %d: %s:%d: %s: %s\n", rank, file, line, what, message.c_str());
  std::fflush(stderr);
  if (initialized) MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();
}

void mpi_check(int rc, const char* file, int line, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) std::snprintf(text, sizeof(text), "MPI error code %d", rc);
  mpi_die(file, line, call, text);
}

#define MOE_MPI(call) mpi_check((call), __FILE__, __LINE__, #call)

int to_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX)
    mpi_die(__FILE__, __LINE__, what, fmt::format("{} does not fit MPI's int count (limit {})", v, INT_MAX));
  return static_cast<int>(v);
}

// MPI is initialized once per process and finalized when the last communicator goes away.
std::mutex g_mpi_mu;
int g_mpi_users = 0;
bool g_mpi_we_initialized = false;

MPI_Datatype reduce_type(ReduceType t) {
  switch (t) {
    case ReduceType::kF32:
      return MPI_FLOAT;
    case ReduceType::kF64:
      return MPI_DOUBLE;
    case ReduceType::kI64:
      return MPI_INT64_T;
  }
  return MPI_DATATYPE_NULL;
}

class MpiComm final : public Comm {
 public:
  MpiComm() {
    {
      std::lock_guard<std::mutex> lock(g_mpi_mu);
      int initialized = 0;
      MOE_MPI(MPI_Initialized(&initialized));
      if (!initialized) {
        int provided = 0;
        MOE_MPI(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
        g_mpi_we_initialized = true;
      }
      ++g_mpi_users;
    }
    MOE_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    MOE_MPI(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
    MOE_MPI(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    MOE_MPI(MPI_Comm_rank(comm_, &rank_));
    MOE_MPI(MPI_Comm_size(comm_, &size_));
  }

  ~MpiComm() override {
    MOE_MPI(MPI_Comm_free(&comm_));
    std::lock_guard<std::mutex> lock(g_mpi_mu);
    if (--g_mpi_users == 0 && g_mpi_we_initialized) {
      MOE_MPI(MPI_Finalize());
      g_mpi_we_initialized = false;
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* kind() const override { return "mpi"; }

  void all_to_all_counts(const int64_t* send, int64_t* recv) override {
    MOE_MPI(MPI_Alltoall(send, 1, MPI_INT64_T, recv, 1, MPI_INT64_T, comm_));
  }

  void all_to_all_v(const void* send, const VLayout& sl, void* recv, const VLayout& rl, int64_t elem_bytes) override {
    MOE_CHECK(int(sl.counts.size()) == size_ && int(rl.counts.size()) == size_ && elem_bytes > 0);
    // One element = one contiguous MPI type, so counts stay in rows and fit MPI's int.
    MPI_Datatype elem;
    MOE_MPI(MPI_Type_contiguous(to_int(elem_bytes, "element bytes"), MPI_BYTE, &elem));
    MOE_MPI(MPI_Type_commit(&elem));
    const auto n = static_cast<size_t>(size_);
    std::vector<int> sc(n), sd(n), rc(n), rd(n);
    for (int r = 0; r < size_; ++r) {
      sc[size_t(r)] = to_int(sl.counts[size_t(r)], "all_to_all_v send count");
      sd[size_t(r)] = to_int(sl.displs[size_t(r)], "all_to_all_v send displacement");
      rc[size_t(r)] = to_int(rl.counts[size_t(r)], "all_to_all_v receive count");
      rd[size_t(r)] = to_int(rl.displs[size_t(r)], "all_to_all_v receive displacement");
    }
    MOE_MPI(MPI_Alltoallv(send, sc.data(), sd.data(), elem, recv, rc.data(), rd.data(), elem, comm_));
    MOE_MPI(MPI_Type_free(&elem));
  }

  void all_reduce(void* data, int64_t n, ReduceType type, ReduceOp op) override {
    if (n == 0) return;
    MOE_MPI(MPI_Allreduce(MPI_IN_PLACE, data, to_int(n, "all_reduce count"), reduce_type(type),
                          op == ReduceOp::kSum ? MPI_SUM : MPI_MAX, comm_));
  }

  void barrier() override { MOE_MPI(MPI_Barrier(comm_)); }

  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "moe: [parallel] rank %d aborts the job: %s\n", rank_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::abort();
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

std::unique_ptr<Comm> make_mpi_comm() { return std::make_unique<MpiComm>(); }

}  // namespace moe::parallel

#endif  // MOE_HAVE_MPI
