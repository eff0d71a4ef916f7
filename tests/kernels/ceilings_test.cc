// The ceiling read loops must read every element once (their checksum is the array's sum), at any
// length and alignment offset the splitting can give them, in both read patterns.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/ceilings.h"
#include "runtime/aligned.h"
#include "runtime/cpu_features.h"

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

}  // namespace
}  // namespace moe
