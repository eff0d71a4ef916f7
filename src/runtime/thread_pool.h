// A small persistent thread pool. run(fn) calls fn(part) for every part in [0, size()): the
// calling thread runs part 0, then every thread (caller included) claims the parts nobody has
// started, so a worker that the OS has descheduled never holds up a call it has not joined.
// parallel_for splits [0, n) statically; parallel_for_dynamic hands out chunks from a shared
// counter, so uneven items (a hot expert) do not serialize the call.
// A call made from inside a pool task, or while another thread is using the pool,
// runs inline on the calling thread (so nested or concurrent use is safe, just serial).
// Idle threads spin for a bounded, adaptive time (yielding the core), then sleep on a futex.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace moe {

// The most threads a pool may have (the --threads / MOE_THREADS range is [1, kMaxThreads]).
inline constexpr int kMaxThreads = 1024;

class ThreadPool {
 public:
  // Throws moe::Error naming the thread count when the system cannot start that many threads.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(part) once for each part in [0, size()), on any of the pool's threads (each part on
  // exactly one thread, parts of one call never run twice); returns when all are done.
  template <typename Fn>
  void run(Fn&& fn) {
    using F = std::remove_reference_t<Fn>;
    run_impl(const_cast<void*>(static_cast<const void*>(&fn)), [](void* ctx, int t) { (*static_cast<F*>(ctx))(t); });
  }

  // fn(begin, end, part) over a static split of [0, n) into size() parts.
  template <typename Fn>
  void parallel_for(int64_t n, Fn&& fn) {
    if (n <= 0) return;
    const int parts = static_cast<int>(n < n_threads_ ? n : n_threads_);
    run([&](int t) {
      if (t >= parts) return;
      const int64_t begin = n * t / parts, end = n * (t + 1) / parts;
      fn(begin, end, t);
    });
  }

  // fn(begin, end, part) over chunks of `chunk` items taken from a shared counter.
  template <typename Fn>
  void parallel_for_dynamic(int64_t n, int64_t chunk, Fn&& fn) {
    if (n <= 0) return;
    if (chunk < 1) chunk = 1;
    std::atomic<int64_t> next{0};
    run([&](int t) {
      for (;;) {
        const int64_t begin = next.fetch_add(chunk, std::memory_order_relaxed);
        if (begin >= n) return;
        fn(begin, begin + chunk < n ? begin + chunk : n, t);
      }
    });
  }

 private:
  using Trampoline = void (*)(void*, int);
  void run_impl(void* ctx, Trampoline tramp);
  void worker_loop();
  // Claims and runs parts of job `gen` until none is left unclaimed; returns how many it ran.
  int run_claimed_parts(uint32_t gen);
  void wait_for_job(uint32_t seen, int64_t spin_ns);
  void wait_until_finished();
  void stop_workers();

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex busy_;  // held by the thread that owns the current job
  void* job_ctx_ = nullptr;
  Trampoline job_fn_ = nullptr;
  // High 32 bits: the job's generation; low 32 bits: parts not yet claimed (claimed top down).
  alignas(64) std::atomic<uint64_t> job_word_{0};
  alignas(64) std::atomic<uint32_t> generation_{0};  // futex word the idle workers sleep on
  std::atomic<uint32_t> sleeping_workers_{0};
  alignas(64) std::atomic<uint32_t> unfinished_{0};  // parts 1.. not finished yet; futex word of the caller
  std::atomic<uint32_t> caller_sleeping_{0};
  std::atomic<bool> stop_{false};
};

// The process-wide pool used by kernels and layers. Created on first use with MOE_THREADS or
// the CPUs this process may use (affinity and cgroup quota, runtime/process_limits.h);
// set_num_threads() replaces it (n < 1: that default). Asking for more threads than usable
// CPUs works but warns once. Throws moe::Error when the threads cannot be started.
ThreadPool& thread_pool();
void set_num_threads(int n);
int num_threads();
// The thread count a fresh process uses: a valid MOE_THREADS, else process_usable_cpus().
int default_num_threads();
// A thread count in [1, kMaxThreads] written in decimal digits only (MOE_THREADS), else 0.
int parse_thread_count(const char* text);

}  // namespace moe
