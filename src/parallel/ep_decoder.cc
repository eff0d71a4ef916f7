// EpDecoderHook: expert-parallel MoE blocks for the Decoder, and the per-rank report gathered on
// rank 0 (serialized as JSON strings through Comm::all_gather_strings).
#include "parallel/ep_decoder.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "parallel/ep_setup.h"
#include "util/dtype.h"

namespace moe::parallel {

namespace {

// One MoE layer of the Decoder run by EpMoeLayer::forward_replicated.
class EpMoeBlock final : public MoeBlock {
 public:
  EpMoeBlock(EpDecoderHook& hook, const MoeLayerConfig& config, const MoeLayerWeights& w)
      : hook_(hook), layer_(hook.comm(), hook.placement(), config, w), sizes_(moe_layer_sizes(config, w)) {}

  void forward(const float* x, int64_t T, float* out, MoeTelemetry* telemetry) override {
    EpTelemetry t;
    layer_.forward_replicated(x, T, out, RunOptions{}, &t);
    const int R = hook_.comm().size(), me = hook_.comm().rank();
    const int64_t block = T * (me + 1) / R - T * me / R;  // this rank's token block
    const int K = layer_.last_router_output().top_k;
    const int64_t D = layer_.config().d_model;
    const int64_t predicted = ep_predicted_bytes_per_layer(block, K, D, R) + (T - block) * D * 4;
    hook_.record(t, predicted);
    if (telemetry) fill(t, T, telemetry);
  }

  const RouterOutput& last_router_output() const override { return layer_.last_router_output(); }

 private:
  // The whole layer as one process counts it (account_moe_call, MoeLayer's accounting): the routing is
  // replicated, so every rank knows every token's experts; the decoder's dispatch is dropless, so each
  // token's K choices are K rows. Times are this rank's.
  void fill(const EpTelemetry& t, int64_t T, MoeTelemetry* tel) const {
    const RouterOutput& ro = layer_.last_router_output();
    std::vector<int64_t> rows(static_cast<size_t>(ro.n_expert), 0);  // [E]
    for (const int32_t e : ro.expert_ids)
      if (e >= 0 && e < ro.n_expert) ++rows[size_t(e)];
    *tel = MoeTelemetry{};
    account_moe_call(sizes_, T, ro.top_k, std::move(rows), 0, tel);
    tel->route_ms = t.route_ms;
    tel->dispatch_ms = t.dispatch_ms + t.wait_ms;
    tel->experts_ms = t.experts_ms;
    tel->combine_ms = t.combine_ms;
  }

