// The expert slot pool: the right expert under eviction storms (one slot), reads that fail or come back
// short are errors naming the file and offset (never wrong weights, and the pool keeps working),
// prefetches and pins, and asking for more experts at once than there are slots.
#include "model/expert_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <random>

#include "kernels/packed_weights.h"
#include "util/error.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kD = 24, kF = 40, kE = 6, kLayers = 2;

// Element (r, c) of matrix j of expert e of layer l: unique per position, so a wrong expert shows.
float value(int64_t l, int64_t e, int j, int64_t r, int64_t c) {
  return float(l * 100000 + e * 10000 + j * 1000) + float(r) + float(c) * 1e-2f;
}

struct Fixture {
  fs::path file;
  std::vector<std::vector<ExpertSource>> sources;
  Fixture() {
    file = fs::temp_directory_path() / ("moe_expert_cache_" + std::to_string(getpid()) + ".bin");
    std::ofstream out(file, std::ios::binary);
    out.write("header!", 7);  // offsets not aligned to anything
    uint64_t at = 7;
    sources.resize(kLayers);
    for (int64_t l = 0; l < kLayers; ++l) {
      for (int64_t e = 0; e < kE; ++e) {
        ExpertSource s;
        for (int j = 0; j < 3; ++j) {
          const int64_t n = j == 2 ? kD : kF, k = j == 2 ? kF : kD;
          std::vector<float> m(size_t(n * k));
          for (int64_t r = 0; r < n; ++r)
            for (int64_t c = 0; c < k; ++c) m[size_t(r * k + c)] = value(l, e, j, r, c);
          out.write(reinterpret_cast<const char*>(m.data()), std::streamsize(m.size() * 4));
          s.m[j] = ExpertSlice{0, at, uint64_t(m.size() * 4), DType::kF32, n, k};
          at += m.size() * 4;
        }
        sources[size_t(l)].push_back(s);
      }
    }
  }
  ~Fixture() { fs::remove(file); }
};

void expect_expert(const ExpertMatrices& m, int64_t l, int64_t e) {
  const WeightView* v[3] = {&m.gate, &m.up, &m.down};
  for (int j = 0; j < 3; ++j) {
    const int64_t n = j == 2 ? kD : kF, k = j == 2 ? kF : kD;
    ASSERT_NE(v[j]->data, nullptr);
    for (int64_t r = 0; r < n; r += 7)
      for (int64_t c = 0; c < k; c += 5)
        ASSERT_EQ(weight_element(*v[j], r, c), value(l, e, j, r, c)) << "layer " << l << " expert " << e << " m " << j;
  }
}

TEST(ExpertCache, OneSlotEvictionStormGivesTheRightExpert) {
  Fixture f;
  for (bool direct : {true, false}) {
    ExpertCache::Options o;
    o.slots = 1;
    o.direct_io = direct;
    ExpertCache cache({f.file.string()}, f.sources, o);
    std::mt19937 rng(1);
    std::vector<ExpertMatrices> views(kE);
    for (int i = 0; i < 300; ++i) {
      const int64_t l = rng() % kLayers;
      const int32_t e = static_cast<int32_t>(rng() % kE);
      cache.acquire(l, {e}, views);
      expect_expert(views[size_t(e)], l, e);
      cache.release(l, {e});
    }
    const ExpertCacheStats s = cache.stats();
    EXPECT_EQ(s.requests, 300);
    EXPECT_EQ(s.hits + s.misses, 300);
    EXPECT_GT(s.misses, 200);  // one slot: almost every request reads
  }
}

TEST(ExpertCache, ManySlotsKeepTheHotOnes) {
  Fixture f;
  ExpertCache::Options o;
  o.slots = 4;
  ExpertCache cache({f.file.string()}, f.sources, o);
  std::vector<ExpertMatrices> views(kE);
  // Expert 0 of layer 0 is used every other request; it must stay resident while others come and go.
  for (int i = 0; i < 60; ++i) {
    const int32_t e = i % 2 == 0 ? 0 : static_cast<int32_t>(1 + (i / 2) % (kE - 1));
    cache.acquire(0, {e}, views);
    expect_expert(views[size_t(e)], 0, e);
    cache.release(0, {e});
  }
  const ExpertCacheStats s = cache.stats();
  EXPECT_EQ(s.layers[0].requests, 60);
  EXPECT_GE(s.layers[0].hits, 29);  // every use of expert 0 after the first
}

