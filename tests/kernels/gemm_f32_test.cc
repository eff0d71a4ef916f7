// The f32 training GEMM (kernels/gemm_f32.h) at every ISA level against its portable twin, and the
// twin against double sums: m, n, k of 1, 3, 17, 33, 100 (and past one 256-deep and one 512-wide
// block), row- and column-major A and B with padded strides, accumulate on and off, the packed-B
// entry points, and the empty shapes. AVX2 runs the twin's code with fused multiply-adds.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/random_floats.h"
#include "kernels/gemm_f32.h"
#include "runtime/aligned.h"
#include "runtime/cpu_features.h"

namespace moe {
namespace {

std::vector<float> randf(int64_t n, uint32_t seed) { return test::random_normal_floats(n, seed); }

// An operand [rows, cols] stored row-major (row_major) or column-major, its leading dimension padded
// by 3 so that strides are not the natural ones.
struct Matrix {
  std::vector<float> data;
  GemmOperand op;
  float at(int64_t r, int64_t c) const { return op.data[r * op.rs + c * op.cs]; }
};
Matrix make_matrix(int64_t rows, int64_t cols, bool row_major, uint32_t seed) {
  Matrix x;
  const int64_t ld = (row_major ? cols : rows) + 3;
  x.data = randf((row_major ? rows : cols) * ld, seed);
  x.op = row_major ? GemmOperand{x.data.data(), ld, 1} : GemmOperand{x.data.data(), 1, ld};
  return x;
}

// Levels above scalar that this CPU runs, each forced in turn.
std::vector<Isa> fast_levels() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512})
    if (isa <= detected_isa()) out.push_back(isa);
  return out;
}

struct Product {
  int64_t m, n, k;
  bool a_rows, b_rows, acc;
};

// Runs one product at `isa` (or the twin when ref) into C [m, n] with ldc = n + 2 (the padding must stay).
std::vector<float> run(const Product& t, const Matrix& a, const Matrix& b, const std::vector<float>& c0, Isa isa,
                       bool ref) {
  std::vector<float> c = c0;
  const int64_t ldc = t.n + 2;
  if (ref) {
    gemm_f32_ref(a.op, b.op, c.data(), ldc, {t.m, t.n, t.k}, t.acc);
  } else {
    const Isa prev = set_isa_override(isa);
    gemm_f32(a.op, b.op, c.data(), ldc, {t.m, t.n, t.k}, t.acc);
    set_isa_override(prev);
  }
  return c;
}

// |got - want| <= tol * (|C0| + sum_p |A(i,p) B(p,j)|) + tiny, per element: the rounding of a sum scales
// with the sum of its terms' magnitudes, not with the (possibly cancelled) result.
void expect_close_scaled(const Product& t, const Matrix& a, const Matrix& b, const std::vector<float>& c0,
                         const std::vector<float>& got, const std::vector<float>& want, double tol, const char* what) {
  const int64_t ldc = t.n + 2;
  for (int64_t i = 0; i < t.m; ++i) {
    for (int64_t j = 0; j < t.n; ++j) {
      double mag = t.acc ? std::abs(c0[i * ldc + j]) : 0.0;
      for (int64_t p = 0; p < t.k; ++p) mag += std::abs(static_cast<double>(a.at(i, p)) * b.at(p, j));
      ASSERT_NEAR(got[i * ldc + j], want[i * ldc + j], tol * mag + 1e-30)
          << what << " m " << t.m << " n " << t.n << " k " << t.k << " a_rows " << t.a_rows << " b_rows " << t.b_rows
          << " acc " << t.acc << " at (" << i << ", " << j << ")";
    }
    for (int64_t j = t.n; j < ldc; ++j) ASSERT_EQ(got[i * ldc + j], c0[i * ldc + j]) << what << " wrote past n";
  }
}

std::vector<float> double_sums(const Product& t, const Matrix& a, const Matrix& b, const std::vector<float>& c0) {
  std::vector<float> want = c0;
  const int64_t ldc = t.n + 2;
  for (int64_t i = 0; i < t.m; ++i)
    for (int64_t j = 0; j < t.n; ++j) {
      double s = t.acc ? c0[i * ldc + j] : 0.0;
      for (int64_t p = 0; p < t.k; ++p) s += static_cast<double>(a.at(i, p)) * b.at(p, j);
      want[i * ldc + j] = static_cast<float>(s);
    }
  return want;
}

void check_product(const Product& t) {
  const Matrix a = make_matrix(t.m, t.k, t.a_rows, 1), b = make_matrix(t.k, t.n, t.b_rows, 2);
  const std::vector<float> c0 = randf(t.m * (t.n + 2), 3);
  const std::vector<float> twin = run(t, a, b, c0, Isa::kScalar, true);
  expect_close_scaled(t, a, b, c0, twin, double_sums(t, a, b, c0), 1e-5, "twin vs double");
  for (Isa isa : fast_levels()) {
    const std::vector<float> got = run(t, a, b, c0, isa, false);
    expect_close_scaled(t, a, b, c0, got, twin, 1e-5, isa_name(isa));
  }
}

TEST(GemmF32, EveryIsaMatchesTwinAtOddSizes) {
  const int64_t sizes[] = {1, 3, 17, 33, 100};
  for (int64_t m : sizes)
    for (int64_t n : sizes)
      for (int64_t k : sizes)
        for (int layout = 0; layout < 4; ++layout)
          for (bool acc : {false, true}) check_product({m, n, k, (layout & 1) != 0, (layout & 2) != 0, acc});
}

