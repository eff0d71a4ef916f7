// matmul_nt / matmul_nt_dual against the double-accumulating reference matmul_nt_ref, for every
// kernel variant (each ISA level through the dispatcher, and each decode / GEMM kernel called
// directly), odd sizes on both sides of the SIMD widths and block sizes, misaligned pointers,
// leading dimensions larger than the row, accumulate on/off, f32 and bf16 weights.
// Tolerances scale with sum_p |a_ip| |b_jp| (the operand norms), not a fixed epsilon.
// The same problems run again with B packed into panels (kernels/packed_weights.h).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/matmul_internal.h"
#include "kernels/packed_weights.h"
#include "runtime/cpu_features.h"

namespace moe {
namespace {

using matmul_detail::MatmulArgs;

constexpr double kTolF32 = 1e-5;      // f32 products, f32 accumulation
constexpr double kTolBf16Dot = 1e-2;  // A rounded to bf16 (vdpbf16ps paths)
constexpr float kSentinel = 12345.0f;

struct Variant {
  std::string name;
  Isa isa;                            // level the variant needs
  void (*direct)(const MatmulArgs&);  // null: matmul_nt under set_isa_override(isa)
  bool bf16_only = false;             // only for bf16 weights
  bool bf16_dot = false;              // rounds A to bf16
  bool f32_only = false;              // only for f32 weights
};

std::vector<Variant> variants() {
  using namespace matmul_detail;
  return {
      {"dispatch-scalar", Isa::kScalar, nullptr},
      {"dispatch-avx2", Isa::kAvx2, nullptr},
      {"dispatch-avx512", Isa::kAvx512, nullptr},
      {"dispatch-avx512bf16", Isa::kAvx512Bf16, nullptr},
      {"decode-avx2", Isa::kAvx2, decode_avx2},
      {"gemm-avx2", Isa::kAvx2, gemm_avx2},
      {"decode-avx512", Isa::kAvx512, decode_avx512},
      {"gemm-avx512", Isa::kAvx512, gemm_avx512},
      {"decode-bf16dot", Isa::kAvx512Bf16, decode_bf16dot_avx512bf16, true, true},
      {"gemm-bf16dot", Isa::kAvx512Bf16, gemm_bf16dot_avx512bf16, true, true},
  };
}

// Kernels for weights in the panel layout: the dispatcher at each level (portable loop below AVX-512)
// and the panel kernels called directly.
std::vector<Variant> panel_variants() {
  using namespace matmul_detail;
  return {
      {"panels-dispatch-scalar", Isa::kScalar, nullptr},
      {"panels-dispatch-avx2", Isa::kAvx2, nullptr},
      {"panels-dispatch-avx512", Isa::kAvx512, nullptr},
      {"panels-dispatch-avx512bf16", Isa::kAvx512Bf16, nullptr},
      {"gemm-panels-avx512", Isa::kAvx512, gemm_panels_avx512, false, false, true},
      {"gemm-panels-bf16dot", Isa::kAvx512Bf16, gemm_panels_bf16dot_avx512bf16, true, true},
  };
}

// Restores the ISA cap when a test ends.
class IsaGuard {
 public:
  IsaGuard() : saved_(set_isa_override(Isa::kAvx512Bf16)) {}
  ~IsaGuard() { set_isa_override(saved_); }

 private:
  Isa saved_;
};

// One problem: A [m, lda], B [n, ldb] (f32 or bf16), C [m, ldc], each starting at an element
// offset from a 64-byte boundary so that the kernels see misaligned rows.
struct Problem {
  MatmulShape s;
  int64_t lda = 0, ldb = 0, ldc = 0;
  DType dtype = DType::kF32;
  bool accumulate = false;
  std::vector<float> a_store, b_f32_store, c0_store;
  std::vector<uint16_t> b_bf16_store;
  int offset = 0;
  std::vector<double> scale;              // per element of C: sum_p |a_ip b_jp| (+ |c0| when accumulating)
  std::shared_ptr<PackedWeights> packed;  // set: b() is B in panels

