// linear_forward on block-quantized weights (the decoder's projections from GGUF files): the input is
// quantized once and every column block reads it, on the pool's threads; the result equals the scalar
// reference kernel on the whole matrix bit for bit, for decode and prefill row counts.
#include "model/linear.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/packed_weights.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_matmul.h"
#include "runtime/thread_pool.h"

namespace moe {
namespace {

TEST(LinearQuantized, EqualsTheReferenceKernelAtEveryRowCount) {
  set_num_threads(2);
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (DType t : {DType::kQ8_0, DType::kQ4_K, DType::kMXFP4, DType::kIQ4_XS}) {
    const int64_t n = 200, k = 512;
    std::vector<float> wf(static_cast<size_t>(n * k));
    for (float& v : wf) v = normal(rng);
    std::vector<uint8_t> rows(static_cast<size_t>(n * dtype_row_bytes(t, k)));
    for (int64_t j = 0; j < n; ++j) quantize_row(t, wf.data() + j * k, rows.data() + j * dtype_row_bytes(t, k), k);
    std::deque<PackedWeights> store;
    const WeightView w = pack_dense(WeightView{rows.data(), t, k}, n, &store);
    const float bias_value = 0.5f;
    std::vector<float> bias(static_cast<size_t>(n), bias_value);
    for (int64_t T : {1, 3, 24, 300}) {
      std::vector<float> x(static_cast<size_t>(T * k));
      for (float& v : x) v = normal(rng);
      std::vector<float> y(static_cast<size_t>(T * n)), ref(y.size());
      linear_forward(x.data(), w, bias.data(), y.data(), LinearShape{T, n, k});
      std::vector<uint8_t> qa(static_cast<size_t>(T * q8_row_bytes(k)));
      quantize_rows_q8(act_format(t), x.data(), k, T, k, qa.data());
      matmul_q8_ref(Q8Rows{qa.data(), q8_row_bytes(k), nullptr, nullptr, act_format(t)}, w, ref.data(), n, {T, n, k},
                    false);
      for (float& v : ref) v += bias_value;
      ASSERT_EQ(0, std::memcmp(y.data(), ref.data(), y.size() * 4)) << dtype_name(t) << " T " << T;
    }
  }
}

}  // namespace
}  // namespace moe
