// Comm helpers shared by every implementation (typed wrappers, all-gather of strings, the
// collective error check) and the single-rank stub.
#include "parallel/comm.h"

#include <cstdlib>
#include <cstring>
#include <exception>

#include "util/check.h"
#include "util/error.h"

namespace moe::parallel {

int64_t VLayout::total() const {
  int64_t n = 0;
  for (int64_t c : counts) n += c;
  return n;
}

VLayout VLayout::packed(std::vector<int64_t> counts) {
  VLayout l;
  l.displs.resize(counts.size());
  int64_t at = 0;
  for (size_t r = 0; r < counts.size(); ++r) {
    l.displs[r] = at;
    at += counts[r];
  }
  l.counts = std::move(counts);
  return l;
}

namespace {

VLayout scaled(const VLayout& rows, int64_t row_elems) {
  VLayout l = rows;
  for (auto& c : l.counts) c *= row_elems;
  for (auto& d : l.displs) d *= row_elems;
  return l;
}

}  // namespace

void Comm::all_to_all_v_f32(const float* send, const VLayout& send_rows, float* recv, const VLayout& recv_rows,
                            int64_t row_elems) {
  all_to_all_v(send, send_rows, recv, recv_rows, row_elems * int64_t(sizeof(float)));
}

void Comm::all_to_all_v_i32(const int32_t* send, const VLayout& send_rows, int32_t* recv, const VLayout& recv_rows,
                            int64_t row_elems) {
  all_to_all_v(send, scaled(send_rows, row_elems), recv, scaled(recv_rows, row_elems), int64_t(sizeof(int32_t)));
}

void Comm::all_reduce_sum(std::vector<double>& v) {
  all_reduce(v.data(), int64_t(v.size()), ReduceType::kF64, ReduceOp::kSum);
}
void Comm::all_reduce_sum(std::vector<int64_t>& v) {
  all_reduce(v.data(), int64_t(v.size()), ReduceType::kI64, ReduceOp::kSum);
}
void Comm::all_reduce_max(std::vector<double>& v) {
  all_reduce(v.data(), int64_t(v.size()), ReduceType::kF64, ReduceOp::kMax);
}
int64_t Comm::all_reduce_sum(int64_t v) {
  all_reduce(&v, 1, ReduceType::kI64, ReduceOp::kSum);
  return v;
}
double Comm::all_reduce_max(double v) {
  all_reduce(&v, 1, ReduceType::kF64, ReduceOp::kMax);
  return v;
}

std::vector<std::string> Comm::all_gather_strings(const std::string& mine) {
  const int n = size();
  std::vector<int64_t> send_counts(n, int64_t(mine.size())), recv_counts(n);
  all_to_all_counts(send_counts.data(), recv_counts.data());
  VLayout send_layout{send_counts, std::vector<int64_t>(n, 0)};  // every rank reads the same bytes
  VLayout recv_layout = VLayout::packed(recv_counts);
  std::string all(size_t(recv_layout.total()), '\0');
  all_to_all_v(mine.data(), send_layout, all.data(), recv_layout, 1);
  std::vector<std::string> out(n);
  for (int r = 0; r < n; ++r) out[r] = all.substr(size_t(recv_layout.displs[r]), size_t(recv_counts[r]));
  return out;
}

void run_collectively(Comm& comm, const char* what, const std::function<void()>& fn) {
  std::string error;
  try {
    fn();
  } catch (const std::exception& e) {
    error = e.what();
    if (error.empty()) error = "unknown error";
  }
  if (comm.all_reduce_sum(int64_t(error.empty() ? 0 : 1)) == 0) return;
  const std::vector<std::string> errors = comm.all_gather_strings(error);
  std::string message = fmt::format("{} failed on", what);
  for (int r = 0; r < comm.size(); ++r)
    if (!errors[r].empty()) message += fmt::format(" rank {} ({})", r, errors[r]);
  throw CollectiveError("parallel", message);
}

namespace {

class SingleComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char* kind() const override { return "single"; }
  void all_to_all_counts(const int64_t* send, int64_t* recv) override { recv[0] = send[0]; }
  void all_to_all_v(const void* send, const VLayout& sl, void* recv, const VLayout& rl, int64_t elem_bytes) override {
    MOE_CHECK(sl.counts.size() == 1 && rl.counts.size() == 1 && sl.counts[0] == rl.counts[0]);
    if (sl.counts[0] == 0) return;
    std::memcpy(static_cast<char*>(recv) + rl.displs[0] * elem_bytes,
                static_cast<const char*>(send) + sl.displs[0] * elem_bytes, size_t(sl.counts[0] * elem_bytes));
  }
  void all_reduce(void*, int64_t, ReduceType, ReduceOp) override {}
  void barrier() override {}
  [[noreturn]] void abort(const std::string& message) override { fail("parallel", "aborted: {}", message); }
};

}  // namespace

std::unique_ptr<Comm> make_single_comm() { return std::make_unique<SingleComm>(); }

bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMI_SIZE") != nullptr;
}

#ifdef MOE_HAVE_MPI
bool mpi_built() { return true; }
#else
bool mpi_built() { return false; }
std::unique_ptr<Comm> make_mpi_comm() {
  fail("parallel",
       "this build of moe has no MPI (Open MPI was not found at configure time); install libopenmpi-dev "
       "and reconfigure, or run without --ep / mpirun");
}
#endif

std::unique_ptr<Comm> make_world_comm() {
  if (mpi_built() && launched_by_mpirun()) return make_mpi_comm();
  return make_single_comm();
}

}  // namespace moe::parallel
