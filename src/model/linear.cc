// Parallel linear layer (see linear.h).
#include "model/linear.h"

#include <algorithm>

#include "runtime/thread_pool.h"

namespace moe {
namespace {
constexpr int64_t kSerialMacs = 1 << 15;
}  // namespace

void linear_forward(const float* x, const WeightView& w, const float* bias, float* y, const LinearShape& s) {
  if (s.rows <= 0 || s.out <= 0) return;
  if (s.rows * s.out * s.in < kSerialMacs) {  // waking the pool costs more than the product
    matmul_nt(x, s.in, w, y, s.out, MatmulShape{s.rows, s.out, s.in}, false);
    if (bias) {
      for (int64_t r = 0; r < s.rows; ++r)
        for (int64_t c = 0; c < s.out; ++c) y[r * s.out + c] += bias[c];
    }
    return;
  }
  const int64_t threads = thread_pool().size();
  // Column blocks of at least 16 rows of W (32 for panels, which slice at panel boundaries), enough
  // of them for ~4 items per thread.
  const int64_t unit = w.layout == WeightLayout::kPanels ? 32 : 16;
  const int64_t col_block = std::max<int64_t>(unit, (s.out + 4 * threads - 1) / (4 * threads) / unit * unit);
  const int64_t row_block = 256;
  const int64_t n_cols = (s.out + col_block - 1) / col_block, n_rows = (s.rows + row_block - 1) / row_block;
  thread_pool().parallel_for_dynamic(n_cols * n_rows, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t r0 = (item / n_cols) * row_block, c0 = (item % n_cols) * col_block;
      const int64_t rows = std::min(row_block, s.rows - r0), cols = std::min(col_block, s.out - c0);
      const WeightView part = weight_rows(w, c0);
      float* yb = y + r0 * s.out + c0;
      matmul_nt(x + r0 * s.in, s.in, part, yb, s.out, MatmulShape{rows, cols, s.in}, false);
      if (bias) {
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) yb[r * s.out + c] += bias[c0 + c];
      }
    }
  });
}

}  // namespace moe
