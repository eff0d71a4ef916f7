// Expert FFN: activations, weight-view helpers, and the two-phase grouped executor
// (gate+up+activation, then down) over (expert, row block, column block) work items.
#include "moe/expert_ffn.h"

#include <algorithm>
#include <cmath>

#include "kernels/activation.h"
#include "kernels/packed_weights.h"
#include "kernels/quant_matmul.h"
#include "moe/combine.h"
#include "runtime/thread_pool.h"
#include "util/check.h"
#include "util/error.h"

namespace moe {
namespace {

struct Item {
  int32_t task;
  int64_t r0, r1, c0, c1;
};

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Row blocks per task, then column blocks sized so that there are several items per thread.
// n_cols(task) is F (phase 1) or D (phase 2).
// Column blocks are multiples of 32 (packed weights are sliced at panel boundaries), or of the block of the
// format h is quantized in when phase 1 quantizes it (align).
template <typename NCols>
std::vector<Item> make_items(const std::vector<ExpertTask>& tasks, NCols n_cols, const ExpertRunOptions& o, int threads,
                             int64_t* max_row_block, int64_t align = 32) {
  struct RowBlock {
    int32_t task;
    int64_t r0, r1;
  };
  std::vector<RowBlock> row_blocks;
  *max_row_block = 0;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const int64_t rows = tasks[i].rows;
    const bool decode = o.path == KernelPath::kDecode || (o.path == KernelPath::kAuto && rows <= o.decode_max_rows);
    const int64_t rb = decode ? rows : std::max<int64_t>(1, o.prefill_row_block);
    for (int64_t r0 = 0; r0 < rows; r0 += rb) {
      const int64_t r1 = std::min(rows, r0 + rb);
      row_blocks.push_back({static_cast<int32_t>(i), r0, r1});
      *max_row_block = std::max(*max_row_block, r1 - r0);
    }
  }
  std::vector<Item> items;
  if (row_blocks.empty()) return items;
  const int64_t n_rb = static_cast<int64_t>(row_blocks.size());
  for (const RowBlock& rb : row_blocks) {
    const int64_t cols = n_cols(tasks[rb.task]);
    // Enough column blocks for ~8 items per thread overall, and at most 512 columns per item.
    const int64_t want = std::max<int64_t>((8 * threads + n_rb - 1) / n_rb, (cols + 511) / 512);
    const int64_t cb =
        std::clamp<int64_t>(round_up((cols + want - 1) / want, align), align, std::max<int64_t>(align, cols));
    for (int64_t c0 = 0; c0 < cols; c0 += cb) items.push_back({rb.task, rb.r0, rb.r1, c0, std::min(cols, c0 + cb)});
  }
  return items;
}

}  // namespace

void ActivationOptions::validate() const {
  if (kind == GluKind::kSwiGLUOai && !(limit > 0.0f))
    fail("expert", "gpt-oss clamped SwiGLU needs limit > 0, got {}", limit);
  if (limit < 0.0f || !std::isfinite(limit)) fail("expert", "activation limit must be finite and >= 0, got {}", limit);
  if (!std::isfinite(alpha)) fail("expert", "activation alpha must be finite, got {}", alpha);
}

void apply_glu(const ActivationOptions& a, const float* gate, const float* up, float* h, int64_t n) {
  switch (a.kind) {
    case GluKind::kSwiGLU:
      if (a.limit > 0.0f) return swiglu_clamped(gate, up, h, n, {.alpha = 1.0f, .limit = a.limit, .up_add = 0.0f});
      return silu_mul(gate, up, h, n);  // vectorized (kernels/activation.h)
    case GluKind::kGeGLU:
      for (int64_t i = 0; i < n; ++i) {
        const float g = gate[i];
        h[i] = 0.5f * g * (1.0f + std::erf(g * 0.70710678118654752f)) * up[i];
      }
      return;
    case GluKind::kGeGLUTanh:
      for (int64_t i = 0; i < n; ++i) {
        const float g = gate[i];
        const float inner = 0.79788456080286536f * (g + 0.044715f * g * g * g);
        h[i] = 0.5f * g * (1.0f + std::tanh(inner)) * up[i];
      }
      return;
    case GluKind::kSwiGLUOai:
      return swiglu_clamped(gate, up, h, n, {.alpha = a.alpha, .limit = a.limit, .up_add = 1.0f});
  }
}