TEST(GemmF32, EveryIsaMatchesTwinPastOneBlock) {  // k past 256 (C accumulates across blocks), n past 512
  const Product big[] = {{3, 600, 257, true, true, false},
                         {13, 530, 300, false, false, true},
                         {25, 47, 513, true, false, true},
                         {12, 1030, 20, false, true, false}};
  for (const Product& t : big) check_product(t);
}

// Packing gives the same bytes at every ISA (the layout is shared); products over a prefix of the
// packed columns and a range of its rows match the twin and double sums.
TEST(GemmF32, PackedBEveryIsaMatchesTwin) {
  struct Case {
    int64_t k, n, m, n_used, p0, k_used;
  };
  const Case cases[] = {{1, 1, 1, 1, 0, 1},       {37, 70, 13, 45, 5, 30},  {70, 33, 25, 33, 69, 1},
                        {16, 128, 32, 96, 0, 16}, {128, 32, 7, 17, 64, 64}, {100, 17, 33, 3, 0, 100}};
  for (const Case& t : cases) {
    for (bool b_rows : {true, false}) {
      const Matrix b = make_matrix(t.k, t.n, b_rows, 21);
      const auto size = static_cast<size_t>(gemm_f32_packed_size(t.k, t.n));
      AlignedBuffer<float> twin_packed(size);
      gemm_f32_pack_b_ref(b.op, t.k, t.n, twin_packed.data());
      const std::vector<float> twin_bytes(twin_packed.data(), twin_packed.data() + size);
      for (Isa isa : fast_levels()) {
        AlignedBuffer<float> packed(size);
        const Isa prev = set_isa_override(isa);
        gemm_f32_pack_b(b.op, t.k, t.n, packed.data());
        set_isa_override(prev);
        ASSERT_EQ(std::vector<float>(packed.data(), packed.data() + size), twin_bytes) << isa_name(isa);
      }
      // The product reads B(p0 + p, j): a view of B from row p0, as the unpacked entry point takes it.
      Matrix bv = b;
      bv.op.data = b.op.data + t.p0 * b.op.rs;
      for (bool a_rows : {true, false}) {
        for (bool acc : {false, true}) {
          const Product pr{t.m, t.n_used, t.k_used, a_rows, b_rows, acc};
          const Matrix a = make_matrix(t.m, t.k_used, a_rows, 22);
          const std::vector<float> c0 = randf(t.m * (t.n_used + 2), 23);
          std::vector<float> twin = c0;
          gemm_f32_packed_ref(a.op, twin_packed.data(), t.k, t.p0, twin.data(), t.n_used + 2, {t.m, t.n_used, t.k_used},
                              acc);
          expect_close_scaled(pr, a, bv, c0, twin, double_sums(pr, a, bv, c0), 1e-5, "packed twin vs double");
          for (Isa isa : fast_levels()) {
            std::vector<float> got = c0;
            const Isa prev = set_isa_override(isa);
            gemm_f32_packed(a.op, twin_packed.data(), t.k, t.p0, got.data(), t.n_used + 2, {t.m, t.n_used, t.k_used},
                            acc);
            set_isa_override(prev);
            expect_close_scaled(pr, a, bv, c0, got, twin, 1e-5, isa_name(isa));
          }
        }
      }
    }
  }
}

// k == 0 writes zeros (or keeps C when accumulating); m == 0 or n == 0 touches nothing; at every level.
TEST(GemmF32, EmptyShapes) {
  const float dummy = 0;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (isa > detected_isa()) continue;
    const Isa prev = set_isa_override(isa);
    std::vector<float> c = {1, 2, 3, 4, 5, 6};
    gemm_f32({&dummy, 0, 1}, {&dummy, 3, 1}, c.data(), 3, {2, 3, 0}, true);
    EXPECT_EQ(c, (std::vector<float>{1, 2, 3, 4, 5, 6})) << isa_name(isa);
    gemm_f32({&dummy, 1, 1}, {&dummy, 1, 1}, c.data(), 3, {2, 0, 4}, false);
    gemm_f32({&dummy, 1, 1}, {&dummy, 1, 1}, c.data(), 3, {0, 3, 4}, false);
    EXPECT_EQ(c, (std::vector<float>{1, 2, 3, 4, 5, 6})) << isa_name(isa);
    gemm_f32_packed({&dummy, 1, 1}, &dummy, 4, 0, c.data(), 3, {2, 0, 4}, false);
    EXPECT_EQ(c, (std::vector<float>{1, 2, 3, 4, 5, 6})) << isa_name(isa);
    gemm_f32({&dummy, 0, 1}, {&dummy, 3, 1}, c.data(), 3, {2, 3, 0}, false);
    EXPECT_EQ(c, std::vector<float>(6, 0.0f)) << isa_name(isa);
    set_isa_override(prev);
  }
  std::vector<float> c = {1, 2};
  gemm_f32_ref({&dummy, 0, 1}, {&dummy, 2, 1}, c.data(), 2, {1, 2, 0}, false);
  EXPECT_EQ(c, std::vector<float>(2, 0.0f));
}

}  // namespace
}  // namespace moe
