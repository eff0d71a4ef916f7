// ThreadPool: parts are claimed from one atomic word (generation | unclaimed count), so the caller
// and any awake worker share a call and a descheduled worker only delays parts it started.
// Waiting threads spin briefly, then yield the core, then sleep on a futex (Linux) or atomic wait.
#include "runtime/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <system_error>

#include "runtime/process_limits.h"
#include "util/error.h"
#include "util/log.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace moe {
namespace {

thread_local bool tls_in_pool_task = false;

// An idle worker spins at most kWorkerSpinNs before it sleeps (halved, down to kWorkerMinSpinNs,
// each time spinning did not let it join a job; reset when it did); the caller waits at most kCallerSpinNs for parts that
// workers are still running before it sleeps. Both only pause for kPauseOnlyNs, then yield the
// core each round, so a thread sharing the core (the caller, a worker, another process) runs.
constexpr int64_t kWorkerSpinNs = 300'000;
constexpr int64_t kCallerSpinNs = 100'000;
constexpr int64_t kPauseOnlyNs = 4'000;
constexpr int64_t kWorkerMinSpinNs = 30'000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Sleeps while *word == expected (spurious returns are fine: callers loop).
void futex_wait(std::atomic<uint32_t>& word, uint32_t expected) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
#else
  word.wait(expected, std::memory_order_seq_cst);
#endif
}

void futex_wake_all(std::atomic<uint32_t>& word) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#else
  word.notify_all();
#endif
}

// Spins until done() or `budget_ns` passed: pause first, then sched_yield each round. Returns done().
template <typename Done>
bool spin_until(Done done, int64_t budget_ns) {
  if (done()) return true;
  if (budget_ns <= 0) return false;
  const int64_t start = now_ns();
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      cpu_relax();
      if (done()) return true;
    }
    const int64_t elapsed = now_ns() - start;
    if (elapsed >= budget_ns) return false;
    if (elapsed >= kPauseOnlyNs) sched_yield();
  }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  if (n_threads_ > kMaxThreads)
    fail("threads", "{} threads asked for; the most a pool runs is {}", n_threads_, kMaxThreads);
  workers_.reserve(n_threads_ - 1);
  try {
    for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
  } catch (const std::system_error& e) {
    const size_t started = workers_.size() + 1;
    stop_workers();
    fail("threads",
         "{} threads asked for, but the system refused to start thread {} ({}); ask for fewer "
         "with --threads or MOE_THREADS",
         n_threads_, started + 1, e.what());
  }
}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  futex_wake_all(generation_);
  for (auto& w : workers_) w.join();
  workers_.clear();
}

