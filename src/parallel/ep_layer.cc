// EpMoeLayer::forward: route this rank's tokens, exchange rows with the experts' owners
// (ep_exchange), compute the local experts, combine with MoeLayer's combine_tokens (moe/combine.h,
// the same order of floating-point additions), add the shared experts of this rank's tokens.
#include "parallel/ep_layer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "moe/combine.h"
#include "runtime/thread_pool.h"
#include "runtime/timer.h"
#include "util/check.h"
#include "util/error.h"

namespace moe::parallel {

int64_t EpTelemetry::rows_computed() const {
  int64_t n = 0;
  for (int64_t r : rows_per_local_expert) n += r;
  return n;
}

void EpTelemetry::accumulate(const EpTelemetry& o) {
  if (rows_per_local_expert.empty()) {
    rank = o.rank;
    n_rank = o.n_rank;
    local_experts = o.local_experts;
    rows_per_local_expert.assign(o.rows_per_local_expert.size(), 0);
  }
  n_tokens += o.n_tokens;
  for (size_t j = 0; j < rows_per_local_expert.size() && j < o.rows_per_local_expert.size(); ++j)
    rows_per_local_expert[j] += o.rows_per_local_expert[j];
  exchange.rows_sent += o.exchange.rows_sent;
  exchange.rows_received += o.exchange.rows_received;
  exchange.rows_local += o.exchange.rows_local;
  exchange.bytes_sent += o.exchange.bytes_sent;
  exchange.bytes_received += o.exchange.bytes_received;
  exchange.pack_ms += o.exchange.pack_ms;
  exchange.comm_ms += o.exchange.comm_ms;
  exchange.compute_ms += o.exchange.compute_ms;
  route_ms += o.route_ms;
  dispatch_ms += o.dispatch_ms;
  experts_ms += o.experts_ms;
  combine_ms += o.combine_ms;
  wait_ms += o.wait_ms;
  calls += o.calls;
}

std::string EpTelemetry::summary() const {
  return fmt::format(
      "rank {}/{} T={} rows computed={} sent={} recv={} bytes sent={} recv={} ms route {:.3f} dispatch {:.3f} "
      "experts {:.3f} combine {:.3f} wait {:.3f}",
      rank, n_rank, n_tokens, rows_computed(), exchange.rows_sent, exchange.rows_received, exchange.bytes_sent,
      exchange.bytes_received, route_ms, dispatch_ms, experts_ms, combine_ms, wait_ms);
}

namespace {

void validate(const Comm& comm, const ExpertPlacement& placement, const MoeLayerConfig& config,
              const MoeLayerWeights& w) {
  const int E = config.router.n_expert;
  if (config.d_model < 1) fail("ep", "d_model must be >= 1, got {}", config.d_model);
  config.router.validate();
  config.activation.validate();
  config.dispatch.validate();
  if (placement.n_rank() != comm.size())
    fail("ep", "the placement is for {} ranks but the job has {}", placement.n_rank(), comm.size());
  if (placement.n_expert() != E) fail("ep", "the placement has {} experts but the layer {}", placement.n_expert(), E);
  if (!w.router.weight.data) fail("ep", "router weight [E, D] is missing");
  if (w.experts.n_expert() != E) fail("ep", "{} expert weight sets for {} experts", w.experts.n_expert(), E);
  if (w.experts.d_model != config.d_model)
    fail("ep", "routed experts have d_model {} but the layer has {}", w.experts.d_model, config.d_model);
  for (int e : placement.experts_of(comm.rank())) {
    const ExpertMatrices& m = w.experts.experts[size_t(e)];
    if (!m.gate.data || !m.up.data || !m.down.data)
      fail("ep", "rank {} owns expert {} but its weights are not loaded", comm.rank(), e);
  }
  if (w.shared.n_expert() > 0 && w.shared.d_model != config.d_model)
    fail("ep", "shared experts have d_model {} but the layer has {}", w.shared.d_model, config.d_model);
  if (w.shared_gate.data && w.shared.n_expert() == 0) fail("ep", "a shared-expert gate without shared experts");
}

}  // namespace

EpMoeLayer::EpMoeLayer(Comm& comm, ExpertPlacement placement, const MoeLayerConfig& config,
                       const MoeLayerWeights& weights)
    : comm_(comm), placement_(std::move(placement)), config_(config), weights_(weights) {
  validate(comm_, placement_, config_, weights_);
}

void EpMoeLayer::compute_local(const EpLocalBatch& batch, const RunOptions& o, float* y) {
  const int64_t D = config_.d_model, F = weights_.experts.d_ff, n = batch.n_rows();
  const float* x = batch.x.data();
  if (config_.weight_before_expert) {        // Llama 4: scale the input, as MoeLayer::gather does
    xs_.resize(static_cast<size_t>(n * D));  // [n, D]
    for (int64_t r = 0; r < n; ++r) {
      const float w = batch.weights[size_t(r)];
      for (int64_t i = 0; i < D; ++i) xs_[size_t(r * D + i)] = w * x[r * D + i];
    }
    x = xs_.data();
  }
  hs_.resize(static_cast<size_t>(n * F));  // [n, F]
  const int64_t Fp = (F + 1) / 2 * 2;
  std::vector<ExpertTask> tasks;
  for (size_t j = 0; j < batch.experts.size(); ++j) {
    const int64_t off = batch.offsets[j], rows = batch.offsets[j + 1] - off;
    if (rows == 0) continue;
    tasks.push_back({&weights_.experts.experts[size_t(batch.experts[j])], x + off * D, D, rows, F, hs_.data() + off * F,
                     y + off * D});
  }
  // h rounded to bf16 once when the down kernels round it anyway (ExpertTask::hb; the same bits).
  if (!tasks.empty() && matmul_rounds_a_to_bf16(tasks[0].w->down)) {
    hbs_.resize(static_cast<size_t>(n * Fp));  // [n, Fp]
    for (ExpertTask& t : tasks) {
      t.hb = hbs_.data() + (t.h - hs_.data()) / F * Fp;
      t.ldhb = Fp;
    }
  }
  ExpertRunStats stats;
  run_expert_tasks(tasks, D, config_.activation, o.experts, &stats);
}

void EpMoeLayer::run_shared(const float* x, int64_t T, const RunOptions& o) {
  const int64_t D = config_.d_model, Fs = weights_.shared.d_ff;
  const int S = weights_.shared.n_expert();
  shared_h_.resize(static_cast<size_t>(S * T * Fs));  // [S, T, Fs]
  shared_y_.resize(static_cast<size_t>(S * T * D));   // [S, T, D]
  if (S == 0 || T == 0) return;
  std::vector<ExpertTask> tasks;
  for (int s = 0; s < S; ++s)
    tasks.push_back({&weights_.shared.experts[size_t(s)], x, D, T, Fs, shared_h_.data() + s * T * Fs,
                     shared_y_.data() + s * T * D});
  ExpertRunStats stats;
  run_expert_tasks(tasks, D, config_.activation, o.experts, &stats);
}

// MoeLayer's combine (moe/combine.h): the additions happen in the same order.
void EpMoeLayer::combine(const float* x, int64_t T, int64_t shared_T, int64_t shared_t0, float* out) const {
  CombineArgs a;
  a.plan = &plan_;
  a.ys = ys_.data();
  a.x = x;
  a.d_model = config_.d_model;
  a.weighted = !config_.weight_before_expert;
  a.shared_y = shared_y_.data();
  a.n_shared = weights_.shared.n_expert();
  a.shared_tokens = shared_T;
  a.shared_t0 = shared_t0;
  a.shared_gate = &weights_.shared_gate;
  thread_pool().parallel_for(T, [&](int64_t t0, int64_t t1, int) { combine_tokens(a, t0, t1, out); });
}

EpExchangeStats EpMoeLayer::exchange(const float* x, int64_t t0, int64_t n, const RunOptions& o,
                                     std::vector<int64_t>* rows_per_local) {
  const int64_t D = config_.d_model;
  const int K = router_out_.top_k;
  const DispatchOptions& dispatch = o.dispatch ? *o.dispatch : config_.dispatch;
  Timer timer;
  plan_ = make_routing_plan(router_out_.expert_ids.data() + t0 * K, router_out_.weights.data() + t0 * K, n, K,
                            config_.router.n_expert, dispatch);
  const double plan_ms = timer.ms();
  ys_.resize(static_cast<size_t>(plan_.n_rows() * D));  // [n_rows, D]
  EpExchangeArgs args;
  args.plan = &plan_;
  args.x = x + t0 * D;
  args.d_model = D;
  args.y_rows = ys_.data();
  args.compute = [&](const EpLocalBatch& batch, float* y) {
    for (size_t j = 0; j < batch.experts.size(); ++j)
      rows_per_local->push_back(batch.offsets[j + 1] - batch.offsets[j]);
    compute_local(batch, o, y);
  };
  EpExchangeStats ex;
  ep_exchange(comm_, placement_, args, &ex, &workspace_);
  ex.pack_ms += plan_ms;  // the plan is the dispatch's first half, as in MoeLayer's telemetry
  return ex;
}

namespace {

void fill_telemetry(const Comm& comm, const ExpertPlacement& placement, int64_t T, std::vector<int64_t> rows,
                    const EpExchangeStats& ex, const double ms[4], EpTelemetry* tel) {
  *tel = EpTelemetry{};
  tel->rank = comm.rank();
  tel->n_rank = comm.size();
  tel->n_tokens = T;
  tel->local_experts = placement.experts_of(comm.rank());
  tel->rows_per_local_expert = std::move(rows);
  tel->exchange = ex;
  tel->route_ms = ms[0];
  tel->dispatch_ms = ex.pack_ms;
  tel->experts_ms = ex.compute_ms + ms[1];
  tel->combine_ms = ms[2];
  tel->wait_ms = ex.comm_ms + ms[3];
  tel->calls = 1;
}

}  // namespace

void EpMoeLayer::forward(const float* x, int64_t T, float* out, const RunOptions& o, EpTelemetry* tel) {
  if (T < 0) fail("ep", "token count must be >= 0, got {}", T);
  Timer timer;
  route_layer(config_, weights_.router, x, T, o, &router_out_);  // MoeLayer's routing, the same bits
  double ms[4] = {timer.ms(), 0, 0, 0};                          // route, shared experts, combine, extra wait
  std::vector<int64_t> rows;
  const EpExchangeStats ex = exchange(x, 0, T, o, &rows);
  timer.reset();
  run_shared(x, T, o);
  ms[1] = timer.ms();
  timer.reset();
  combine(x, T, T, 0, out);
  ms[2] = timer.ms();
  if (tel) fill_telemetry(comm_, placement_, T, std::move(rows), ex, ms, tel);
}

void EpMoeLayer::forward_replicated(const float* x, int64_t T, float* out, const RunOptions& o, EpTelemetry* tel) {
  if (T < 0) fail("ep", "token count must be >= 0, got {}", T);
  const int64_t D = config_.d_model;
  const int R = comm_.size(), me = comm_.rank();
  // Rank r combines tokens [T * r / R, T * (r + 1) / R).
  std::vector<int64_t> counts(static_cast<size_t>(R));
  for (int r = 0; r < R; ++r) counts[size_t(r)] = T * (r + 1) / R - T * r / R;
  const VLayout blocks = VLayout::packed(counts);
  const int64_t t0 = blocks.displs[size_t(me)], n = counts[size_t(me)];
  Timer timer;
  route_layer(config_, weights_.router, x, T, o,
              &router_out_);  // all tokens, as one process would: the same logits bit for bit
  double ms[4] = {timer.ms(), 0, 0, 0};
  std::vector<int64_t> rows;
  const EpExchangeStats ex = exchange(x, t0, n, o, &rows);
  timer.reset();
  run_shared(x, T, o);  // replicated: all tokens, so every row sees the one-process kernels
  ms[1] = timer.ms();
  timer.reset();
  std::vector<float> mine(static_cast<size_t>(n * D));  // [n, D]
  combine(x + t0 * D, n, T, t0, mine.data());
  ms[2] = timer.ms();
  timer.reset();
  const VLayout send{std::vector<int64_t>(static_cast<size_t>(R), n), std::vector<int64_t>(static_cast<size_t>(R), 0)};
  comm_.all_to_all_v_f32(mine.data(), send, out, blocks, D);  // all-gather of the token blocks
  ms[3] = timer.ms();
  if (!tel) return;
  fill_telemetry(comm_, placement_, T, std::move(rows), ex, ms, tel);
  const int64_t gathered = (T - n) * D * 4, sent = n * D * 4 * (R - 1);
  tel->exchange.bytes_sent += sent;
  tel->exchange.bytes_received += gathered;
}

}  // namespace moe::parallel
