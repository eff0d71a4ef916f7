// A small persistent thread pool. The calling thread takes part as thread 0.
// parallel_for splits [0, n) statically; parallel_for_dynamic hands out chunks from a
// shared counter, so uneven items (a hot expert) do not serialize the call.
// A call made from inside a pool task, or while another thread is using the pool,
// runs inline on the calling thread (so nested or concurrent use is safe, just serial).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace moe {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(thread_index) once on each of size() threads; returns when all are done.
  template <typename Fn>
  void run(Fn&& fn) {
    using F = std::remove_reference_t<Fn>;
    run_impl(const_cast<void*>(static_cast<const void*>(&fn)), [](void* ctx, int t) { (*static_cast<F*>(ctx))(t); });
  }

  // fn(begin, end, thread_index) over a static split of [0, n) into size() parts.
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

  // fn(begin, end, thread_index) over chunks of `chunk` items taken from a shared counter.
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
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex busy_;  // held by the thread that owns the current job
  void* job_ctx_ = nullptr;
  Trampoline job_fn_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

// The process-wide pool used by kernels and layers. Created on first use with
// MOE_THREADS or the hardware concurrency; set_num_threads() replaces it.
ThreadPool& thread_pool();
void set_num_threads(int n);
int num_threads();

}  // namespace moe