  EpDecoderHook& hook_;
  EpMoeLayer layer_;
  MoeLayerSizes sizes_;  // the layer's sizes as the one process counts them
};

}  // namespace

EpDecoderHook::EpDecoderHook(Comm& comm, const std::string& placement_spec, int n_expert)
    : comm_(comm), n_expert_(n_expert) {
  if (n_expert_ > 0) placement_ = ExpertPlacement::parse(placement_spec, n_expert_, comm_.size());
}

DecoderOptions EpDecoderHook::options() {
  DecoderOptions o;
  if (n_expert_ == 0) return o;  // dense: nothing to spread, every rank runs the same model
  o.load_expert = [this](int64_t, int64_t e) { return placement_.owns(comm_.rank(), int(e)); };
  o.moe_block = [this](int64_t, const MoeLayerConfig& c, const MoeLayerWeights& w) -> std::unique_ptr<MoeBlock> {
    return std::make_unique<EpMoeBlock>(*this, c, w);
  };
  return o;
}

void EpDecoderHook::reset() {
  total_ = EpTelemetry{};
  layer_calls_ = 0;
  predicted_bytes_ = 0;
}

void EpDecoderHook::record(const EpTelemetry& t, int64_t predicted_bytes) {
  total_.accumulate(t);
  ++layer_calls_;
  predicted_bytes_ += predicted_bytes;
}

namespace {

nlohmann::json summary_json(const EpRankSummary& s) {
  return {{"rank", s.rank},
          {"experts", s.experts},
          {"expert_rows", s.expert_rows},
          {"rows_computed", s.rows_computed},
          {"bytes_sent_per_layer", s.bytes_sent_per_layer},
          {"bytes_received_per_layer", s.bytes_received_per_layer},
          {"predicted_bytes_per_layer", s.predicted_bytes_per_layer},
          {"ms",
           {{"route", s.route_ms},
            {"dispatch", s.dispatch_ms},
            {"experts", s.experts_ms},
            {"combine", s.combine_ms},
            {"wait", s.wait_ms}}}};
}

EpRankSummary summary_of(const nlohmann::json& j) {
  EpRankSummary s;
  s.rank = j.at("rank").get<int>();
  s.experts = j.at("experts").get<std::vector<int>>();
  s.expert_rows = j.at("expert_rows").get<std::vector<int64_t>>();
  s.rows_computed = j.at("rows_computed").get<int64_t>();
  s.bytes_sent_per_layer = j.at("bytes_sent_per_layer").get<double>();
  s.bytes_received_per_layer = j.at("bytes_received_per_layer").get<double>();
  s.predicted_bytes_per_layer = j.at("predicted_bytes_per_layer").get<double>();
  const nlohmann::json& ms = j.at("ms");
  s.route_ms = ms.at("route").get<double>();
  s.dispatch_ms = ms.at("dispatch").get<double>();
  s.experts_ms = ms.at("experts").get<double>();
  s.combine_ms = ms.at("combine").get<double>();
  s.wait_ms = ms.at("wait").get<double>();
  return s;
}

}  // namespace

EpReport gather_ep_report(const EpDecoderHook& hook) {
  Comm& comm = hook.comm();
  const EpTelemetry& t = hook.total();
  const double calls = double(std::max<int64_t>(1, hook.layer_calls()));
  EpRankSummary mine;
  mine.rank = comm.rank();
  if (hook.has_experts()) mine.experts = hook.placement().experts_of(comm.rank());
  mine.expert_rows = t.rows_per_local_expert;
  mine.expert_rows.resize(mine.experts.size(), 0);
  mine.rows_computed = t.rows_computed();
  mine.bytes_sent_per_layer = double(t.exchange.bytes_sent) / calls;
  mine.bytes_received_per_layer = double(t.exchange.bytes_received) / calls;
  mine.predicted_bytes_per_layer = double(hook.predicted_bytes()) / calls;
  mine.route_ms = t.route_ms;
  mine.dispatch_ms = t.dispatch_ms;
  mine.experts_ms = t.experts_ms;
  mine.combine_ms = t.combine_ms;
  mine.wait_ms = t.wait_ms;
  const std::vector<std::string> all = comm.all_gather_strings(summary_json(mine).dump());
  EpReport r;
  r.n_rank = comm.size();
  r.placement = hook.has_experts() ? hook.placement().describe() : "dense model: no routed experts";
  r.layer_calls = hook.layer_calls();
  for (const std::string& s : all) r.ranks.push_back(summary_of(nlohmann::json::parse(s)));
  return r;
}

std::string format_ep_report(const EpReport& r) {
  std::string s = fmt::format("expert parallelism: {} ranks, {}; {} MoE layer calls per rank\n", r.n_rank, r.placement,
                              r.layer_calls);
  s += fmt::format("  {:>4}  {:>7}  {:>9}  {:>14}  {:>14}  {:>14}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}\n", "rank",
                   "experts", "rows", "sent B/layer", "recv B/layer", "predicted B", "route ms", "dispatch", "experts",
                   "combine", "wait");
  for (const EpRankSummary& k : r.ranks) {
    s += fmt::format(
        "  {:>4}  {:>7}  {:>9}  {:>14.1f}  {:>14.1f}  {:>14.1f}  {:>9.3f}  {:>9.3f}  {:>9.3f}  {:>9.3f}  {:>9.3f}\n",
        k.rank, k.experts.size(), k.rows_computed, k.bytes_sent_per_layer, k.bytes_received_per_layer,
        k.predicted_bytes_per_layer, k.route_ms, k.dispatch_ms, k.experts_ms, k.combine_ms, k.wait_ms);
  }
  s += "  expert load (rows per owned expert, all layers):\n";
  for (const EpRankSummary& k : r.ranks) {
    std::string load;
    for (size_t j = 0; j < k.experts.size(); ++j) load += fmt::format(" {}:{}", k.experts[j], k.expert_rows[j]);
    s += fmt::format("    rank {}:{}\n", k.rank, load.empty() ? " (none)" : load);
  }
  s += "  (predicted: uniform routing over each call's token block plus the all-gather of the outputs)\n";
  return s;
}

std::string ep_report_json(const EpReport& r) {
  nlohmann::json ranks = nlohmann::json::array();
  for (const EpRankSummary& k : r.ranks) ranks.push_back(summary_json(k));
  return nlohmann::json{
      {"ranks", r.n_rank}, {"placement", r.placement}, {"layer_calls", r.layer_calls}, {"per_rank", ranks}}
      .dump();
}

}  // namespace moe::parallel
