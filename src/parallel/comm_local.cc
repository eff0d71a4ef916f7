// In-process communicator: R ranks are threads sharing one rendezvous. Each collective posts
// pointers, meets the others at a barrier, reads what it needs straight from their buffers,
// and meets them again so no buffer is released while another rank still reads it.
// Kernels called from several rank threads at once run inline on each (thread_pool() is busy),
// which is slower but gives the same numbers.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "parallel/comm.h"
#include "util/check.h"
#include "util/error.h"

namespace moe::parallel {
namespace {

struct Posted {
  const void* send = nullptr;
  const VLayout* send_layout = nullptr;
  void* data = nullptr;
};

class Group {
 public:
  explicit Group(int n) : n_(n), posted_(size_t(n)) {}
  int size() const { return n_; }
  Posted& posted(int r) { return posted_[size_t(r)]; }

  // Blocks until every rank arrives; throws moe::Error when the group was aborted meanwhile.
  void wait_all() {
    std::unique_lock<std::mutex> lock(mu_);
    throw_if_aborted();
    if (++arrived_ == n_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    const uint64_t gen = generation_;
    cv_.wait(lock, [&] { return generation_ != gen || aborted_; });
    throw_if_aborted();
  }

  // Marks the group aborted by `rank` (the first caller wins) and wakes every waiting rank.
  void abort(int rank, const std::string& message) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!aborted_) {
      aborted_ = true;
      origin_ = rank;
      message_ = message;
    }
    cv_.notify_all();
  }

  int origin() {
    std::lock_guard<std::mutex> lock(mu_);
    return aborted_ ? origin_ : -1;
  }

 private:
  void throw_if_aborted() const {
    if (aborted_) fail("parallel", "rank {} aborted the job: {}", origin_, message_);
  }

  const int n_;
  std::vector<Posted> posted_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  bool aborted_ = false;
  int origin_ = -1;
  std::string message_;
};

template <typename T>
void reduce_into(T* acc, const T* x, int64_t n, ReduceOp op) {
  if (op == ReduceOp::kSum)
    for (int64_t i = 0; i < n; ++i) acc[i] += x[i];
  else
    for (int64_t i = 0; i < n; ++i) acc[i] = std::max(acc[i], x[i]);
}

int64_t type_bytes(ReduceType type) { return type == ReduceType::kF32 ? 4 : 8; }

class LocalComm final : public Comm {
 public:
  LocalComm(std::shared_ptr<Group> group, int rank) : group_(std::move(group)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return group_->size(); }
  const char* kind() const override { return "local"; }

  void all_to_all_counts(const int64_t* send, int64_t* recv) override {
    group_->posted(rank_).send = send;
    group_->wait_all();
    for (int s = 0; s < size(); ++s) recv[s] = static_cast<const int64_t*>(group_->posted(s).send)[rank_];
    group_->wait_all();
  }

  void all_to_all_v(const void* send, const VLayout& sl, void* recv, const VLayout& rl, int64_t elem_bytes) override {
    MOE_CHECK(int(sl.counts.size()) == size() && int(rl.counts.size()) == size());
    group_->posted(rank_).send = send;
    group_->posted(rank_).send_layout = &sl;
    group_->wait_all();
    for (int s = 0; s < size(); ++s) {
      const Posted& p = group_->posted(s);
      const int64_t n = p.send_layout->counts[size_t(rank_)];
      MOE_CHECK_MSG(n == rl.counts[size_t(s)], "all_to_all_v: receive count differs from what the sender sends");
      if (n == 0) continue;
      std::memcpy(static_cast<char*>(recv) + rl.displs[size_t(s)] * elem_bytes,
                  static_cast<const char*>(p.send) + p.send_layout->displs[size_t(rank_)] * elem_bytes,
                  size_t(n * elem_bytes));
    }
    group_->wait_all();
  }

  void all_reduce(void* data, int64_t n, ReduceType type, ReduceOp op) override {
    group_->posted(rank_).data = data;
    group_->wait_all();
    // Every rank reduces in rank order, so all get the same bits.
    std::vector<char> acc(size_t(n * type_bytes(type)));
    std::memcpy(acc.data(), group_->posted(0).data, acc.size());
    for (int s = 1; s < size(); ++s) {
      const void* x = group_->posted(s).data;
      switch (type) {
        case ReduceType::kF32:
          reduce_into(reinterpret_cast<float*>(acc.data()), static_cast<const float*>(x), n, op);
          break;
        case ReduceType::kF64:
          reduce_into(reinterpret_cast<double*>(acc.data()), static_cast<const double*>(x), n, op);
          break;
        case ReduceType::kI64:
          reduce_into(reinterpret_cast<int64_t*>(acc.data()), static_cast<const int64_t*>(x), n, op);
          break;
      }
    }
    group_->wait_all();
    if (!acc.empty()) std::memcpy(data, acc.data(), acc.size());
  }

  void barrier() override { group_->wait_all(); }

  [[noreturn]] void abort(const std::string& message) override {
    group_->abort(rank_, message);
    fail("parallel", "rank {} aborted the job: {}", rank_, message);
  }

  Group& group() { return *group_; }

 private:
  std::shared_ptr<Group> group_;
  int rank_;
};

}  // namespace

std::vector<std::unique_ptr<Comm>> make_local_comms(int n_rank) {
  if (n_rank < 1) fail("parallel", "in-process communicator: rank count must be >= 1, got {}", n_rank);
  auto group = std::make_shared<Group>(n_rank);
  std::vector<std::unique_ptr<Comm>> comms;
  for (int r = 0; r < n_rank; ++r) comms.push_back(std::make_unique<LocalComm>(group, r));
  return comms;
}

void run_local_ranks(int n_rank, const std::function<void(Comm&)>& fn) {
  std::vector<std::unique_ptr<Comm>> comms = make_local_comms(n_rank);
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n_rank));
  std::vector<std::thread> threads;
  for (int r = 0; r < n_rank; ++r) {
    threads.emplace_back([&, r] {
      auto& comm = static_cast<LocalComm&>(*comms[size_t(r)]);
      try {
        fn(comm);
      } catch (const std::exception& e) {
        errors[size_t(r)] = std::current_exception();
        comm.group().abort(r, e.what());  // wake the ranks waiting for this one
      } catch (...) {
        errors[size_t(r)] = std::current_exception();
        comm.group().abort(r, "unknown exception");
      }
    });
  }
  for (auto& t : threads) t.join();
  const int origin = static_cast<LocalComm&>(*comms[0]).group().origin();
  if (origin >= 0) std::rethrow_exception(errors[size_t(origin)]);
}

}  // namespace moe::parallel