  const float* a() const { return a_store.data() + offset; }
  WeightView b() const {
    if (packed) return packed->view();
    return b_rows();
  }
  WeightView b_rows() const {
    if (dtype == DType::kBF16) return {b_bf16_store.data() + offset, DType::kBF16, ldb};
    return {b_f32_store.data() + offset, DType::kF32, ldb};
  }
  float weight(int64_t j, int64_t p) const {
    return dtype == DType::kBF16 ? bf16_to_f32(b_bf16_store[offset + j * ldb + p]) : b_f32_store[offset + j * ldb + p];
  }
};

Problem make_problem(MatmulShape s, DType dtype, bool accumulate, int variant_seed) {
  Problem pr;
  pr.s = s;
  pr.lda = s.k + (variant_seed % 3) * 7;
  pr.ldb = s.k + (variant_seed % 2) * 5;
  pr.ldc = s.n + 3;
  pr.dtype = dtype;
  pr.accumulate = accumulate;
  pr.offset = variant_seed % 5;
  std::mt19937 rng(1234 + variant_seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  pr.a_store.resize(size_t(pr.offset + std::max<int64_t>(s.m, 1) * pr.lda + 1));
  for (float& x : pr.a_store) x = u(rng);
  const size_t nb = size_t(pr.offset + std::max<int64_t>(s.n, 1) * pr.ldb + 1);
  pr.b_f32_store.resize(nb);
  pr.b_bf16_store.resize(nb);
  for (size_t i = 0; i < nb; ++i) {
    pr.b_f32_store[i] = u(rng);
    pr.b_bf16_store[i] = f32_to_bf16(pr.b_f32_store[i]);
  }
  pr.c0_store.assign(size_t(pr.offset + std::max<int64_t>(s.m, 1) * pr.ldc + 1), kSentinel);
  for (int64_t i = 0; i < s.m; ++i)
    for (int64_t j = 0; j < s.n; ++j) pr.c0_store[pr.offset + i * pr.ldc + j] = u(rng);
  pr.scale.assign(pr.c0_store.size(), 0.0);
  for (int64_t i = 0; i < s.m; ++i) {
    for (int64_t j = 0; j < s.n; ++j) {
      const size_t x = size_t(pr.offset + i * pr.ldc + j);
      double sum = accumulate ? std::fabs(pr.c0_store[x]) : 0.0;
      for (int64_t p = 0; p < s.k; ++p) sum += std::fabs(double(pr.a()[i * pr.lda + p]) * pr.weight(j, p));
      pr.scale[x] = sum;
    }
  }
  return pr;
}

// Compares C (with its padding) against the reference; NaN where the reference is finite fails.
testing::AssertionResult close_to_reference(const Problem& pr, const std::vector<float>& got,
                                            const std::vector<float>& want, double rel) {
  const MatmulShape s = pr.s;
  for (size_t x = 0; x < got.size(); ++x) {
    const int64_t e = int64_t(x) - pr.offset;
    const int64_t i = e >= 0 ? e / pr.ldc : -1, j = e >= 0 ? e % pr.ldc : -1;
    if (i < 0 || i >= s.m || j >= s.n) {  // outside C: must be untouched
      if (got[x] != pr.c0_store[x]) return testing::AssertionFailure() << "wrote outside C at element " << e;
      continue;
    }
    const double scale = pr.scale[x];
    const bool want_nan = std::isnan(want[x]), got_nan = std::isnan(got[x]);
    const double err = std::fabs(double(got[x]) - double(want[x]));
    if (want_nan != got_nan || (!want_nan && !(err <= rel * scale + 1e-30))) {
      return testing::AssertionFailure() << "C[" << i << "," << j << "] = " << got[x] << ", reference " << want[x]
                                         << ", error " << err << " > " << rel << " x scale " << scale;
    }
  }
  return testing::AssertionSuccess();
}

// The same problem with B packed into panels.
Problem with_panels(Problem pr) {
  pr.packed = std::make_shared<PackedWeights>(PackedWeights::pack(pr.b_rows(), pr.s.n, pr.s.k));
  return pr;
}

std::vector<float> run_reference(const Problem& pr) {
  std::vector<float> c = pr.c0_store;
  matmul_nt_ref(pr.a(), pr.lda, pr.b_rows(), c.data() + pr.offset, pr.ldc, pr.s, pr.accumulate);
  return c;
}

std::vector<float> run_variant(const Variant& v, const Problem& pr) {
  std::vector<float> c = pr.c0_store;
  if (v.direct == nullptr) {
    set_isa_override(v.isa);
    matmul_nt(pr.a(), pr.lda, pr.b(), c.data() + pr.offset, pr.ldc, pr.s, pr.accumulate);
    set_isa_override(Isa::kAvx512Bf16);
  } else {
    v.direct(MatmulArgs{pr.a(), pr.lda, pr.b(), c.data() + pr.offset, pr.ldc, pr.s, pr.accumulate});
  }
  return c;
}

double tolerance(const Variant& v, const Problem& pr) {
  if (pr.dtype != DType::kBF16) return kTolF32;
  if (v.bf16_dot) return kTolBf16Dot;
  // The dispatcher at avx512bf16 sends every bf16-weight problem to the bf16-dot kernels.
  const bool dot = v.direct == nullptr && v.isa == Isa::kAvx512Bf16 && detected_isa() >= Isa::kAvx512Bf16;
  return dot ? kTolBf16Dot : kTolF32;
}

bool runnable(const Variant& v, const Problem& pr) {
  if (v.isa > detected_isa()) return false;
  if (v.bf16_only && pr.dtype != DType::kBF16) return false;
  if (v.f32_only && pr.dtype != DType::kF32) return false;
  if (v.direct != nullptr && (pr.s.m == 0 || pr.s.n == 0 || pr.s.k == 0)) return false;
  return true;
}

void check_variants(const Problem& pr, const std::vector<Variant>& list) {
  const std::vector<float> want = run_reference(pr);
  for (const Variant& v : list) {
    if (!runnable(v, pr)) continue;
    const std::vector<float> got = run_variant(v, pr);
    ASSERT_TRUE(close_to_reference(pr, got, want, tolerance(v, pr)))
        << v.name << " m=" << pr.s.m << " n=" << pr.s.n << " k=" << pr.s.k << " dtype=" << dtype_name(pr.dtype)
        << " accumulate=" << pr.accumulate << " lda=" << pr.lda << " ldb=" << pr.ldb << " offset=" << pr.offset
        << (pr.packed ? " (panels)" : "");
  }
}

// Every row-layout variant, then every panel variant on the same problem with B packed.
void check_all_variants(const Problem& pr) {
  check_variants(pr, variants());
  if (testing::Test::HasFatalFailure()) return;
  check_variants(with_panels(pr), panel_variants());
}

TEST(Matmul, AllVariantsOddSizes) {
  IsaGuard guard;
  const int64_t ms[] = {0, 1, 2, 3, 5, 8, 9, 13, 17, 33};
  const int64_t ns[] = {0, 1, 3, 15, 16, 17, 31, 33, 64, 100};
  const int64_t ks[] = {0, 1, 2, 3, 15, 16, 17, 31, 32, 33, 64, 100, 530};
  int seed = 0;
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    for (int64_t m : ms) {
      for (int64_t n : ns) {
        for (int64_t k : ks) {
          ++seed;
          check_all_variants(make_problem({m, n, k}, dtype, seed % 2 == 0, seed));
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(Matmul, CrossesEveryBlockBoundary) {
  IsaGuard guard;
  // n past the 512-column block, k past the 256 / 512 k blocks, m past several 12-row tiles.
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    for (bool accumulate : {false, true}) {
      check_all_variants(make_problem({29, 1061, 1100}, dtype, accumulate, accumulate ? 3 : 4));
      if (HasFatalFailure()) return;
    }
  }
}

TEST(Matmul, PanelsCrossTheirKBlocks) {
  IsaGuard guard;
  // k past the panel kernels' 1024-element (f32) and 2048-element (bf16) slices, odd k, n not a
  // multiple of 32, m across the balanced row blocks.
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    for (bool accumulate : {false, true}) {
      check_variants(with_panels(make_problem({25, 70, 2101}, dtype, accumulate, accumulate ? 5 : 6)),
                     panel_variants());
      if (HasFatalFailure()) return;
    }
  }
}

TEST(Matmul, PanelsOneRowManyPanels) {
  IsaGuard guard;
  // m = 1 reads groups of 4 whole panels at once (bf16): n = 4, 5 and 9 panels plus tails, k within
  // one slice, odd, and past the 2048-element slice.
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    for (bool accumulate : {false, true}) {
      for (int64_t n : {int64_t(128), int64_t(161), int64_t(300)}) {
        for (int64_t k : {int64_t(7), int64_t(64), int64_t(2101)}) {
          check_variants(with_panels(make_problem({1, n, k}, dtype, accumulate, int(n + k + accumulate))),
                         panel_variants());
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(PackedWeights, UnpackRestoresTheRowsAndPaddingIsZero) {
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    for (int64_t n : {int64_t(1), int64_t(31), int64_t(32), int64_t(33), int64_t(70)}) {
      for (int64_t k : {int64_t(1), int64_t(2), int64_t(7), int64_t(64)}) {
        const Problem pr = with_panels(make_problem({1, n, k}, dtype, false, int(n + k)));
        const WeightView v = pr.packed->view();
        EXPECT_EQ(v.layout, WeightLayout::kPanels);
        EXPECT_EQ(v.ld, dtype == DType::kBF16 ? (k + 1) / 2 * 2 : k);
        EXPECT_EQ(pr.packed->bytes(), size_t((n + 31) / 32 * 32 * v.ld) * dtype_size(dtype));
        const size_t es = dtype_size(dtype);
        std::vector<uint8_t> back(size_t(n * (k + 3)) * es, 0xab);
        unpack_panels(v, n, k, back.data(), k + 3);
        for (int64_t j = 0; j < n; ++j) {
          for (int64_t p = 0; p < k; ++p) {
            const size_t i = size_t(j * (k + 3) + p);
            const float got = dtype == DType::kBF16 ? bf16_to_f32(reinterpret_cast<const uint16_t*>(back.data())[i])
                                                    : reinterpret_cast<const float*>(back.data())[i];
            ASSERT_EQ(got, pr.weight(j, p)) << "n=" << n << " k=" << k << " j=" << j << " p=" << p;
            ASSERT_EQ(weight_element(v, j, p), pr.weight(j, p));
          }
        }
        for (int64_t j = n; j < (n + 31) / 32 * 32; ++j)
          for (int64_t p = 0; p < v.ld; ++p) ASSERT_EQ(weight_element(v, j, p), 0.0f) << "pad row " << j;
        for (int64_t j = 0; j < n; ++j)
          for (int64_t p = k; p < v.ld; ++p) ASSERT_EQ(weight_element(v, j, p), 0.0f) << "pad column " << p;
      }
    }
  }
}

TEST(PackedWeights, RowSlicesAtPanelBoundaries) {
  IsaGuard guard;
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    const Problem full = with_panels(make_problem({13, 100, 77}, dtype, false, 9));
    for (int64_t r0 : {int64_t(32), int64_t(64), int64_t(96)}) {
      Problem part = full;
      part.s.n = full.s.n - r0;
      std::vector<float> got = part.c0_store, want = part.c0_store;
      matmul_nt(part.a(), part.lda, weight_rows(full.b(), r0), got.data() + part.offset, part.ldc, part.s, false);
      const WeightView rows = weight_rows(full.b_rows(), r0);
      matmul_nt_ref(part.a(), part.lda, rows, want.data() + part.offset, part.ldc, part.s, false);
      for (int64_t i = 0; i < part.s.m; ++i) {
        for (int64_t j = 0; j < part.s.n; ++j) {
          const size_t x = size_t(part.offset + i * part.ldc + j);
          ASSERT_NEAR(got[x], want[x], 2e-2 * full.scale[x] + 1e-6) << "r0=" << r0 << " i=" << i << " j=" << j;
        }
      }
    }
  }
}

TEST(Matmul, NanPropagatesAndFailsTheComparison) {
  IsaGuard guard;
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    for (int64_t m : {int64_t(1), int64_t(4), int64_t(20)}) {
      Problem pr = make_problem({m, 37, 70}, dtype, false, 7);
      pr.a_store[pr.offset + 33] = std::numeric_limits<float>::quiet_NaN();  // row 0 of A
      const std::vector<float> want = run_reference(pr);
      ASSERT_TRUE(std::isnan(want[pr.offset]));
      const Problem packed = with_panels(pr);
      std::vector<std::pair<const Problem*, Variant>> runs;
      for (const Variant& v : variants()) runs.push_back({&pr, v});
      for (const Variant& v : panel_variants()) runs.push_back({&packed, v});
      for (const auto& [problem, v] : runs) {
        if (!runnable(v, *problem)) continue;
        std::vector<float> got = run_variant(v, *problem);
        EXPECT_TRUE(close_to_reference(pr, got, want, tolerance(v, pr))) << v.name;
        // A NaN the reference does not have must fail the comparison.
        got[pr.offset + 1 * pr.ldc] = std::numeric_limits<float>::quiet_NaN();
        if (m > 1) {
          EXPECT_FALSE(close_to_reference(pr, got, want, tolerance(v, pr))) << v.name;
        }
      }
    }
  }
}

TEST(Matmul, ComparisonFailsOnAWrongValueAndOnWritesOutsideC) {
  Problem pr = make_problem({3, 5, 9}, DType::kF32, false, 2);
  const std::vector<float> want = run_reference(pr);
  std::vector<float> got = want;
  EXPECT_TRUE(close_to_reference(pr, got, want, kTolF32));
  got[pr.offset + pr.ldc + 2] += 1e-3f;
  EXPECT_FALSE(close_to_reference(pr, got, want, kTolF32));
  got = want;
  got[pr.offset + pr.ldc - 1] = 0.0f;  // padding column between rows
  EXPECT_FALSE(close_to_reference(pr, got, want, kTolF32));
}

TEST(Matmul, DualEqualsTwoCalls) {
  IsaGuard guard;
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    for (int64_t m : {int64_t(1), int64_t(7), int64_t(40)}) {
      for (bool panels : {false, true}) {  // panels: bf16 takes the one-A-conversion dual kernel
        Problem p0 = make_problem({m, 45, 130}, dtype, false, 11);
        Problem p1 = make_problem({m, 45, 130}, dtype, false, 11 + 30);  // same lda/ldb/offset, new data
        if (panels) {
          p0 = with_panels(p0);
          p1 = with_panels(p1);
        }
        std::vector<float> c0 = p0.c0_store, c1 = p0.c0_store;
        matmul_nt_dual(p0.a(), p0.lda, p0.b(), p1.b(), c0.data() + p0.offset, c1.data() + p0.offset, p0.ldc, p0.s);
        std::vector<float> w0 = p0.c0_store, w1 = p0.c0_store;
        matmul_nt(p0.a(), p0.lda, p0.b(), w0.data() + p0.offset, p0.ldc, p0.s, false);
        matmul_nt(p0.a(), p0.lda, p1.b(), w1.data() + p0.offset, p0.ldc, p0.s, false);
        EXPECT_EQ(c0, w0);
        EXPECT_EQ(c1, w1);
      }
    }
  }
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

// The MoE layer's dispatch without a copy: matmul_nt_dual_gathered equals matmul_nt_dual on the rows
// copied (and scaled) into a contiguous A, bit for bit, at every ISA level, with repeated and
// out-of-order rows, with and without a scale, f32 and bf16, rows and panels.
// Calls fn(isa) with the active ISA capped at each level this machine has (restored afterwards).
template <typename Fn>
void for_each_isa(Fn&& fn) {
  IsaGuard guard;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
    if (isa > detected_isa()) continue;
    set_isa_override(isa);
    fn(isa);
  }
}

TEST(Matmul, DualGatheredEqualsDualOnCopiedRows) {
  for_each_isa([](Isa isa) {
    for (DType dtype : {DType::kF32, DType::kBF16}) {
      for (int64_t m : {int64_t(1), int64_t(7), int64_t(40)}) {
        for (bool panels : {false, true}) {
          for (bool scaled : {false, true}) {
            const int64_t n = 45, k = 131, n_x = 23, ldx = k + 3;
            Problem p0 = make_problem({m, n, k}, dtype, false, 5);
            Problem p1 = make_problem({m, n, k}, dtype, false, 5 + 30);
            if (panels) {
              p0 = with_panels(p0);
              p1 = with_panels(p1);
            }
            std::mt19937 rng(77 + m);
            std::uniform_real_distribution<float> u(-1.0f, 1.0f);
            std::vector<float> x(static_cast<size_t>(n_x * ldx));
            for (float& v : x) v = u(rng);
            std::vector<int32_t> idx(static_cast<size_t>(m));
            std::vector<float> scale(static_cast<size_t>(m));
            for (int64_t i = 0; i < m; ++i) {
              idx[size_t(i)] = int32_t((i * 7 + 3) % n_x);  // out of order, repeats when m > n_x
              scale[size_t(i)] = u(rng);
            }
            const GatheredRows rows{x.data(), ldx, idx.data(), scaled ? scale.data() : nullptr};
            std::vector<float> copy(static_cast<size_t>(m * k));
            gather_rows(rows, m, k, copy.data(), k);
            for (int64_t i = 0; i < m; ++i) {
              for (int64_t p = 0; p < k; ++p) {
                const float want = (scaled ? scale[size_t(i)] : 1.0f) * x[size_t(idx[size_t(i)] * ldx + p)];
                ASSERT_EQ(copy[size_t(i * k + p)], want);
              }
            }
            std::vector<float> c0 = p0.c0_store, c1 = p0.c0_store, w0 = p0.c0_store, w1 = p0.c0_store;
            matmul_nt_dual_gathered(rows, p0.b(), p1.b(), c0.data() + p0.offset, c1.data() + p0.offset, p0.ldc, p0.s);
            matmul_nt_dual(copy.data(), k, p0.b(), p1.b(), w0.data() + p0.offset, w1.data() + p0.offset, p0.ldc, p0.s);
            EXPECT_EQ(c0, w0) << int(isa) << " " << dtype_name(dtype) << " m=" << m << " panels=" << panels;
            EXPECT_EQ(c1, w1) << int(isa) << " " << dtype_name(dtype) << " m=" << m << " panels=" << panels;
          }
        }
      }
    }
  });
}

// A rounded to bf16 once by its producer: round_to_bf16 is the kernels' rounding, and matmul_nt_bf16a on
// the rounded rows equals matmul_nt on them widened to f32, bit for bit, at every ISA level, odd k (the
// pad column), rows and panels, accumulate on and off. The next_b prefetch hint never changes a result.
TEST(Matmul, Bf16RoundedAEqualsMatmulOnTheWidenedRows) {
  for_each_isa([](Isa isa) {
    for (DType dtype : {DType::kF32, DType::kBF16}) {
      for (int64_t m : {int64_t(1), int64_t(7), int64_t(40)}) {
        for (int64_t k : {int64_t(131), int64_t(2100)}) {  // 2100: more than one 1024-pair slice
          for (bool panels : {false, true}) {
            for (bool acc : {false, true}) {
              Problem pr = make_problem({m, 45, k}, dtype, acc, 3);
              if (panels) pr = with_panels(pr);
              const int64_t lda = (k + 1) / 2 * 2 + 4;
              std::vector<uint16_t> ab(static_cast<size_t>(m * lda), 0);
              for (int64_t i = 0; i < m; ++i) round_to_bf16(pr.a() + i * pr.lda, k, ab.data() + i * lda);
              std::vector<float> wide(static_cast<size_t>(m * k));
              for (int64_t i = 0; i < m; ++i) {
                for (int64_t p = 0; p < k; ++p) {
                  const float v = pr.a()[i * pr.lda + p];
                  ASSERT_EQ(ab[size_t(i * lda + p)], f32_to_bf16(v)) << v;  // no denormals in the data
                  wide[size_t(i * k + p)] = bf16_to_f32(ab[size_t(i * lda + p)]);
                }
              }
              std::vector<float> got = pr.c0_store, hinted = pr.c0_store, want = pr.c0_store;
              matmul_nt_bf16a(ab.data(), lda, pr.b(), got.data() + pr.offset, pr.ldc, pr.s, acc);
              matmul_nt_bf16a(ab.data(), lda, pr.b(), hinted.data() + pr.offset, pr.ldc, pr.s, acc, pr.b().data);
              matmul_nt(wide.data(), k, pr.b(), want.data() + pr.offset, pr.ldc, pr.s, acc);
              const std::string what = std::to_string(int(isa)) + " " + std::string(dtype_name(dtype)) +
                                       " m=" + std::to_string(m) + " k=" + std::to_string(k) +
                                       " panels=" + std::to_string(panels);
              EXPECT_EQ(got, want) << what;
              EXPECT_EQ(hinted, want) << what;
              std::vector<float> plain = pr.c0_store;
              matmul_nt(wide.data(), k, pr.b(), plain.data() + pr.offset, pr.ldc, pr.s, acc, pr.b().data);
              EXPECT_EQ(plain, want) << what << " (matmul_nt with the hint)";
            }
          }
        }
      }
    }
  });
}

}  // namespace
}  // namespace moe
