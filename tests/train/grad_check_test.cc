// Finite-difference gradient checks, in double, for every op of the training model: embedding,
// RMSNorm, RoPE, causal attention (GQA), SwiGLU, cross-entropy, the MoE block (router with
// norm_topk_prob, aux / sequence aux / z losses, capacity drops, selection bias) and the whole model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "train/grad_check.h"
#include "train/model.h"
#include "train/moe_block.h"
#include "train/ops.h"
#include "train/rng.h"

namespace moe::train {
namespace {

using testing::dot;
using testing::expect_grad;
using testing::randn;

TEST(GradCheck, Embedding) {
  const int64_t n = 5, d = 4, v = 3;
  const std::vector<int32_t> tok = {0, 2, 2, 1, 0};
  auto w = randn(v * d, 1), r = randn(n * d, 2);
  auto loss = [&] {
    std::vector<double> out(n * d);
    embedding_forward<double>(out.data(), tok.data(), w.data(), n, d);
    return dot(out, r);
  };
  std::vector<double> dw(v * d, 0.0);
  embedding_backward<double>(dw.data(), r.data(), tok.data(), n, d);
  expect_grad(w, dw, loss, "embedding");
}

TEST(GradCheck, RmsNorm) {
  const int64_t n = 3, c = 8;
  auto x = randn(n * c, 3), w = randn(c, 4), r = randn(n * c, 5);
  auto loss = [&] {
    std::vector<double> out(n * c), rstd(n);
    rmsnorm_forward<double>(out.data(), rstd.data(), x.data(), w.data(), n, c, 1e-6);
    return dot(out, r);
  };
  std::vector<double> out(n * c), rstd(n), dx(n * c, 0.0), dw(c, 0.0);
  rmsnorm_forward<double>(out.data(), rstd.data(), x.data(), w.data(), n, c, 1e-6);
  rmsnorm_backward<double>(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), n, c);
  expect_grad(x, dx, loss, "rmsnorm dx");
  expect_grad(w, dw, loss, "rmsnorm dw");
}

TEST(GradCheck, Rope) {
  const int64_t n = 6, h = 2, dh = 8, seq = 3;
  auto x = randn(n * h * dh, 6), r = randn(n * h * dh, 7);
  auto loss = [&] {
    auto y = x;
    rope_forward<double>(y.data(), n, h, dh, seq, 10000.0);
    return dot(y, r);
  };
  auto dx = r;
  rope_backward<double>(dx.data(), n, h, dh, seq, 10000.0);
  expect_grad(x, dx, loss, "rope");
}

TEST(GradCheck, AttentionCausalGqa) {
  const AttentionShape s{2, 5, 4, 2, 6};
  const int64_t n = s.batch * s.seq, qd = s.n_head * s.head_dim, kd = s.n_kv_head * s.head_dim;
  auto q = randn(n * qd, 8), k = randn(n * kd, 9), v = randn(n * kd, 10), r = randn(n * qd, 11);
  std::vector<double> probs(s.batch * s.n_head * s.seq * s.seq);
  auto loss = [&] {
    std::vector<double> out(n * qd);
    attention_forward<double>(out.data(), probs.data(), q.data(), k.data(), v.data(), s);
    return dot(out, r);
  };
  loss();
  std::vector<double> dq(n * qd, 0.0), dk(n * kd, 0.0), dv(n * kd, 0.0);
  attention_backward<double>(dq.data(), dk.data(), dv.data(), r.data(), q.data(), k.data(), v.data(), probs.data(), s);
  expect_grad(q, dq, loss, "attention dq");
  expect_grad(k, dk, loss, "attention dk");
  expect_grad(v, dv, loss, "attention dv");
}

TEST(GradCheck, SwiGlu) {
  const int64_t n = 10;
  auto g = randn(n, 12, 2.0), u = randn(n, 13), r = randn(n, 14);
  auto loss = [&] {
    std::vector<double> out(n);
    swiglu_forward<double>(out.data(), g.data(), u.data(), n);
    return dot(out, r);
  };
  std::vector<double> dg(n), du(n);
  swiglu_backward<double>(dg.data(), du.data(), r.data(), g.data(), u.data(), n);
  expect_grad(g, dg, loss, "swiglu dgate");
  expect_grad(u, du, loss, "swiglu dup");
}

TEST(GradCheck, CrossEntropy) {
  const int64_t n = 4, v = 7;
  const std::vector<int32_t> tgt = {1, 6, 0, 3};
  auto l = randn(n * v, 15, 3.0);
  auto loss = [&] { return cross_entropy_forward_backward<double>(nullptr, l.data(), tgt.data(), n, v, 0.0); };
  std::vector<double> dl(n * v);
  const double ce = cross_entropy_forward_backward<double>(dl.data(), l.data(), tgt.data(), n, v, 1.0);
  EXPECT_GT(ce, 0.0);
  expect_grad(l, dl, loss, "cross-entropy");
}

// The MoE block alone: router gate, experts, combine, balancing losses.
void check_moe_block(const BalanceOptions& bal, bool norm_topk, bool with_bias) {
  ModelConfig c;
  c.n_layer = 1;
  c.d_model = 6;
  c.n_expert = 4;
  c.top_k = 2;
  c.d_ff_expert = 5;
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
    moe_forward<double>(a, out.data(), x.data(), p.data(), o, c, bal, with_bias ? bias.data() : nullptr, s);
    return dot(out, r) + scale.aux * a.aux + scale.seq_aux * a.seq_aux + scale.z * a.z;
  };
  loss();
  const auto ids_before = a.ids;
  std::vector<double> dx(n * D, 0.0), dp(lay.total, 0.0);
  moe_backward<double>(dx.data(), dp.data(), r.data(), x.data(), a, p.data(), o, c, scale, s);
  expect_grad(x, dx, loss, "moe dx");
  expect_grad(p, dp, loss, "moe dparams (router gate + experts)");
  loss();
  EXPECT_EQ(a.ids, ids_before) << "finite differences changed the routing; the check would be meaningless";
}

