// The pack cache (model/pack_cache.h): entries round-trip through the file; a changed source, another
// layout, a torn or foreign file are misses (rebuilt), never wrong bytes; and a model loaded from the
// cache computes the same logits, bit for bit, as one packed at load.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <vector>

#include "common/random_checkpoint.h"
#include "model/decoder.h"
#include "model/gguf_export.h"
#include "model/pack_cache.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

class PackCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("pack_cache_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "cache");
    source_ = (dir_ / "model.gguf").string();
    std::ofstream(source_) << "weights v1";
    options_.dir = (dir_ / "cache").string();
    options_.min_bytes = 0;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes two entries for (source_, layout) and returns the cache's path.
  std::string write(const std::string& layout) {
    PackCache c(source_, layout, options_);
    EXPECT_FALSE(c.hit());
    c.record("a", a_.data(), a_.size());
    c.record("b", b_.data(), b_.size());
    EXPECT_GT(c.save(), a_.size() + b_.size());
    return c.path();
  }

  void expect_cached_logits_equal(const std::string& model);

  fs::path dir_;
  std::string source_;
  PackCacheOptions options_;
  std::vector<uint8_t> a_ = std::vector<uint8_t>(5000, 7), b_ = std::vector<uint8_t>(70, 9);
};

TEST_F(PackCacheTest, EntriesRoundTrip) {
  std::iota(a_.begin(), a_.end(), uint8_t{0});
  write("layout 1");
  PackCache c(source_, "layout 1", options_);
  ASSERT_TRUE(c.hit());
  const uint8_t* a = c.find("a", a_.size());
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  EXPECT_TRUE(std::equal(a_.begin(), a_.end(), a));
  EXPECT_TRUE(std::equal(b_.begin(), b_.end(), c.find("b", b_.size())));
  EXPECT_EQ(c.find("a", a_.size() + 1), nullptr);  // another size: not this entry
  EXPECT_EQ(c.find("c", 1), nullptr);
}