const ExpertMatrices* ExpertWeights::first_present() const {
  for (const ExpertMatrices& m : experts)
    if (m.gate.data) return &m;
  return nullptr;
}

int64_t ExpertWeights::bytes_per_expert() const {
  if (experts.empty()) return 0;
  const ExpertMatrices& m = first_present() ? *first_present() : experts[0];
  int64_t b = 2 * d_ff * dtype_row_bytes(m.gate.dtype, d_model) + d_model * dtype_row_bytes(m.down.dtype, d_ff);
  b += 4 * ((m.gate_bias ? d_ff : 0) + (m.up_bias ? d_ff : 0) + (m.down_bias ? d_model : 0));
  return b;
}

int64_t ExpertWeights::params_per_expert() const {
  if (experts.empty()) return 0;
  const ExpertMatrices& m = first_present() ? *first_present() : experts[0];
  return 3 * d_ff * d_model + (m.gate_bias ? d_ff : 0) + (m.up_bias ? d_ff : 0) + (m.down_bias ? d_model : 0);
}

ExpertWeights ExpertWeights::stacked(int n_expert, int64_t d_model, int64_t d_ff, DType dtype, const void* gate,
                                     const void* up, const void* down, const float* gate_bias, const float* up_bias,
                                     const float* down_bias) {
  ExpertWeights w;
  w.d_model = d_model;
  w.d_ff = d_ff;
  const int64_t stride = d_ff * dtype_row_bytes(dtype, d_model);  // bytes per expert matrix (both shapes)
  auto at = [&](const void* p, int e) { return static_cast<const void*>(static_cast<const uint8_t*>(p) + e * stride); };
  for (int e = 0; e < n_expert; ++e) {
    ExpertMatrices m;
    m.gate = {at(gate, e), dtype, d_model};
    m.up = {at(up, e), dtype, d_model};
    m.down = {at(down, e), dtype, d_ff};
    m.gate_bias = gate_bias ? gate_bias + e * d_ff : nullptr;
    m.up_bias = up_bias ? up_bias + e * d_ff : nullptr;
    m.down_bias = down_bias ? down_bias + e * d_model : nullptr;
    w.experts.push_back(m);
  }
  return w;
}

namespace {

// Where pack_expert_weights puts each expert's three matrices in its arena: offset[3 e + j] (64-byte
// aligned; panels of a matrix that was already packed take no room), offset.back() the arena's size; empty
// when the experts stay rows (mixed dtypes across experts, or a dtype without panel kernels).
std::vector<size_t> expert_arena_plan(const ExpertWeights& w) {
  // Experts with no data belong to another rank (expert parallelism): they stay absent.
  const auto present = [](const ExpertMatrices& m) { return m.gate.data && m.up.data && m.down.data; };
  const auto first = std::find_if(w.experts.begin(), w.experts.end(), present);
  if (first == w.experts.end()) return {};
  if (std::all_of(w.experts.begin(), w.experts.end(), present)) w.validate("pack");
  // Each matrix kind (gate, up, down) one dtype across the experts, each with panel kernels (a quantization
  // mixture may give down another type than gate and up).
  for (const ExpertMatrices& m : w.experts) {
    if (!present(m)) continue;
    if (m.gate.dtype != first->gate.dtype || m.up.dtype != first->up.dtype || m.down.dtype != first->down.dtype)
      return {};  // mixed across experts: leave as rows
  }
  for (DType dt : {first->gate.dtype, first->up.dtype, first->down.dtype})
    if (!panel_layout_supported(dt)) return {};
  const int64_t D = w.d_model, F = w.d_ff;
  const auto room = [](const WeightView& v, int64_t n, int64_t k) -> size_t {
    return v.layout == WeightLayout::kPanels ? 0 : (panel_bytes(v.dtype, n, k) + 63) / 64 * 64;
  };
  std::vector<size_t> offset(3 * w.experts.size() + 1, 0);
  for (size_t i = 0; i < w.experts.size(); ++i) {
    const ExpertMatrices& m = w.experts[i];
    const bool p = present(m);
    offset[3 * i + 1] = offset[3 * i] + (p ? room(m.gate, F, D) : 0);
    offset[3 * i + 2] = offset[3 * i + 1] + (p ? room(m.up, F, D) : 0);
    offset[3 * i + 3] = offset[3 * i + 2] + (p ? room(m.down, D, F) : 0);
  }
  return offset;
}

}  // namespace

