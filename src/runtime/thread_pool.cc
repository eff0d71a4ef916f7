// ThreadPool: workers spin briefly on a generation counter, then sleep on atomic wait.
#include "runtime/thread_pool.h"

#include <cstdlib>
#include <memory>

#include "util/check.h"

namespace moe {
namespace {

thread_local bool tls_in_pool_task = false;
constexpr int kSpinIterations = 20000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::run_impl(void* ctx, Trampoline tramp) {
  std::unique_lock<std::mutex> lock(busy_, std::try_to_lock);
  if (tls_in_pool_task || !lock.owns_lock() || n_threads_ == 1) {
    // Nested or concurrent use: run every part inline, in order.
    const bool was = tls_in_pool_task;
    tls_in_pool_task = true;
    for (int t = 0; t < n_threads_; ++t) tramp(ctx, t);
    tls_in_pool_task = was;
    return;
  }
  job_ctx_ = ctx;
  job_fn_ = tramp;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();

  tls_in_pool_task = true;
  tramp(ctx, 0);
  tls_in_pool_task = false;

  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
    if (spin < kSpinIterations) {
      cpu_relax();
    } else {
      int p = pending_.load(std::memory_order_acquire);
      if (p != 0) pending_.wait(p, std::memory_order_acquire);
    }
  }
}

void ThreadPool::worker_loop(int index) {
  tls_in_pool_task = true;
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && spin < kSpinIterations; ++spin) {
      cpu_relax();
      g = generation_.load(std::memory_order_acquire);
    }
    while (g == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    job_fn_(job_ctx_, index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_all();
  }
}

namespace {

int default_threads() {
  if (const char* v = std::getenv("MOE_THREADS")) {
    const int n = std::atoi(v);
    if (n > 0) return n;
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

std::unique_ptr<ThreadPool>& pool_storage() {
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}

std::mutex& pool_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

ThreadPool& thread_pool() {
  std::lock_guard<std::mutex> lock(pool_mutex());
  auto& p = pool_storage();
  if (!p) p = std::make_unique<ThreadPool>(default_threads());
  return *p;
}

// Not safe while another thread is inside the pool: call between runs.
void set_num_threads(int n) {
  std::lock_guard<std::mutex> lock(pool_mutex());
  auto& p = pool_storage();
  if (n < 1) n = default_threads();
  if (p && p->size() == n) return;
  p = std::make_unique<ThreadPool>(n);
}

int num_threads() { return thread_pool().size(); }

}  // namespace moe