// A cache file of several 2 MiB pages maps at a 2 MiB boundary through huge pages: the written file is
// dropped from the page cache and read again through them (or, where the file system caches no large
// pages, a marker says so and no later load tries again); the bytes are the same either way.
TEST_F(PackCacheTest, LargeFilesMapThroughHugePagesWhereTheKernelCan) {
  std::vector<uint8_t> big(size_t{12} << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = uint8_t(i * 131 + (i >> 12));
  std::string path;
  {
    PackCache c(source_, "big", options_);
    c.record("big", big.data(), big.size());
    ASSERT_GT(c.save(), big.size());
    path = c.path();
  }
  for (int load = 0; load < 2; ++load) {
    PackCache c(source_, "big", options_);
    ASSERT_TRUE(c.hit());
    const uint8_t* p = c.find("big", big.size());
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(std::equal(big.begin(), big.end(), p));
    std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string mode;
    std::getline(thp, mode);
    if (mode.empty() || mode.find("[never]") != std::string::npos) continue;
    EXPECT_TRUE(c.huge_page_bytes() >= c.bytes() / 2 || fs::exists(path + ".small-pages"))
        << c.huge_page_bytes() << " of " << c.bytes() << " bytes in 2 MiB pages";
  }
}

// The folder's .moepack files stay under max_bytes: the least recently used (written or hit) go first;
// other files are never touched; a cache larger than the limit is not written and evicts nothing.
TEST_F(PackCacheTest, FolderStaysUnderItsLimitLeastRecentlyUsedFirst) {
  const std::string p1 = write("layout 1"), p2 = write("layout 2"), p3 = write("layout 3");
  const auto now = fs::file_time_type::clock::now();
  fs::last_write_time(p1, now - std::chrono::hours(3));
  fs::last_write_time(p2, now - std::chrono::hours(2));
  fs::last_write_time(p3, now - std::chrono::hours(1));
  {
    PackCache used(source_, "layout 1", options_);
    ASSERT_TRUE(used.hit());
  }  // p1 is now the most recent
  const fs::path other = fs::path(options_.dir) / "notes.txt";
  std::ofstream(other) << "not a cache file";
  const uint64_t one = fs::file_size(p1);
  options_.max_bytes = 3 * one + one / 2;  // room for three files
  const std::string p4 = write("layout 4");
  EXPECT_TRUE(fs::exists(p4));
  EXPECT_FALSE(fs::exists(p2)) << "the least recently used file stays";
  EXPECT_TRUE(fs::exists(p1));
  EXPECT_TRUE(fs::exists(p3));
  EXPECT_TRUE(fs::exists(other));
  options_.max_bytes = one / 2;  // smaller than one cache file
  PackCache big(source_, "layout 5", options_);
  big.record("a", a_.data(), a_.size());
  EXPECT_EQ(big.save(), 0u);
  EXPECT_FALSE(fs::exists(big.path()));
  for (const auto& p : {p1, p3, p4}) EXPECT_TRUE(fs::exists(p)) << p;
}

TEST_F(PackCacheTest, AnotherLayoutOrAChangedSourceIsAMiss) {
  write("layout 1");
  EXPECT_FALSE(PackCache(source_, "layout 2", options_).hit());
  EXPECT_TRUE(PackCache(source_, "layout 1", options_).hit());
  fs::last_write_time(source_, fs::last_write_time(source_) + std::chrono::seconds(5));  // the model was replaced
  EXPECT_FALSE(PackCache(source_, "layout 1", options_).hit());
}

TEST_F(PackCacheTest, TornOrForeignFilesAreMisses) {
  const std::string path = write("layout 1");
  const auto size = fs::file_size(path);
  for (const uintmax_t keep : {uintmax_t{0}, uintmax_t{12}, uintmax_t{100}, size - 4096}) {
    fs::remove(path);
    write("layout 1");
    fs::resize_file(path, keep);
    EXPECT_FALSE(PackCache(source_, "layout 1", options_).hit()) << keep;
  }
  std::ofstream(path, std::ios::trunc) << "MOEPACK1 and then not a header at all";
  EXPECT_FALSE(PackCache(source_, "layout 1", options_).hit());
  // A miss rebuilds it.
  fs::remove(path);
  write("layout 1");
  EXPECT_TRUE(PackCache(source_, "layout 1", options_).hit());
}

TEST_F(PackCacheTest, OffSmallOrUnwritableCachesWriteNothing) {
  PackCacheOptions off = options_;
  off.enabled = false;
  PackCache c(source_, "l", off);
  c.record("a", a_.data(), a_.size());
  EXPECT_EQ(c.save(), 0u);
  PackCacheOptions big = options_;
  big.min_bytes = 1 << 20;
  PackCache small(source_, "l", big);
  small.record("a", a_.data(), a_.size());
  EXPECT_EQ(small.save(), 0u);
  EXPECT_TRUE(fs::is_empty(dir_ / "cache"));
  PackCacheOptions nowhere = options_;
  nowhere.dir = source_ + "/under-a-file";  // cannot be created: a warning, not an error
  PackCache w(source_, "l", nowhere);
  w.record("a", a_.data(), a_.size());
  EXPECT_EQ(w.save(), 0u);
}

// A model whose panels come from the cache gives the logits of the same model packed at load.
TEST_F(PackCacheTest, CachedPanelsGiveTheSameLogits) {
  nlohmann::json config = nlohmann::json::parse(
      std::ifstream(std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/models/qwen3_moe/config.json"));
  config["hidden_size"] = 256;  // rows of whole K-quant blocks
  config["moe_intermediate_size"] = 256;
  config["intermediate_size"] = 256;
  config["head_dim"] = 64;
  const std::string hf = (dir_ / "qwen3").string();
  moe::testing::write_random_checkpoint(hf, config, 5);
  for (const std::string type : {"F32", "Q8_0", "Q4_K_M"}) {
    SCOPED_TRACE(type);
    const std::string model = type == "F32" ? hf : (dir_ / ("qwen3." + type + ".gguf")).string();
    if (type != "F32") quantize_to_gguf(hf, model, QuantizeOptions{.type = type, .progress = {}});
    expect_cached_logits_equal(model);
  }
}

void PackCacheTest::expect_cached_logits_equal(const std::string& model) {
  DecoderOptions cached, off;
  cached.pack_cache = options_;
  off.pack_cache = PackCacheOptions{.enabled = false, .dir = {}};
  const std::vector<int32_t> ids = {1, 2, 3, 50, 7};
  bool packs = false;  // the ISA packs these weights (AVX2 has no f32 panels: nothing to cache, no file)
  const auto logits = [&](const DecoderOptions& o, bool* hit) {
    Decoder d(model, o);
    *hit = d.pack_cache().hit();
    packs = packs || d.pack_cache().bytes() > 0;
    KvCache kv = d.make_cache(8);
    std::vector<float> out(ids.size() * d.spec().vocab);
    d.forward(ids.data(), static_cast<int64_t>(ids.size()), kv, out.data());
    return out;
  };
  bool hit = false;
  const std::vector<float> want = logits(off, &hit);
  const std::vector<float> first = logits(cached, &hit);
  EXPECT_FALSE(hit);
  const std::vector<float> second = logits(cached, &hit);
  EXPECT_EQ(hit, packs);
  EXPECT_EQ(want, first);
  EXPECT_EQ(want, second);
}

}  // namespace
}  // namespace moe