size_t packed_expert_bytes(const ExpertWeights& w) {
  const std::vector<size_t> plan = expert_arena_plan(w);
  return plan.empty() ? 0 : plan.back();
}

PackedExpertWeights pack_expert_weights(const ExpertWeights& w, const ReleaseRows& release, const uint8_t* prepacked) {
  PackedExpertWeights out;
  out.weights = w;
  const std::vector<size_t> offset = expert_arena_plan(w);
  if (offset.empty()) return out;
  uint8_t* arena = nullptr;
  if (!prepacked) {
    out.arena = AlignedBuffer<uint8_t>(offset.back(), kUninitialized);  // packing writes every byte
    arena = out.arena.data();
  }
  const int64_t D = w.d_model, F = w.d_ff;
  thread_pool().parallel_for(w.n_expert(), [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      const ExpertMatrices& m = w.experts[size_t(i)];
      if (!(m.gate.data && m.up.data && m.down.data)) continue;
      const auto pack = [&](int j, const WeightView& v, int64_t n, int64_t k) {
        if (v.layout == WeightLayout::kPanels) return v;  // already packed
        const size_t at = offset[size_t(3 * i + j)];
        if (prepacked) return panel_view(v.dtype, k, prepacked + at);
        const WeightView packed = pack_panels(v, n, k, arena + at);
        if (release) release(v, n);
        return packed;
      };
      ExpertMatrices& pm = out.weights.experts[size_t(i)];
      pm.gate = pack(0, m.gate, F, D);
      pm.up = pack(1, m.up, F, D);
      pm.down = pack(2, m.down, D, F);
    }
  });
  out.packed = true;
  return out;
}

void ExpertWeights::validate(const char* what) const {
  if (experts.empty()) return;
  if (d_model < 1 || d_ff < 1) fail("expert", "{}: d_model and d_ff must be >= 1, got {} and {}", what, d_model, d_ff);
  for (size_t e = 0; e < experts.size(); ++e) {
    const ExpertMatrices& m = experts[e];
    const WeightView* views[3] = {&m.gate, &m.up, &m.down};
    const char* names[3] = {"gate", "up", "down"};
    const int64_t min_ld[3] = {d_model, d_model, d_ff};
    for (int i = 0; i < 3; ++i) {
      const WeightView& v = *views[i];
      if (!v.data) fail("expert", "{} expert {}: {} weight is missing", what, e, names[i]);
      if (v.dtype != DType::kF32 && v.dtype != DType::kBF16 && !dtype_is_block(v.dtype)) {
        fail("expert", "{} expert {}: {} weight dtype {} is not F32, BF16 or block-quantized", what, e, names[i],
             dtype_name(v.dtype));
      }
      if (v.ld < min_ld[i])
        fail("expert", "{} expert {}: {} leading dimension {} < {}", what, e, names[i], v.ld, min_ld[i]);
    }
    if ((m.gate_bias == nullptr) != (experts[0].gate_bias == nullptr) ||
        (m.down_bias == nullptr) != (experts[0].down_bias == nullptr)) {
      fail("expert", "{} expert {}: biases present on some experts only", what, e);
    }
  }
}

