// Dense GLU FFN over column chunks, on the expert executor's kernels (see dense_ffn.h).
#include "moe/dense_ffn.h"

#include <algorithm>

#include "runtime/thread_pool.h"

namespace moe {

void dense_ffn_forward(const ExpertWeights& chunks, const ActivationOptions& act, const float* x, int64_t T, float* out,
                       const ExpertRunOptions& o, std::vector<float>* h_scratch) {
  const int C = chunks.n_expert();
  const int64_t D = chunks.d_model, F = chunks.d_ff;
  if (T == 0 || C == 0) return;
  h_scratch->resize(static_cast<size_t>(C) * T * F);  // [C, T, F]
  // Phase 1 reuses the expert executor: every chunk sees all T rows; its down output is discarded
  // by giving phase 2 nothing to do, so only gate/up/activation run there.
  std::vector<ExpertTask> tasks;
  for (int c = 0; c < C; ++c) tasks.push_back({&chunks.experts[c], x, D, T, F, h_scratch->data() + c * T * F, nullptr});
  run_expert_up_phase(tasks, D, act, o, nullptr);
  // Phase 2: out[rows, cols] = sum_c h_c[rows, :] . down_c[cols, :]^T.
  const int64_t rb = T <= o.decode_max_rows ? T : std::max<int64_t>(1, o.prefill_row_block);
  const int threads = thread_pool().size();
  const int64_t n_rb = (T + rb - 1) / rb;
  const int64_t want = std::max<int64_t>((8 * threads + n_rb - 1) / n_rb, 1);
  // Multiples of 32 columns: packed weights are sliced at panel boundaries.
  const int64_t cb = std::clamp<int64_t>(((D + want - 1) / want + 31) / 32 * 32, 32, std::max<int64_t>(32, D));
  const int64_t n_cb = (D + cb - 1) / cb;
  thread_pool().parallel_for_dynamic(n_rb * n_cb, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t r0 = (i / n_cb) * rb, r1 = std::min(T, r0 + rb), c0 = (i % n_cb) * cb, c1 = std::min(D, c0 + cb);
      for (int c = 0; c < C; ++c) {
        const WeightView rows = weight_rows(chunks.experts[c].down, c0);
        const float* h = h_scratch->data() + (c * T + r0) * F;
        matmul_nt(h, F, rows, out + r0 * D + c0, D, {r1 - r0, c1 - c0, F}, c > 0);
      }
    }
  });
}

}  // namespace moe
