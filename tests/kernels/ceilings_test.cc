// The ceiling read loops must read every element once (their checksum is the array's sum), at any
// length and alignment offset the splitting can give them, in both read patterns.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernels/ceilings.h"
#include "runtime/aligned.h"
#include "runtime/cpu_features.h"
#include "util/json_out.h"

namespace moe {
namespace {

using namespace ceilings_detail;

TEST(CeilingReadLoops, SumEveryElementOnce) {
  for (size_t n : {size_t(0), size_t(1), size_t(63), size_t(64), size_t(255), size_t(256), size_t(1000), size_t(4097),
                   size_t(65536 + 7)}) {
    AlignedBuffer<float> a(n + 64);
    double want = 0;
    for (size_t i = 0; i < n; ++i) {
      a[i] = static_cast<float>(i % 7) - 3.0f;
      want += a[i];
    }
    EXPECT_DOUBLE_EQ(read_sum_scalar(a.data(), n), want) << n;
    if (detected_isa() >= Isa::kAvx2) {
      EXPECT_NEAR(read_sum_avx2(a.data(), n), want, 1e-6 * (1 + n)) << n;
      EXPECT_NEAR(read_sum4_avx2(a.data(), n), want, 1e-6 * (1 + n)) << n;
    }
    if (detected_isa() >= Isa::kAvx512) {
      EXPECT_NEAR(read_sum_avx512(a.data(), n), want, 1e-6 * (1 + n)) << n;
      EXPECT_NEAR(read_sum4_avx512(a.data(), n), want, 1e-6 * (1 + n)) << n;
    }
  }
}

// The int8 dot loops run the products they count: the checksum is what the u8 x s8 sums of their
// constant operands give (a = bytes 4, 3, 2, 1 of each 32-bit lane; b's bytes as signed), per lane,
// accumulator and iteration.
TEST(CeilingDotLoops, Int8LoopsDoTheProductsTheyCount) {
  auto lane_dot = [](uint32_t a, uint32_t b) {
    int32_t s = 0;
    for (int k = 0; k < 4; ++k) s += int32_t((a >> (8 * k)) & 0xFF) * int32_t(int8_t((b >> (8 * k)) & 0xFF));
    return s;
  };
  const long iters = 10;
  if (detected_isa() >= Isa::kAvx2) {
    float sink = 0;
    EXPECT_DOUBLE_EQ(dot_i8_loop_avx2(iters, &sink), 2.0 * 32 * 8 * iters);
    double want = 0;
    for (uint32_t j = 0; j < 8; ++j) want += 8.0 * iters * lane_dot(0x01020304u, 0x01FF01FFu + j);
    EXPECT_EQ(double(sink), want);
  }
  if (detected_isa() >= Isa::kAvx512 && cpu_features().avx512_vnni) {
    float sink = 0;
    EXPECT_DOUBLE_EQ(dot_i8_loop_avx512vnni(iters, &sink), 2.0 * 64 * 12 * iters);
    EXPECT_EQ(double(sink), 16.0 * 12 * iters * lane_dot(0x01020304u, 0x01FF01FFu));
  }
}

// cache_holds measures: a working set past the reported last-level cache is not held and not read; one
// that fits is read, and held only where it streams faster than the DRAM rate it is compared with.
TEST(CacheHolds, MeasuresTheWorkingSetAgainstTheDramRate) {
  double gbps = -1;
  EXPECT_FALSE(cache_holds(2.0 * static_cast<double>(last_level_cache_bytes()), 1.0, &gbps));
  EXPECT_EQ(gbps, 0.0);
  EXPECT_FALSE(cache_holds(0, 1.0, &gbps));
  // Within the threads' own L2 caches: held, not measured.
  const double l2 = static_cast<double>(private_cache_bytes());
  if (l2 > 0) {
    EXPECT_TRUE(cache_holds(l2, 1e9, &gbps));
    EXPECT_EQ(gbps, 0.0);
  }
  const double mid = l2 + (1 << 20);  // past the L2s: measured
  if (mid > static_cast<double>(last_level_cache_bytes())) GTEST_SKIP() << "no room between the L2s and the LLC";
  EXPECT_TRUE(cache_holds(mid, 1e-3, &gbps));  // anything beats 1 MB/s
  EXPECT_GT(gbps, 0.0);
  EXPECT_FALSE(cache_holds(mid, 1e9, &gbps));  // nothing reads at 1.15 EB/s
  EXPECT_GT(gbps, 0.0);
}

}  // namespace
}  // namespace moe