void run_expert_up_phase(const std::vector<ExpertTask>& tasks, int64_t d_model, const ActivationOptions& act,
                         const ExpertRunOptions& o, ExpertRunStats* stats) {
  const int64_t D = d_model;
  ThreadPool& pool = thread_pool();
  const int threads = pool.size();
  int64_t max_rb = 0, max_f = 0;
  for (const ExpertTask& task : tasks) max_f = std::max(max_f, task.d_ff);
  int64_t align = 32;
  for (const ExpertTask& task : tasks)
    if (task.hq) align = std::max(align, act_block(act_format(task.w->down.dtype)));
  const std::vector<Item> items = make_items(
      tasks, [](const ExpertTask& t) { return t.d_ff; }, o, threads, &max_rb, align);
  if (items.empty()) return;
  // Per-thread scratch for the up projection, [max row block, max F] with the row stride of h.
  std::vector<std::vector<float>> up_scratch(threads);
  for (auto& s : up_scratch) s.resize(static_cast<size_t>(max_rb) * max_f);  // [rows, F]
  std::vector<std::vector<float>> ref_rows(threads);  // reference kernels on gathered rows: their copy
  pool.parallel_for_dynamic(static_cast<int64_t>(items.size()), 1, [&](int64_t b, int64_t e, int t) {
    for (int64_t i = b; i < e; ++i) {
      const Item& it = items[i];
      const ExpertTask& task = tasks[it.task];
      const ExpertMatrices& w = *task.w;
      const int64_t rows = it.r1 - it.r0, cols = it.c1 - it.c0, F = task.d_ff;
      float* g = task.h + it.r0 * F + it.c0;  // [rows, cols] of h (row stride F)
      float* u = up_scratch[t].data() + it.c0;
      const WeightView gv = weight_rows(w.gate, it.c0), uv = weight_rows(w.up, it.c0);
      const GatheredRows gathered{task.x, task.ldx, task.x_rows ? task.x_rows + it.r0 : nullptr,
                                  task.x_scale ? task.x_scale + it.r0 : nullptr};
      if (o.reference_kernels) {
        const float* x = task.x + it.r0 * task.ldx;
        int64_t ldx = task.ldx;
        if (task.x_rows) {
          ref_rows[t].resize(static_cast<size_t>(rows * D));  // [rows, D]
          gather_rows(gathered, rows, D, ref_rows[t].data(), D);
          x = ref_rows[t].data();
          ldx = D;
        }
        matmul_nt_ref(x, ldx, gv, g, F, {rows, cols, D}, false);
        matmul_nt_ref(x, ldx, uv, u, F, {rows, cols, D}, false);
      } else if (task.xq) {  // x quantized once by the caller
        const Q8Rows a{task.xq + (task.x_rows ? 0 : it.r0 * task.xq_bytes), task.xq_bytes,
                       task.x_rows ? task.x_rows + it.r0 : nullptr, gathered.scale, act_format(gv.dtype)};
        matmul_q8(a, gv, g, F, {rows, cols, D}, false, uv.data);  // the look-ahead goes on into up's slice
        matmul_q8(a, uv, u, F, {rows, cols, D}, false);
      } else if (task.x_rows) {
        matmul_nt_dual_gathered(gathered, gv, uv, g, u, F, {rows, cols, D});
      } else {
        matmul_nt_dual(task.x + it.r0 * task.ldx, task.ldx, gv, uv, g, u, F, {rows, cols, D});
      }
      for (int64_t r = 0; r < rows; ++r) {
        float* gr = g + r * F;
        float* ur = u + r * F;
        if (w.gate_bias)
          for (int64_t c = 0; c < cols; ++c) gr[c] += w.gate_bias[it.c0 + c];
        if (w.up_bias)
          for (int64_t c = 0; c < cols; ++c) ur[c] += w.up_bias[it.c0 + c];
        apply_glu(act, gr, ur, gr, cols);
      }
      if (task.hq) {
        const ActFormat f = act_format(w.down.dtype);
        for (int64_t r = 0; r < rows; ++r)
          quantize_row_q8_part(f, g + r * F - it.c0, F, it.c0, it.c1, task.hq + (it.r0 + r) * task.hq_bytes);
      }
      if (task.hb && matmul_rounds_a_to_bf16(w.down)) {
        for (int64_t r = 0; r < rows; ++r) {
          uint16_t* hr = task.hb + (it.r0 + r) * task.ldhb;
          round_to_bf16(g + r * F, cols, hr + it.c0);
          if (it.c1 == F && task.ldhb > F) hr[F] = 0;  // the pad column of an odd F
        }
      }
    }
  });
  if (!stats) return;
  for (const Item& it : items) {
    stats->weight_bytes_streamed += 2 * (it.c1 - it.c0) * dtype_row_bytes(tasks[it.task].w->gate.dtype, D);
  }
  for (const ExpertTask& task : tasks) stats->flops += 2 * task.rows * 2 * task.d_ff * D;
  stats->work_items += static_cast<int64_t>(items.size());
}

