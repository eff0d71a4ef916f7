// MoeLayer::forward: route, dispatch (the plan, and per row its token and weight: no copy of x), the
// grouped experts (routed and shared in one set of work items) with the combine fused into the down
// projection (expert order, then the gated shared outputs: combine.h's order).
#include "moe/moe_layer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/quant_matmul.h"
#include "moe/combine.h"
#include "runtime/thread_pool.h"
#include "runtime/timer.h"
#include "util/check.h"
#include "util/error.h"

namespace moe {
namespace {

// Runs fn(0, n, 0) inline when the pass touches few elements (decode), else splits it over the
// pool: for a few tokens a pool round trip costs more than the copy or the weighted sum.
template <typename Fn>
void run_maybe_inline(int64_t n, int64_t elements, Fn&& fn) {
  if (elements < (int64_t(1) << 16)) {
    if (n > 0) fn(0, n, 0);
    return;
  }
  thread_pool().parallel_for(n, fn);
}

}  // namespace

MoeLayer::MoeLayer(const MoeLayerConfig& config, const MoeLayerWeights& weights) : config_(config) {
  if (config.d_model < 1) fail("moe_layer", "d_model must be >= 1, got {}", config.d_model);
  config.router.validate();
  config.activation.validate();
  config.dispatch.validate();
  set_weights(weights);
}

void MoeLayer::set_weights(const MoeLayerWeights& weights) {
  const MoeLayerConfig& config = config_;
  const int64_t D = config.d_model;
  const RouterWeights& rw = weights.router;
  if (!rw.weight.data) fail("moe_layer", "router weight [E, D] is missing");
  if (rw.weight.ld < D) fail("moe_layer", "router weight leading dimension {} < d_model {}", rw.weight.ld, D);
  if (config.router.use_correction_bias && !rw.correction_bias) {
    fail("moe_layer", "router uses a score-correction bias but RouterWeights::correction_bias is null");
  }
  if (weights.experts.n_expert() != config.router.n_expert) {
    fail("moe_layer", "router has {} experts but {} expert weight sets were given", config.router.n_expert,
         weights.experts.n_expert());
  }
  if (weights.experts.d_model != D) {
    fail("moe_layer", "routed experts have d_model {} but the layer has {}", weights.experts.d_model, D);
  }
  if (!config.experts_per_call) {
    weights.experts.validate("routed");
  } else if (weights.experts.d_model < 1 || weights.experts.d_ff < 1) {
    fail("moe_layer", "routed experts need d_model and d_ff >= 1, got {} and {}", weights.experts.d_model,
         weights.experts.d_ff);
  }
  if (weights.shared.n_expert() > 0) {
    if (weights.shared.d_model != D) {
      fail("moe_layer", "shared experts have d_model {} but the layer has {}", weights.shared.d_model, D);
    }
    weights.shared.validate("shared");
  }
  if (weights.shared_gate.data) {
    if (weights.shared.n_expert() == 0) fail("moe_layer", "a shared-expert gate was given without shared experts");
    if (weights.shared_gate.ld < D)
      fail("moe_layer", "shared gate [1, D] leading dimension {} < {}", weights.shared_gate.ld, D);
  }
  weights_ = weights;
}

MoeLayerSizes moe_layer_sizes(const MoeLayerConfig& config, const MoeLayerWeights& w) {
  MoeLayerSizes s;
  const int64_t E = config.router.n_expert, D = config.d_model;
  s.d_model = D;
  s.router_params = E * D + (w.router.bias ? E : 0);
  s.d_ff = w.experts.d_ff;
  s.expert_params = w.experts.params_per_expert();
  s.expert_bytes = w.experts.bytes_per_expert();
  const int64_t S = w.shared.n_expert();
  s.shared_params = S * w.shared.params_per_expert() + (S > 0 && w.shared_gate.data ? D : 0);
  s.shared_bytes = S * w.shared.bytes_per_expert();
  s.shared_d_ff = S * w.shared.d_ff;
  return s;
}

void route_layer(const MoeLayerConfig& config, const RouterWeights& weights, const float* x, int64_t T,
                 const RunOptions& o, RouterOutput* out) {
  const RouterOptions& ro = config.router;
  if (!o.expert_ids) {
    route_tokens(ro, weights, x, T, config.d_model, o.top_k_override, out);
    return;
  }
  // Given choices: run the router for its logits and scores, take the weights at the given ids.
  const int k = ro.effective_top_k(o.top_k_override);
  RouterOptions plain = ro;
  plain.n_group = 1;
  plain.topk_group = 1;
  route_tokens(plain, weights, x, T, config.d_model, o.top_k_override, out);
  std::copy(o.expert_ids, o.expert_ids + T * k, out->expert_ids.begin());
  std::vector<float> scratch(static_cast<size_t>(ro.n_expert));  // [E]
  for (int64_t t = 0; t < T; ++t) {
    weights_for_ids(ro, out->logits.data() + t * ro.n_expert, k, o.expert_ids + t * k, out->weights.data() + t * k,
                    scratch.data());
  }
}

void MoeLayer::gather() {
  // The experts read their rows of x in place (ExpertTask::x_rows): dispatch only lists, per row of the
  // plan, its token and its routing weight: the input's scale (weight before the expert) or the output's.
  const int64_t n_rows = plan_.n_rows();
  const bool before = config_.weight_before_expert;
  x_rows_.resize(static_cast<size_t>(n_rows));
  x_scale_.resize(before ? static_cast<size_t>(n_rows) : 0);
  y_scale_.resize(before ? 0 : static_cast<size_t>(n_rows));
  for (int64_t r = 0; r < n_rows; ++r) {
    const int32_t s = plan_.row_to_slot[r];
    x_rows_[r] = s / plan_.top_k;
    (before ? x_scale_ : y_scale_)[r] = plan_.weights[s];
  }
}

void MoeLayer::shared_gates(const float* x, int64_t T) {
  const int S = weights_.shared.n_expert();
  token_rows_.resize(S > 0 ? static_cast<size_t>(T) : 0);
  for (int64_t t = 0; t < int64_t(token_rows_.size()); ++t) token_rows_[t] = static_cast<int32_t>(t);
  const bool gated = S > 0 && weights_.shared_gate.data;
  shared_g_.resize(gated ? static_cast<size_t>(T) : 0);
  if (gated) shared_gate_values(x, T, config_.d_model, weights_.shared_gate, shared_g_.data());
}

namespace {

// The down weights of the first expert present (under expert parallelism some are absent).
const WeightView& first_down(const ExpertWeights& w) {
  for (const ExpertMatrices& m : w.experts)
    if (m.down.data) return m.down;
  return w.experts[0].down;
}

}  // namespace

// Gate+up+activation into hs_, then the down projection with the combine fused into it
// (run_expert_down_combine): the routed experts in expert order, then the shared experts in order,
// added from 0 into out, the order of combine.h.
void MoeLayer::run_experts(const float* x, int64_t T, float* out, const RunOptions& o, ExpertRunStats* stats) {
  const int64_t D = config_.d_model, F = weights_.experts.d_ff, n_rows = plan_.n_rows();
  const int S = weights_.shared.n_expert();
  const int64_t Fs = weights_.shared.d_ff;
  hs_.resize(static_cast<size_t>(n_rows) * F);        // [n_rows, F]
  shared_h_.resize(static_cast<size_t>(S) * T * Fs);  // [S, T, Fs]
  // bf16 copies of h when the down kernels round h to bf16 anyway (see ExpertTask::hb).
  const int64_t Fp = (F + 1) / 2 * 2, Fsp = (Fs + 1) / 2 * 2;
  const bool routed_b = weights_.experts.n_expert() > 0 && matmul_rounds_a_to_bf16(first_down(weights_.experts));
  const bool shared_b = S > 0 && matmul_rounds_a_to_bf16(weights_.shared.experts[0].down);
  hbs_.resize(routed_b ? static_cast<size_t>(n_rows * Fp) : 0);        // [n_rows, Fp]
  shared_hb_.resize(shared_b ? static_cast<size_t>(S * T * Fsp) : 0);  // [S, T, Fsp]
  // Block-quantized experts: x quantized once for each format the gate/up weights need (in parallel over
  // tokens), h's quantized rows for the down weights.
  const auto quantized_x = [&](const WeightView& gate) -> const uint8_t* {
    if (!takes_q8_activations(gate.dtype)) return nullptr;
    const ActFormat f = act_format(gate.dtype);
    std::vector<uint8_t>& buf = xq_[static_cast<int>(f)];
    const int64_t rb = q8_row_bytes(D);
    if (static_cast<int64_t>(buf.size()) != T * rb) {
      buf.resize(static_cast<size_t>(T * rb));
      thread_pool().parallel_for(T, [&](int64_t r0, int64_t r1, int) {
        quantize_rows_q8(f, x + r0 * D, D, r1 - r0, D, buf.data() + r0 * rb);
      });
    }
    return buf.data();
  };
  for (auto& b : xq_) b.clear();
  const bool routed_q = weights_.experts.n_expert() > 0 && takes_q8_activations(first_down(weights_.experts).dtype);
  const bool shared_q = S > 0 && takes_q8_activations(weights_.shared.experts[0].down.dtype);
  hq_.resize(routed_q ? static_cast<size_t>(n_rows * q8_row_bytes(F)) : 0);         // [n_rows, rb(F)]
  shared_hq_.resize(shared_q ? static_cast<size_t>(S * T * q8_row_bytes(Fs)) : 0);  // [S, T, rb(Fs)]
  std::vector<ExpertTask> tasks;
  for (int e = 0; e < plan_.n_expert; ++e) {
    const int64_t off = plan_.expert_offsets[e], rows = plan_.expert_counts[e];
    if (rows == 0) continue;
    ExpertTask task{&weights_.experts.experts[e],
                    x,
                    D,
                    rows,
                    F,
                    hs_.data() + off * F,
                    nullptr,
                    x_rows_.data() + off,
                    x_scale_.empty() ? nullptr : x_scale_.data() + off};
    if (routed_b) {
      task.hb = hbs_.data() + off * Fp;
      task.ldhb = Fp;
    }
    if ((task.xq = quantized_x(task.w->gate))) task.xq_bytes = q8_row_bytes(D);
    if (routed_q) {
      task.hq = hq_.data() + off * q8_row_bytes(F);
      task.hq_bytes = q8_row_bytes(F);
    }
    task.out_rows = x_rows_.data() + off;
    task.out_scale = y_scale_.empty() ? nullptr : y_scale_.data() + off;
    tasks.push_back(task);
  }
  for (int s = 0; s < S; ++s) {
    ExpertTask task{&weights_.shared.experts[s], x, D, T, Fs, shared_h_.data() + s * T * Fs, nullptr};
    if (shared_b) {
      task.hb = shared_hb_.data() + s * T * Fsp;
      task.ldhb = Fsp;
    }
    if ((task.xq = quantized_x(task.w->gate))) task.xq_bytes = q8_row_bytes(D);
    if (shared_q) {
      task.hq = shared_hq_.data() + s * T * q8_row_bytes(Fs);
      task.hq_bytes = q8_row_bytes(Fs);
    }
    task.out_rows = token_rows_.data();
    task.out_scale = shared_g_.empty() ? nullptr : shared_g_.data();
    tasks.push_back(task);
  }
  run_expert_up_phase(tasks, D, config_.activation, o.experts, stats);
  run_expert_down_combine(tasks, D, T, out, o.experts, stats);
}

void MoeLayer::forward(const float* x, int64_t T, float* out, const RunOptions& o, MoeTelemetry* tel) {
  if (T < 0) fail("moe_layer", "token count must be >= 0, got {}", T);
  const DispatchOptions& dispatch = o.dispatch ? *o.dispatch : config_.dispatch;
  Timer timer;
  route_layer(config_, weights_.router, x, T, o, &router_out_);
  const double route_ms = timer.ms();
  timer.reset();
  plan_ = make_routing_plan(router_out_.expert_ids.data(), router_out_.weights.data(), T, router_out_.top_k,
                            config_.router.n_expert, dispatch);
  gather();
  const double dispatch_ms = timer.ms();
  timer.reset();
  shared_gates(x, T);  // what the combine needs besides the experts' outputs; the sum is in run_experts
  const double combine_ms = timer.ms();
  timer.reset();
  if (o.prepare_experts) o.prepare_experts(router_out_, weights_.experts.experts);  // (loading them counts here)
  if (config_.experts_per_call && !o.prepare_experts)
    fail("moe_layer", "the routed experts are supplied per call, but no RunOptions::prepare_experts was given");
  ExpertRunStats stats;
  if (T > 0) run_experts(x, T, out, o, &stats);
  const double experts_ms = timer.ms();
  if (!tel) return;
  *tel = MoeTelemetry{};
  account_moe_call(moe_layer_sizes(config_, weights_), T, plan_.top_k, plan_.expert_counts,
                   static_cast<int64_t>(plan_.dropped_slots.size()), tel);
  tel->work_items = stats.work_items;
  tel->route_ms = route_ms;
  tel->dispatch_ms = dispatch_ms;
  tel->experts_ms = experts_ms;
  tel->combine_ms = combine_ms;
}

}  // namespace moe
