// Thread pool: every index visited exactly once, static and dynamic splits, nested and concurrent use.
#include "runtime/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

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

}  // namespace
}  // namespace moe