int ThreadPool::run_claimed_parts(uint32_t gen) {
  int ran = 0;
  uint64_t w = job_word_.load(std::memory_order_acquire);
  for (;;) {
    const uint32_t left = static_cast<uint32_t>(w);
    if (static_cast<uint32_t>(w >> 32) != gen || left == 0) return ran;
    if (!job_word_.compare_exchange_weak(w, w - 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    // The claim made `left` ours: the job's fields stay valid until its last part finishes.
    job_fn_(job_ctx_, static_cast<int>(left));
    ++ran;
    if (unfinished_.fetch_sub(1, std::memory_order_seq_cst) == 1 && caller_sleeping_.load(std::memory_order_seq_cst)) {
      futex_wake_all(unfinished_);
    }
    w = job_word_.load(std::memory_order_acquire);
  }
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
  const uint32_t parts = static_cast<uint32_t>(n_threads_ - 1);  // parts 1..n-1 are shared out
  const uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
  job_ctx_ = ctx;
  job_fn_ = tramp;
  unfinished_.store(parts, std::memory_order_relaxed);
  job_word_.store((uint64_t{gen} << 32) | parts, std::memory_order_release);
  generation_.store(gen, std::memory_order_seq_cst);
  if (sleeping_workers_.load(std::memory_order_seq_cst) != 0) futex_wake_all(generation_);

  tls_in_pool_task = true;
  tramp(ctx, 0);
  run_claimed_parts(gen);  // whatever no worker has started yet
  tls_in_pool_task = false;
  wait_until_finished();
}

void ThreadPool::wait_until_finished() {
  auto finished = [this] { return unfinished_.load(std::memory_order_acquire) == 0; };
  if (spin_until(finished, kCallerSpinNs)) return;
  caller_sleeping_.store(1, std::memory_order_seq_cst);
  for (uint32_t u; (u = unfinished_.load(std::memory_order_seq_cst)) != 0;) futex_wait(unfinished_, u);
  caller_sleeping_.store(0, std::memory_order_relaxed);
}

void ThreadPool::wait_for_job(uint32_t seen, int64_t spin_ns) {
  auto arrived = [&] { return generation_.load(std::memory_order_acquire) != seen; };
  if (spin_until(arrived, spin_ns)) return;
  sleeping_workers_.fetch_add(1, std::memory_order_seq_cst);
  while (generation_.load(std::memory_order_seq_cst) == seen) futex_wait(generation_, seen);
  sleeping_workers_.fetch_sub(1, std::memory_order_relaxed);
}

void ThreadPool::worker_loop() {
  tls_in_pool_task = true;
  uint32_t seen = 0;
  int64_t spin_ns = kWorkerSpinNs;
  for (;;) {
    wait_for_job(seen, spin_ns);
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    // Spinning pays when it lets this thread join jobs. When the job was already taken (this
    // thread was descheduled, or the jobs are too small to share), spin less and sleep sooner.
    if (run_claimed_parts(seen) > 0) {
      spin_ns = kWorkerSpinNs;
    } else {
      spin_ns = std::max(kWorkerMinSpinNs, spin_ns / 2);
    }
  }
}

namespace {

std::unique_ptr<ThreadPool>& pool_storage() {
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}

std::mutex& pool_mutex() {
  static std::mutex m;
  return m;
}

void warn_if_oversubscribed(int n) {
  static std::atomic<bool> warned{false};
  const int usable = process_usable_cpus();
  if (n > usable && !warned.exchange(true)) {
    log_warn(
        "{} threads asked for, but this process may use only {} CPU{} (affinity and cgroup quota): "
        "threads will take turns on the cores",
        n, usable, usable == 1 ? "" : "s");
  }
}

}  // namespace

int parse_thread_count(const char* text) {
  if (text == nullptr || *text == '\0' || std::strlen(text) > 6) return 0;
  int n = 0;
  for (const char* p = text; *p; ++p) {
    if (*p < '0' || *p > '9') return 0;
    n = n * 10 + (*p - '0');
  }
  return n >= 1 && n <= kMaxThreads ? n : 0;
}

int default_num_threads() {
  if (const char* v = std::getenv("MOE_THREADS")) {
    if (const int n = parse_thread_count(v)) return n;
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true)) log_warn("MOE_THREADS={} is not a thread count in [1, {}]; ignored", v, kMaxThreads);
  }
  return process_usable_cpus();
}

ThreadPool& thread_pool() {
  std::lock_guard<std::mutex> lock(pool_mutex());
  auto& p = pool_storage();
  if (!p) {
    const int n = default_num_threads();
    warn_if_oversubscribed(n);
    p = std::make_unique<ThreadPool>(n);
  }
  return *p;
}

// Not safe while another thread is inside the pool: call between runs.
void set_num_threads(int n) {
  std::lock_guard<std::mutex> lock(pool_mutex());
  auto& p = pool_storage();
  if (n < 1) n = default_num_threads();
  if (p && p->size() == n) return;
  warn_if_oversubscribed(n);
  p.reset();  // the old workers stop before the new ones start
  p = std::make_unique<ThreadPool>(n);
}

int num_threads() { return thread_pool().size(); }

}  // namespace moe