TEST(ExpertCache, SeveralAtOnceAndPrefetch) {
  Fixture f;
  ExpertCache::Options o;
  o.slots = 3;
  ExpertCache cache({f.file.string()}, f.sources, o);
  std::vector<ExpertMatrices> views(kE);
  cache.acquire(1, {1, 3, 5}, views);
  for (int32_t e : {1, 3, 5}) expect_expert(views[size_t(e)], 1, e);
  EXPECT_THROW(cache.acquire(0, {0}, views), Error);  // all three slots pinned by this caller: an error, no hang
  cache.release(1, {1, 3, 5});
  cache.prefetch(0, {2, 4});
  cache.acquire(0, {2, 4}, views);  // waits for the prefetched reads
  expect_expert(views[2], 0, 2);
  expect_expert(views[4], 0, 4);
  cache.release(0, {2, 4});
  const ExpertCacheStats s = cache.stats();
  EXPECT_EQ(s.layers[0].prefetches, 2);
  EXPECT_EQ(s.layers[0].prefetch_hits, 2);
  try {
    cache.acquire(0, {0, 1, 2, 3}, views);
    FAIL() << "four experts at once fit three slots";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("evictable slots"), std::string::npos) << e.what();
  }
}

TEST(ExpertCache, PinnedExpertsSurviveStorms) {
  Fixture f;
  ExpertCache::Options o;
  o.slots = 3;
  ExpertCache cache({f.file.string()}, f.sources, o);
  EXPECT_EQ(cache.pin_forever({{0, 5}, {1, 5}, {0, 4}}, 1), 2);  // one slot left evictable
  cache.reset_stats();
  std::vector<ExpertMatrices> views(kE);
  for (int i = 0; i < 20; ++i) {
    cache.acquire(1, {static_cast<int32_t>(i % 5)}, views);
    cache.release(1, {static_cast<int32_t>(i % 5)});
  }
  cache.acquire(0, {5}, views);
  expect_expert(views[5], 0, 5);
  cache.release(0, {5});
  EXPECT_EQ(cache.stats().layers[0].hits, 1);
}

TEST(ExpertCache, ShortAndFailedReadsAreErrorsNamingTheFile) {
  Fixture f;
  // A file cut in the middle of layer 1's last expert.
  const uint64_t size = fs::file_size(f.file);
  fs::resize_file(f.file, size - 100);
  for (bool direct : {true, false}) {
    ExpertCache::Options o;
    o.slots = 2;
    o.direct_io = direct;
    ExpertCache cache({f.file.string()}, f.sources, o);
    std::vector<ExpertMatrices> views(kE);
    try {
      cache.acquire(1, {kE - 1}, views);
      FAIL() << "read past the end of the file";
    } catch (const Error& e) {
      const std::string w = e.what();
      EXPECT_NE(w.find("short read"), std::string::npos) << w;
      EXPECT_NE(w.find(f.file.string()), std::string::npos) << w;
      EXPECT_NE(w.find("layer 1 expert 5"), std::string::npos) << w;
    }
    cache.acquire(1, {0}, views);  // the pool still works
    expect_expert(views[0], 1, 0);
    cache.release(1, {0});
  }
  // An I/O error on every third read.
  ExpertCache::Options o;
  o.slots = 2;
  std::atomic<int> calls{0};  // the readers call it at once
  o.read = [&calls](int fd, void* buf, size_t n, uint64_t off) -> long {
    if (++calls % 3 == 0) {
      errno = EIO;
      return -1;
    }
    return static_cast<long>(::pread(fd, buf, n, off_t(off)));
  };
  ExpertCache cache({f.file.string()}, f.sources, o);
  std::vector<ExpertMatrices> views(kE);
  int errors = 0;
  for (int i = 0; i < 12; ++i) {
    const int32_t e = static_cast<int32_t>(i % 4);
    try {
      cache.acquire(0, {e}, views);
      expect_expert(views[size_t(e)], 0, e);  // never wrong weights
      cache.release(0, {e});
    } catch (const Error& err) {
      ++errors;
      EXPECT_NE(std::string(err.what()).find("Input/output error"), std::string::npos) << err.what();
    }
  }
  EXPECT_GT(errors, 0);
}

}  // namespace
}  // namespace moe
