// Parallel linear layer (see linear.h).
#include "model/linear.h"

#include <algorithm>
#include <vector>

#include "kernels/quant_matmul.h"
#include "runtime/thread_pool.h"

namespace moe {
namespace {
constexpr int64_t kSerialMacs = 1 << 15;

// Block-quantized weights: x's rows quantized once for the weights' type (in parallel when there are
// many), not again by every column block.
const uint8_t* quantize_input(const float* x, const WeightView& w, const LinearShape& s, ActFormat f) {
  thread_local std::vector<uint8_t> buf;
  const int64_t rb = q8_row_bytes(s.in);
  buf.resize(static_cast<size_t>(s.rows * rb));
  uint8_t* out = buf.data();  // (the workers must not name buf: thread_local, theirs would be another)
  const auto rows = [&](int64_t r0, int64_t r1) {
    quantize_rows_q8(f, x + r0 * s.in, s.in, r1 - r0, s.in, out + r0 * rb);
  };
  if (s.rows >= 8) {
    thread_pool().parallel_for(s.rows, [&](int64_t r0, int64_t r1, int) { rows(r0, r1); });
  } else {
    rows(0, s.rows);
  }
  return out;
}

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
  const bool quantized = takes_q8_activations(w.dtype);
  const ActFormat f = quantized ? act_format(w.dtype) : ActFormat::kQ8_0;
  const uint8_t* xq = quantized ? quantize_input(x, w, s, f) : nullptr;
  const int64_t xq_bytes = q8_row_bytes(s.in);
  thread_pool().parallel_for_dynamic(n_cols * n_rows, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t r0 = (item / n_cols) * row_block, c0 = (item % n_cols) * col_block;
      const int64_t rows = std::min(row_block, s.rows - r0), cols = std::min(col_block, s.out - c0);
      const WeightView part = weight_rows(w, c0);
      float* yb = y + r0 * s.out + c0;
      if (quantized) {
        matmul_q8(Q8Rows{xq + r0 * xq_bytes, xq_bytes, nullptr, nullptr, f}, part, yb, s.out,
                  MatmulShape{rows, cols, s.in}, false);
      } else {
        matmul_nt(x + r0 * s.in, s.in, part, yb, s.out, MatmulShape{rows, cols, s.in}, false);
      }
      if (bias) {
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) yb[r * s.out + c] += bias[c0 + c];
      }
    }
  });
}

}  // namespace moe
