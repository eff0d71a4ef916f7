// Experts packed into the kernels' panel layout (pack_expert_weights): the MoE layer and the dense
// chunked FFN on packed weights against the float64 naive reference on the original rows, at sizes
// that are not multiples of the 32-row panels, on every kernel path; ISAs without panel kernels
// leave the weights as they are.
#include <gtest/gtest.h>

#include <string>

#include "moe/combine.h"
#include "moe/dense_ffn.h"
#include "moe/expert_ffn.h"
#include "moe/moe_layer.h"
#include "naive_moe.h"
#include "runtime/cpu_features.h"

namespace moe {
namespace {

using testing::naive_layer;
using testing::random_input;
using testing::RandomLayer;

double max_rel_error(const std::vector<float>& got, const std::vector<double>& want) {
  double max_err = 0, max_ref = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    max_err = std::max(max_err, std::abs(double(got[i]) - want[i]));
    max_ref = std::max(max_ref, std::abs(want[i]));
  }
  return max_err / (1 + max_ref);
}

// f32: the f32 FMA panel kernel; bf16: vdpbf16ps (A rounded to bf16) where the ISA packs bf16.
double tolerance(DType dt) { return dt == DType::kBF16 ? 2e-2 : 2e-5; }

TEST(PackedExperts, LayerMatchesNaiveOnEveryPath) {
  const struct {
    KernelPath path;
    const char* name;
  } paths[] = {{KernelPath::kDecode, "decode"}, {KernelPath::kPrefill, "prefill"}, {KernelPath::kAuto, "auto"}};
  int packed_runs = 0;
  for (DType dt : {DType::kF32, DType::kBF16}) {
    for (const auto& [D, F] : {std::pair<int64_t, int64_t>{40, 36}, {70, 97}, {33, 64}}) {
      RandomLayer rl(7, 1, D, F, 33, dt, static_cast<uint32_t>(D + F), true);
      MoeLayerConfig cfg;
      cfg.d_model = D;
      cfg.router.n_expert = 7;
      cfg.router.top_k = 3;
      const MoeLayerWeights rows = rl.views(false, false, true);
      const PackedExpertWeights routed = pack_expert_weights(rows.experts);
      const PackedExpertWeights shared = pack_expert_weights(rows.shared);
      EXPECT_EQ(routed.packed, panel_layout_supported(dt));
      EXPECT_EQ(shared.packed, routed.packed);
      if (routed.packed) {
        EXPECT_EQ(routed.weights.experts[3].down.layout, WeightLayout::kPanels);
        ++packed_runs;
      }
      MoeLayerWeights w = rows;
      w.experts = routed.weights;
      w.shared = shared.weights;
      MoeLayer layer(cfg, w);
      for (int64_t T : {1, 3, 17, 64}) {
        for (const auto& run : paths) {
          const auto x = random_input(T, D, static_cast<uint32_t>(T + D));
          RunOptions ro;
          ro.experts.path = run.path;
          ro.experts.prefill_row_block = 5;
          std::vector<float> out(T * D);
          layer.forward(x.data(), T, out.data(), ro);
          const RoutingPlan& p = layer.last_plan();
          const auto want = naive_layer(cfg, rows, x.data(), T, 3, p.expert_ids, p.weights,
                                        std::vector<bool>(static_cast<size_t>(T * 3), true));
          EXPECT_LE(max_rel_error(out, want), tolerance(dt))
              << dtype_name(dt) << " D=" << D << " F=" << F << " T=" << T << " " << run.name;
        }
      }
    }
  }
  if (detected_isa() >= Isa::kAvx512Bf16 && active_isa() >= Isa::kAvx512Bf16) {
    EXPECT_EQ(packed_runs, 6);
  }
}

TEST(PackedExperts, DenseChunksMatchTheRowLayout) {
  for (DType dt : {DType::kF32, DType::kBF16}) {
    const int64_t D = 72, F = 40;
    RandomLayer rl(4, 0, D, F, 0, dt, 8);
    const MoeLayerWeights rows = rl.views(false, false, false);
    const PackedExpertWeights packed = pack_expert_weights(rows.experts);
    for (int64_t T : {1, 9, 40}) {
      const auto x = random_input(T, D, 5);
      std::vector<float> a(T * D), b(T * D), h;
      ExpertRunOptions ro;
      ro.prefill_row_block = 7;
      dense_ffn_forward(rows.experts, {}, x.data(), T, a.data(), ro, &h);
      dense_ffn_forward(packed.weights, {}, x.data(), T, b.data(), ro, &h);
      std::vector<double> want(a.begin(), a.end());
      EXPECT_LE(max_rel_error(b, want), tolerance(dt)) << dtype_name(dt) << " T=" << T;
    }
  }
}

// MoeLayer's fused path (rows of x read in place, h rounded to bf16 once by the up phase, the combine
// inside the down projection with the next expert's weights prefetched) against the unfused steps it
// replaced (x copied into rows, run_expert_tasks into [rows, D] outputs, combine_tokens): the same bits,
// f32 and bf16, rows and panels, odd F, a gated shared expert, weight before or after the expert, capacity
// drops, and experts with more than the fused product's 256-row chunk.
TEST(PackedExperts, FusedCombineEqualsTheSeparateSteps) {
  int n = 0;
  for (DType dt : {DType::kF32, DType::kBF16}) {
    for (bool packed : {false, true}) {
      for (bool before : {false, true}) {
        const int64_t D = 70, F = 97, Fs = 33;
        const int E = 5, K = 3;  // K >= 3: two terms add alike in either order
        RandomLayer rl(E, 1, D, F, Fs, dt, 21, true);
        MoeLayerWeights w = rl.views(false, false, true);
        const PackedExpertWeights routed = pack_expert_weights(w.experts), shared = pack_expert_weights(w.shared);
        if (packed) {
          w.experts = routed.weights;
          w.shared = shared.weights;
        }
        MoeLayerConfig cfg;
        cfg.d_model = D;
        cfg.router.n_expert = E;
        cfg.router.top_k = K;
        cfg.weight_before_expert = before;
        for (double cf : {0.0, 0.8}) {
          cfg.dispatch.mode = cf > 0 ? CapacityMode::kCapacity : CapacityMode::kDropless;
          cfg.dispatch.capacity_factor = cf > 0 ? cf : 1.0;
          MoeLayer layer(cfg, w);
          for (int64_t T : {1, 17, 700}) {  // 700 tokens x 3 slots / 5 experts: ~420 rows per expert
            const auto x = random_input(T, D, static_cast<uint32_t>(T));
            std::vector<float> got(T * D);
            layer.forward(x.data(), T, got.data());
            const RoutingPlan& p = layer.last_plan();
            const int64_t rows = p.n_rows();
            std::vector<float> xs(rows * D), hs(rows * F), ys(rows * D), sh(T * Fs), sy(T * D);
            for (int64_t r = 0; r < rows; ++r) {
              const int32_t s = p.row_to_slot[r];
              for (int64_t i = 0; i < D; ++i)
                xs[r * D + i] = before ? p.weights[s] * x[(s / K) * D + i] : x[(s / K) * D + i];
            }
            std::vector<ExpertTask> tasks;
            for (int e = 0; e < E; ++e) {
              const int64_t off = p.expert_offsets[e], c = p.expert_counts[e];
              if (c > 0)
                tasks.push_back(
                    {&w.experts.experts[e], xs.data() + off * D, D, c, F, hs.data() + off * F, ys.data() + off * D});
            }
            tasks.push_back({&w.shared.experts[0], x.data(), D, T, Fs, sh.data(), sy.data()});
            run_expert_tasks(tasks, D, cfg.activation, {}, nullptr);
            CombineArgs a;
            a.plan = &p;
            a.ys = ys.data();
            a.x = x.data();
            a.d_model = D;
            a.weighted = !before;
            a.shared_y = sy.data();
            a.n_shared = 1;
            a.shared_tokens = T;
            a.shared_gate = &w.shared_gate;
            std::vector<float> want(T * D);
            combine_tokens(a, 0, T, want.data());
            EXPECT_EQ(got, want) << dtype_name(dt) << " packed=" << packed << " before=" << before << " cf=" << cf
                                 << " T=" << T;
            ++n;
          }
        }
      }
    }
  }
  EXPECT_EQ(n, 48);
}

TEST(PackedExperts, IsaWithoutPanelKernelsLeavesRows) {
  const Isa prev = set_isa_override(Isa::kAvx2);
  RandomLayer rl(3, 0, 16, 8, 0, DType::kF32, 1);
  const MoeLayerWeights rows = rl.views(false, false, false);
  const PackedExpertWeights p = pack_expert_weights(rows.experts);
  EXPECT_FALSE(p.packed);
  EXPECT_EQ(p.weights.experts[1].gate.data, rows.experts.experts[1].gate.data);
  EXPECT_EQ(p.weights.experts[1].gate.layout, WeightLayout::kRows);
  set_isa_override(prev);
}

}  // namespace
}  // namespace moe