TEST(GradCheck, MoeBlockPlain) { check_moe_block({}, false, false); }
TEST(GradCheck, MoeBlockNormTopK) { check_moe_block({}, true, false); }
TEST(GradCheck, MoeBlockAuxLoss) {
  BalanceOptions b;
  b.aux_coef = 0.7;
  check_moe_block(b, true, false);
}
TEST(GradCheck, MoeBlockSeqAuxAndZLoss) {
  BalanceOptions b;
  b.seq_aux_coef = 0.5;
  b.z_coef = 0.3;
  check_moe_block(b, false, false);
}
TEST(GradCheck, MoeBlockSelectionBias) { check_moe_block({}, true, true); }
TEST(GradCheck, MoeBlockCapacityDrops) {
  BalanceOptions b;
  b.capacity_factor = 0.6;
  b.aux_coef = 0.2;
  check_moe_block(b, true, false);
}

// The whole-model tests' shape: 2 layers, D 8, 2 heads sharing one kv head of 4, experts of width 6,
// vocab 11.
ModelConfig tiny_model(int n_expert, int top_k) {
  ModelConfig c;
  c.n_layer = 2;
  c.d_model = 8;
  c.n_head = 2;
  c.n_kv_head = 1;
  c.head_dim = 4;
  c.n_expert = n_expert;
  c.top_k = top_k;
  c.d_ff_expert = 6;
  c.vocab = 11;
  c.max_seq = 8;
  return c;
}

// Every tensor of a whole model with all three balancing losses, per family the trainer builds from
// the Qwen3-MoE block: per-head QK-norm (Qwen3-MoE), full-width QK-norm and no renormalization
// (OLMoE), no QK-norm and the softmax over the chosen logits (Mixtral).
void check_whole_model(Family family, bool norm_topk) {
  ModelConfig c = tiny_model(4, 2);
  c.family = family;
  c.norm_topk_prob = norm_topk;
  if (family == Family::kOlmoe) c.head_dim = c.d_model / c.n_head;
  BalanceOptions b;
  b.aux_coef = 0.1;
  b.seq_aux_coef = 0.05;
  b.z_coef = 0.01;
  TrainModel<double> m(c, b);
  m.init_params(3);
  testing::expect_whole_model_grads(m);
}

TEST(GradCheck, WholeModel) { check_whole_model(Family::kQwen3Moe, true); }
TEST(GradCheck, WholeModelOlmoe) { check_whole_model(Family::kOlmoe, false); }
TEST(GradCheck, WholeModelMixtral) { check_whole_model(Family::kMixtral, true); }

// backward() writes the routed experts' weight gradients whole (zero_grad leaves them alone), so
// stale values there must never survive: with 8 experts, top-1 and 3 tokens most experts get no
// rows, and their gradients must come out zero, not NaN.
TEST(GradCheck, BackwardWritesExpertGradientsWhole) {
  ModelConfig c = tiny_model(8, 1);
  TrainModel<double> m(c, BalanceOptions{});
  m.init_params(4);
  const std::vector<int32_t> tok = {1, 5, 7}, tgt = {5, 7, 2};
  m.forward(tok.data(), tgt.data(), 1, 3);
  std::fill(m.grads.begin(), m.grads.end(), 0.0);
  m.backward();
  const std::vector<double> clean = m.grads;
  std::fill(m.grads.begin(), m.grads.end(), std::nan(""));
  m.zero_grad();
  m.backward();
  int64_t zero_experts = 0;
  for (size_t e = 0; e < m.layout().layers[0].expert_gate.size(); ++e)
    zero_experts += clean[m.layout().layers[0].expert_gate[e]] == 0.0 ? 1 : 0;
  EXPECT_GE(zero_experts, 5) << "the test needs experts that receive no tokens";
  for (size_t i = 0; i < clean.size(); ++i) ASSERT_EQ(m.grads[i], clean[i]) << "gradient " << i;
}

}  // namespace
}  // namespace moe::train