void run_expert_down_phase(const std::vector<ExpertTask>& tasks, int64_t d_model, const ExpertRunOptions& o,
                           ExpertRunStats* stats) {
  const int64_t D = d_model;
  ThreadPool& pool = thread_pool();
  int64_t max_rb = 0;
  const std::vector<Item> items = make_items(
      tasks, [D](const ExpertTask&) { return D; }, o, pool.size(), &max_rb);
  pool.parallel_for_dynamic(static_cast<int64_t>(items.size()), 1, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      const Item& it = items[i];
      const ExpertTask& task = tasks[it.task];
      const ExpertMatrices& w = *task.w;
      const int64_t rows = it.r1 - it.r0, cols = it.c1 - it.c0, F = task.d_ff;
      const float* h = task.h + it.r0 * F;
      float* y = task.y + it.r0 * D + it.c0;  // [rows, cols] of y (row stride D)
      const WeightView dv = weight_rows(w.down, it.c0);
      if (o.reference_kernels) {
        matmul_nt_ref(h, F, dv, y, D, {rows, cols, F}, false);
      } else if (task.hq) {
        matmul_q8(Q8Rows{task.hq + it.r0 * task.hq_bytes, task.hq_bytes, nullptr, nullptr, act_format(dv.dtype)}, dv, y,
                  D, {rows, cols, F}, false);
      } else if (task.hb && matmul_rounds_a_to_bf16(dv)) {
        matmul_nt_bf16a(task.hb + it.r0 * task.ldhb, task.ldhb, dv, y, D, {rows, cols, F}, false);
      } else {
        matmul_nt(h, F, dv, y, D, {rows, cols, F}, false);
      }
      if (w.down_bias) {
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < cols; ++c) y[r * D + c] += w.down_bias[it.c0 + c];
        }
      }
    }
  });
  if (!stats) return;
  for (const Item& it : items) {
    stats->weight_bytes_streamed +=
        (it.c1 - it.c0) * dtype_row_bytes(tasks[it.task].w->down.dtype, tasks[it.task].d_ff);
  }
  for (const ExpertTask& task : tasks) stats->flops += 2 * task.rows * task.d_ff * D;
  stats->work_items += static_cast<int64_t>(items.size());
}

