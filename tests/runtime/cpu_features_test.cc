// CPU dispatch: the ISA cap forces lower levels (the scalar path) and never exceeds what the CPU has.
#include "runtime/cpu_features.h"

#include <gtest/gtest.h>

#include "runtime/blas.h"

namespace moe {
namespace {

TEST(CpuFeatures, OverrideCapsTheActiveIsa) {
  const Isa prev = set_isa_override(Isa::kScalar);
  EXPECT_EQ(active_isa(), Isa::kScalar);
  set_isa_override(Isa::kAvx512Bf16);
  EXPECT_EQ(active_isa(), detected_isa());
  set_isa_override(prev);
}

TEST(CpuFeatures, LevelsAreConsistentWithFeatures) {
  const CpuFeatures& f = cpu_features();
  const Isa isa = detected_isa();
  if (isa >= Isa::kAvx2) {
    EXPECT_TRUE(f.avx2 && f.fma);
  }
  if (isa >= Isa::kAvx512) {
    EXPECT_TRUE(f.avx512f && f.avx512bw && f.avx512vl);
  }
  if (isa >= Isa::kAvx512Bf16) {
    EXPECT_TRUE(f.avx512_bf16);
  }
  EXPECT_FALSE(cpu_feature_list().empty());
  EXPECT_STRNE(isa_name(isa), "?");
}

TEST(Blas, SgemmMatchesNaive) {
  if (!blas::available()) GTEST_SKIP() << "OpenBLAS not loadable";
  const int m = 3, n = 5, k = 7;
  std::vector<float> a(m * k), b(n * k), c(m * n, -1.0f);
  for (int i = 0; i < m * k; ++i) a[i] = 0.1f * (i % 11) - 0.3f;
  for (int i = 0; i < n * k; ++i) b[i] = 0.05f * (i % 13) - 0.2f;
  blas::sgemm(true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double ref = 0;
      for (int p = 0; p < k; ++p) ref += double(a[i * k + p]) * b[j * k + p];
      EXPECT_NEAR(c[i * n + j], ref, 1e-5);
    }
  }
  EXPECT_NE(blas::core_name(), "unavailable");
}

}  // namespace
}  // namespace moe
