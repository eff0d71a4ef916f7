// Linear layers of the decoder on the thread pool: y = x . W^T (+ bias), with the output split
// into (row block, column block) items so a decode step (T = 1) still streams W on every thread.
// The kernels themselves (kernels/matmul.h) run on the calling thread only.
#pragma once

#include <cstdint>

#include "kernels/matmul.h"

namespace moe {

struct LinearShape {
  int64_t rows = 0;  // T
  int64_t out = 0;   // n (rows of W)
  int64_t in = 0;    // k (columns of W; x's row length)
};

// x [T, in] (packed), w [out, in] (row stride w.ld), bias [out] or null, y [T, out] (packed).
void linear_forward(const float* x, const WeightView& w, const float* bias, float* y, const LinearShape& shape);

}  // namespace moe
