// Thread pool: every index visited exactly once, static and dynamic splits, nested and concurrent use,
// more threads than CPUs, a worker descheduled or stuck (the caller takes its parts), thread limits.
#include "runtime/thread_pool.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/resource.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "runtime/process_limits.h"
#include "util/error.h"

namespace moe {
namespace {

TEST(ThreadPool, RunCallsEveryThreadOnce) {
  for (int n : {1, 2, 3, 5}) {
    ThreadPool pool(n);
    std::vector<std::atomic<int>> hits(n);
    for (int rep = 0; rep < 50; ++rep) pool.run([&](int t) { hits[t].fetch_add(1); });
    for (int t = 0; t < n; ++t) EXPECT_EQ(hits[t].load(), 50) << "threads " << n << " index " << t;
  }
}

TEST(ThreadPool, StaticSplitCoversRangeOnce) {
  ThreadPool pool(3);
  for (int64_t n : {0, 1, 2, 3, 7, 100, 1001}) {
    std::vector<std::atomic<int>> seen(n);
    pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) seen[i].fetch_add(1);
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[i].load(), 1) << n << " " << i;
  }
}

TEST(ThreadPool, DynamicSplitCoversRangeOnce) {
  ThreadPool pool(4);
  for (int64_t chunk : {1, 3, 64}) {
    for (int64_t n : {0, 1, 5, 999}) {
      std::vector<std::atomic<int>> seen(n);
      pool.parallel_for_dynamic(n, chunk, [&](int64_t b, int64_t e, int t) {
        EXPECT_LE(e - b, chunk);
        EXPECT_GE(t, 0);
        EXPECT_LT(t, 4);
        for (int64_t i = b; i < e; ++i) seen[i].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[i].load(), 1);
    }
  }
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<int> total{0};
  pool.parallel_for(4, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      pool.parallel_for(10, [&](int64_t b2, int64_t e2, int) { total.fetch_add(static_cast<int>(e2 - b2)); });
    }
  });
  EXPECT_EQ(total.load(), 40);
}

TEST(ThreadPool, ConcurrentCallersAreSafe) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c) {
    callers.emplace_back([&] {
      for (int rep = 0; rep < 100; ++rep) {
        pool.parallel_for(37, [&](int64_t b, int64_t e, int) { total.fetch_add(e - b); });
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(total.load(), 3 * 100 * 37);
}

TEST(ThreadPool, GlobalPoolResizes) {
  set_num_threads(3);
  EXPECT_EQ(num_threads(), 3);
  std::atomic<int> count{0};
  thread_pool().run([&](int) { count.fetch_add(1); });
  EXPECT_EQ(count.load(), 3);
  set_num_threads(1);
  EXPECT_EQ(num_threads(), 1);
}

// Each part runs exactly once even when the threads far outnumber the CPUs (workers take turns).
TEST(ThreadPool, OversubscribedPoolCompletes) {
  const int n = 4 * process_usable_cpus() + 3;
  ThreadPool pool(n);
  std::vector<std::atomic<int>> hits(n);
  for (int rep = 0; rep < 300; ++rep) pool.run([&](int t) { hits[t].fetch_add(1); });
  for (int t = 0; t < n; ++t) EXPECT_EQ(hits[t].load(), 300) << "part " << t;
  std::atomic<int64_t> total{0};
  for (int rep = 0; rep < 100; ++rep) {
    pool.parallel_for_dynamic(1000, 7, [&](int64_t b, int64_t e, int) { total.fetch_add(e - b); });
  }
  EXPECT_EQ(total.load(), 100 * 1000);
}

// Every thread of a pool pinned to one CPU (the busy-machine case at its worst) still completes.
TEST(ThreadPool, PinnedToOneCpuCompletes) {
  cpu_set_t old_set;
  ASSERT_EQ(sched_getaffinity(0, sizeof(old_set), &old_set), 0);
  int first = 0;
  while (!CPU_ISSET(first, &old_set)) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);  // threads created now inherit it
  {
    ThreadPool pool(3);
    std::atomic<int64_t> total{0};
    for (int rep = 0; rep < 2000; ++rep)
      pool.parallel_for(10, [&](int64_t b, int64_t e, int) { total.fetch_add(e - b); });
    EXPECT_EQ(total.load(), 2000 * 10);
  }
  ASSERT_EQ(sched_setaffinity(0, sizeof(old_set), &old_set), 0);
}

// Caps the address space a little above what the process uses, so 8 MiB thread stacks cannot be
// mapped, then asks for 200 threads: exits 0 when that is a moe::Error naming the count.
[[noreturn]] void start_threads_under_a_tight_address_space() {
  long pages = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
    std::fclose(f);
  }
  const rlim_t cap = static_cast<rlim_t>(pages) * 4096 + (64u << 20);
  const rlimit lim{cap, cap};
  setrlimit(RLIMIT_AS, &lim);
  try {
    ThreadPool pool(200);
  } catch (const Error& e) {
    std::exit(std::string(e.what()).find("200 threads") != std::string::npos ? 0 : 3);
  }
  std::exit(4);
}

// A thread count the system cannot start is a moe::Error, not std::terminate.
TEST(ThreadPool, ThreadsTheSystemRefusesAreAnError) {
  if (std::getenv("MOE_SANITIZER_BUILD")) GTEST_SKIP() << "sanitizers reserve the address space themselves";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(start_threads_under_a_tight_address_space(), ::testing::ExitedWithCode(0), "");
}

TEST(ThreadPool, TooManyThreadsIsAnError) {
  EXPECT_THROW(ThreadPool(kMaxThreads + 1), Error);
  EXPECT_EQ(parse_thread_count("8"), 8);
  EXPECT_EQ(parse_thread_count("1024"), 1024);
  for (const char* bad : {"", "0", "-1", "1025", "1e3", "2.0", " 2", "abc", "99999999999"}) {
    EXPECT_EQ(parse_thread_count(bad), 0) << bad;
  }
}

}  // namespace
}  // namespace moe
