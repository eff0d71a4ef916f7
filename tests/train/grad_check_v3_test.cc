// Finite-difference gradient checks, in double, for the DeepSeek-V3 variant of the training
// model: interleaved RoPE, MLA (with and without q-LoRA), the sigmoid router (selection bias,
// norm_topk_prob, routed_scaling_factor, aux / sequence aux / z losses on normalized scores),
// the dense SwiGLU MLP of shared experts and dense layers, and every tensor of a whole model.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "train/grad_check.h"
#include "train/mla.h"
#include "train/model.h"
#include "train/moe_block.h"
#include "train/rng.h"
#include "train/swiglu_mlp.h"

namespace moe::train {
namespace {

using testing::dot;
using testing::expect_grad;
using testing::randn;

ModelConfig v3_config() {
  ModelConfig c;
  c.family = Family::kDeepseekV3;
  c.n_layer = 1;
  c.d_model = 8;
  c.n_head = 2;
  c.n_kv_head = 2;
  c.kv_lora_rank = 5;
  c.qk_nope_dim = 3;
  c.qk_rope_dim = 4;
  c.v_head_dim = 3;
  c.head_dim = 7;
  c.n_expert = 4;
  c.top_k = 2;
  c.d_ff_expert = 5;
  c.n_shared_expert = 2;
  c.vocab = 11;
  c.max_seq = 8;
  c.routed_scaling_factor = 1.7;
  return c;
}

TEST(GradCheckV3, RopeInterleaved) {
  const RopeRows rows{6, 2, 7, 4, 3};  // 6 rows of 2 vectors of 7, the first 4 rotated, 3 positions
  auto x = randn(6 * 14, 1), r = randn(6 * 14, 2);
  auto loss = [&] {
    std::vector<double> y = x;
    rope_interleaved<double>(y.data(), rows, 10000.0, 1.0);
    return dot(y, r);
  };
  std::vector<double> dx = r;
  rope_interleaved<double>(dx.data(), rows, 10000.0, -1.0);
  expect_grad(x, dx, loss, "rope dx");
}

void check_mla(int q_lora_rank) {
  ModelConfig c = v3_config();
  c.q_lora_rank = q_lora_rank;
  const ParamLayout lay = ParamLayout::build(c);
  const MlaContext ctx{c, lay.layers[0], 2, 4};
  const int64_t n = ctx.batch * ctx.seq, D = c.d_model;
  auto p = randn(lay.total, 3, 0.5), x = randn(n * D, 4), r = randn(n * D, 5);
  MlaActs<double> a;
  auto loss = [&] {
    std::vector<double> out(n * D);
    mla_forward<double>(a, out.data(), x.data(), p.data(), ctx);
    return dot(out, r);
  };
  loss();
  std::vector<double> dx(n * D, 0.0), dp(lay.total, 0.0);
  mla_backward<double>(dx.data(), dp.data(), r.data(), a, p.data(), ctx);
  expect_grad(x, dx, loss, "mla dx");
  for (const auto& t : lay.tensors) {
    if (t.name.find("self_attn.") == std::string::npos) continue;
    std::vector<double> w(p.begin() + t.offset, p.begin() + t.offset + t.numel);
    std::vector<double> g(dp.begin() + t.offset, dp.begin() + t.offset + t.numel);
    auto tensor_loss = [&] {
      std::copy(w.begin(), w.end(), p.begin() + t.offset);
      return loss();
    };
    expect_grad(w, g, tensor_loss, t.name);
    std::copy(w.begin(), w.end(), p.begin() + t.offset);
  }
}

TEST(GradCheckV3, MlaWithQProj) { check_mla(0); }
TEST(GradCheckV3, MlaWithQLora) { check_mla(6); }

TEST(GradCheckV3, SharedExpertMlp) {
  const MlpSpec s{0, 30, 60, 7, 6, 5};  // gate [5, 6] at 0, up at 30, down [6, 5] at 60; 7 tokens
  auto p = randn(90, 6, 0.5), x = randn(7 * 6, 7), r = randn(7 * 6, 8), base = randn(7 * 6, 9);
  MlpActs<double> a;
  auto loss = [&] {
    std::vector<double> out = base;
    mlp_forward<double>(a, out.data(), x.data(), p.data(), s, true);
    return dot(out, r);
  };
  loss();
  std::vector<double> dx(7 * 6, 0.0), dp(90, 0.0);
  mlp_backward<double>(dx.data(), dp.data(), r.data(), a, p.data(), s);
  expect_grad(x, dx, loss, "mlp dx");
  expect_grad(p, dp, loss, "mlp dparams");
}

// The sigmoid router inside the MoE block: the gradient reaches the gate through the chosen
// weights (renormalized or not, scaled) and through the aux losses' normalized scores.
void check_sigmoid_moe(const BalanceOptions& bal, bool norm_topk) {
  ModelConfig c = v3_config();
  c.d_model = 6;
  c.norm_topk_prob = norm_topk;
  const ParamLayout lay = ParamLayout::build(c);
  const LayerOffsets& o = lay.layers[0];
  const MoeShape s{2, 6};
  const int64_t n = s.batch * s.seq, D = c.d_model;
  auto p = randn(lay.total, 16, 0.5), x = randn(n * D, 17), r = randn(n * D, 18);
  const std::vector<float> bias = {0.05f, -0.1f, 0.0f, 0.08f};
  const MoeLossScale scale{bal.aux_coef, bal.seq_aux_coef, bal.z_coef};
  MoeActs<double> a;
  auto loss = [&] {
    std::vector<double> out(n * D);
    moe_forward<double>(a, out.data(), x.data(), p.data(), o, c, bal, bias.data(), s);
    return dot(out, r) + scale.aux * a.aux + scale.seq_aux * a.seq_aux + scale.z * a.z;
  };
  loss();
  const auto ids_before = a.ids;
  std::vector<double> dx(n * D, 0.0), dp(lay.total, 0.0);
  moe_backward<double>(dx.data(), dp.data(), r.data(), x.data(), a, p.data(), o, c, scale, s);
  expect_grad(x, dx, loss, "moe dx");
  expect_grad(p, dp, loss, "moe dparams (sigmoid gate + experts)");
  loss();
  EXPECT_EQ(a.ids, ids_before) << "finite differences changed the routing; the check would be meaningless";
}

TEST(GradCheckV3, SigmoidRouterNormTopK) { check_sigmoid_moe({}, true); }
TEST(GradCheckV3, SigmoidRouterNoNorm) { check_sigmoid_moe({}, false); }
TEST(GradCheckV3, SigmoidRouterAuxSeqAuxZLoss) {
  BalanceOptions b;
  b.aux_coef = 0.7;
  b.seq_aux_coef = 0.5;
  b.z_coef = 0.3;
  check_sigmoid_moe(b, true);
}

TEST(GradCheckV3, WholeModelDenseFirstLayerQLoraSharedExperts) {
  ModelConfig c = v3_config();
  c.n_layer = 3;
  c.first_dense = 1;
  c.d_ff_dense = 7;
  c.q_lora_rank = 4;
  c.n_shared_expert = 1;
  BalanceOptions b;
  b.aux_coef = 0.1;
  b.seq_aux_coef = 0.05;
  b.z_coef = 0.01;
  TrainModel<double> m(c, b);
  m.init_params(3);
  m.router_bias[1] = {0.02f, -0.03f, 0.0f, 0.01f};
  testing::expect_whole_model_grads(m);
}

}  // namespace
}  // namespace moe::train