void run_expert_down_combine(const std::vector<ExpertTask>& tasks, int64_t d_model, int64_t n_out, float* out,
                             const ExpertRunOptions& o, ExpertRunStats* stats) {
  const int64_t D = d_model;
  ThreadPool& pool = thread_pool();
  const int threads = pool.size();
  // Column blocks: multiples of 32 (panel boundaries), 2 per thread for the dynamic schedule, at least
  // 128 columns (the bf16 panel kernel's 4 panels at once at m = 1) unless D is smaller. Every block costs
  // the same (each runs every expert), so more blocks only even out a thread slowed by others; but each
  // block is one product per expert, whose start waits on memory before its look-ahead fills: 8 per thread
  // (128 columns of a 2048-wide layer: 80 KB of Q6_K per product) read a Q4_K_M layer's experts 7-11% slower
  // than 2 (2 threads; moe_layer_bench BM_MoeLayerQ4KM at 1-16 tokens; 512 tokens +3-6%, bf16 the same).
  const int64_t cb =
      std::min(round_up(D, 32), std::max<int64_t>(128, round_up((D + 2 * threads - 1) / (2 * threads), 32)));
  const int64_t n_items = (D + cb - 1) / cb;
  constexpr int64_t kRowChunk = 256;  // rows of one product: its [rows, cb] result stays in L2
  int64_t max_rows = 0;
  for (const ExpertTask& t : tasks) max_rows = std::max(max_rows, std::min(t.rows, kRowChunk));
  std::vector<std::vector<float>> y_scratch(threads);
  for (auto& y : y_scratch) y.resize(static_cast<size_t>(std::max<int64_t>(1, max_rows * cb)));  // [rows, cb]
  pool.parallel_for_dynamic(n_items, 1, [&](int64_t b, int64_t e, int t) {
    for (int64_t item = b; item < e; ++item) {
      const int64_t c0 = item * cb, cols = std::min(cb, D - c0);
      for (int64_t r = 0; r < n_out; ++r) std::fill(out + r * D + c0, out + r * D + c0 + cols, 0.0f);
      float* y = y_scratch[t].data();
      for (size_t ti = 0; ti < tasks.size(); ++ti) {
        const ExpertTask& task = tasks[ti];
        const ExpertMatrices& w = *task.w;
        const int64_t F = task.d_ff;
        const WeightView dv = weight_rows(w.down, c0);
        // The next expert's slice of these columns: prefetched while this one's last slice computes.
        const void* next_b = ti + 1 < tasks.size() ? weight_rows(tasks[ti + 1].w->down, c0).data : nullptr;
        for (int64_t r0 = 0; r0 < task.rows; r0 += kRowChunk) {
          const int64_t rows = std::min(kRowChunk, task.rows - r0);
          const float* h = task.h + r0 * F;
          const void* next = r0 + kRowChunk < task.rows ? nullptr : next_b;
          if (o.reference_kernels) {
            matmul_nt_ref(h, F, dv, y, cols, {rows, cols, F}, false);
          } else if (task.hq) {
            matmul_q8(Q8Rows{task.hq + r0 * task.hq_bytes, task.hq_bytes, nullptr, nullptr, act_format(dv.dtype)}, dv,
                      y, cols, {rows, cols, F}, false, next);
          } else if (task.hb && matmul_rounds_a_to_bf16(dv)) {
            matmul_nt_bf16a(task.hb + r0 * task.ldhb, task.ldhb, dv, y, cols, {rows, cols, F}, false, next);
          } else {
            matmul_nt(h, F, dv, y, cols, {rows, cols, F}, false, next);
          }
          for (int64_t r = 0; r < rows; ++r) {
            float* yr = y + r * cols;
            if (w.down_bias) {
              for (int64_t c = 0; c < cols; ++c) yr[c] += w.down_bias[c0 + c];
            }
            add_scaled_row(yr, task.out_scale ? task.out_scale[r0 + r] : 1.0f, cols,
                           out + int64_t(task.out_rows[r0 + r]) * D + c0);
          }
        }
      }
    }
  });
  if (!stats) return;
  for (const ExpertTask& task : tasks) {
    stats->weight_bytes_streamed += D * dtype_row_bytes(task.w->down.dtype, task.d_ff);
    stats->flops += 2 * task.rows * task.d_ff * D;
  }
  stats->work_items += n_items;
}

void run_expert_tasks(const std::vector<ExpertTask>& tasks, int64_t d_model, const ActivationOptions& act,
                      const ExpertRunOptions& o, ExpertRunStats* stats) {
  run_expert_up_phase(tasks, d_model, act, o, stats);
  run_expert_down_phase(tasks, d_model, o, stats);
}

}  // namespace moe
