// run_ep_layer_bench: random weights for this rank's experts only (others stay null), uniform
// random routing per rank and call, timed EpMoeLayer::forward calls between barriers; the rows of
// every rank are gathered on rank 0 as JSON strings.
#include "parallel/ep_layer_bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "parallel/ep_layer.h"
#include "parallel/ep_setup.h"
#include "runtime/aligned.h"
#include "runtime/thread_pool.h"
#include "runtime/timer.h"
#include "util/dtype.h"
#include "util/error.h"
#include "util/json_out.h"

namespace moe::parallel {

namespace {

// Values in [-0.05, 0.05): only finiteness matters for speed.
void fill_random(void* p, int64_t n, DType dt, uint64_t seed) {
  thread_pool().parallel_for(n, [&](int64_t b, int64_t e, int) {
    uint64_t s = 0x9e3779b97f4a7c15ull * uint64_t(b + 1) + seed;
    for (int64_t i = b; i < e; ++i) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      const float v = (float(s >> 40) / float(1 << 24) - 0.5f) * 0.1f + 1e-3f;
      if (dt == DType::kBF16) {
        static_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
      } else {
        static_cast<float*>(p)[i] = v;
      }
    }
  });
}

// This rank's experts (null views for the others), the router and one shared expert if any.
struct RankWeights {
  AlignedBuffer<uint8_t> experts, shared;
  std::vector<float> router;  // [E, D]
  MoeLayerWeights view;
};

void make_weights(const EpLayerBenchOptions& o, const ExpertPlacement& placement, int rank, RankWeights* w) {
  const LayerBenchShape& s = o.shape;
  const int64_t D = s.d_model, F = s.d_ff, Fs = s.d_ff_shared, es = int64_t(dtype_size(o.dtype));
  const std::vector<int>& mine = placement.experts_of(rank);
  const int64_t per_expert = 3 * F * D * es;
  w->experts = AlignedBuffer<uint8_t>(size_t(std::max<int64_t>(1, int64_t(mine.size()) * per_expert)));
  fill_random(w->experts.data(), int64_t(mine.size()) * 3 * F * D, o.dtype, 11);
  w->router.resize(size_t(s.n_expert * D));
  fill_random(w->router.data(), s.n_expert * D, DType::kF32, 5);
  MoeLayerWeights& v = w->view;
  v.router.weight = {w->router.data(), DType::kF32, D};
  v.experts.d_model = v.shared.d_model = D;
  v.experts.d_ff = F;
  v.experts.experts.resize(size_t(s.n_expert));
  for (size_t j = 0; j < mine.size(); ++j) {
    const uint8_t* b = w->experts.data() + int64_t(j) * per_expert;
    v.experts.experts[size_t(mine[j])] = {
        {b, o.dtype, D}, {b + F * D * es, o.dtype, D}, {b + 2 * F * D * es, o.dtype, F}};
  }
  if (Fs > 0) {
    w->shared = AlignedBuffer<uint8_t>(size_t(3 * Fs * D * es));
    fill_random(w->shared.data(), 3 * Fs * D, o.dtype, 13);
    const uint8_t* b = w->shared.data();
    v.shared.d_ff = Fs;
    v.shared.experts.push_back({{b, o.dtype, D}, {b + Fs * D * es, o.dtype, D}, {b + 2 * Fs * D * es, o.dtype, Fs}});
  }
}

// [T, K] distinct uniform random experts per token; a different stream per rank and call.
std::vector<int32_t> uniform_routing(int64_t T, int K, int E, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(size_t(T * K));
  std::vector<int32_t> all(static_cast<size_t>(E));
  std::iota(all.begin(), all.end(), 0);
  for (int64_t t = 0; t < T; ++t) {
    for (int k = 0; k < K; ++k) {  // partial Fisher-Yates
      std::uniform_int_distribution<int> pick(k, E - 1);
      std::swap(all[size_t(k)], all[size_t(pick(rng))]);
      ids[size_t(t * K + k)] = all[size_t(k)];
    }
  }
  return ids;
}

EpLayerBenchRow measure(Comm& comm, const EpLayerBenchOptions& o, EpMoeLayer& layer, int64_t T) {
  const int64_t D = o.shape.d_model;
  const int K = o.shape.top_k, E = o.shape.n_expert, R = comm.size();
  std::vector<float> x(size_t(T * D)), out(size_t(T * D));  // [T, D]
  fill_random(x.data(), T * D, DType::kF32, 17 + uint64_t(comm.rank()));
  std::vector<double> layer_ms, route, dispatch, experts, combine, wait, share;
  double sent = 0, received = 0, pred_sent = 0, pred_received = 0;
  for (int rep = -2; rep < o.repetitions; ++rep) {
    const std::vector<int32_t> ids = uniform_routing(T, K, E, 1000003ull * uint64_t(rep + 3) + uint64_t(comm.rank()));
    RunOptions ro;
    ro.expert_ids = ids.data();
    EpTelemetry tel;
    comm.barrier();
    Timer timer;
    layer.forward(x.data(), T, out.data(), ro, &tel);
    const double ms = timer.ms();
    if (rep < 0) continue;
    layer_ms.push_back(ms);
    route.push_back(tel.route_ms);
    dispatch.push_back(tel.dispatch_ms);
    experts.push_back(tel.experts_ms);
    combine.push_back(tel.combine_ms);
    wait.push_back(tel.wait_ms);
    share.push_back(ms > 0 ? (tel.dispatch_ms + tel.wait_ms) / ms : 0);
    const EpExchangeStats& ex = tel.exchange;
    sent += double(ex.bytes_sent);
    received += double(ex.bytes_received);
    pred_sent += double(ep_bytes_sent(R, D, ex.rows_sent, ex.rows_received));
    pred_received += double(ep_bytes_sent(R, D, ex.rows_received, ex.rows_sent));
  }
  const double n = double(o.repetitions);
  EpLayerBenchRow r;
  r.rank = comm.rank();
  r.tokens = T;
  r.layer_ms = median(layer_ms);
  r.route_ms = median(route);
  r.dispatch_ms = median(dispatch);
  r.experts_ms = median(experts);
  r.combine_ms = median(combine);
  r.wait_ms = median(wait);
  r.comm_share = median(share);
  r.bytes_sent = sent / n;
  r.bytes_received = received / n;
  r.predicted_bytes_sent = pred_sent / n;
  r.predicted_bytes_received = pred_received / n;
  r.predicted_bytes_uniform = ep_predicted_bytes_per_layer(T, K, D, R);
  r.local_experts = int64_t(layer.placement().experts_of(comm.rank()).size());
  return r;
}

nlohmann::ordered_json row_json(const EpLayerBenchRow& r) {
  return {{"rank", r.rank},
          {"tokens", r.tokens},
          {"local_experts", r.local_experts},
          {"layer_ms", r.layer_ms},
          {"route_ms", r.route_ms},
          {"dispatch_ms", r.dispatch_ms},
          {"experts_ms", r.experts_ms},
          {"combine_ms", r.combine_ms},
          {"wait_ms", r.wait_ms},
          {"comm_fraction", r.comm_share},
          {"bytes_sent", json_count(r.bytes_sent)},
          {"bytes_received", json_count(r.bytes_received)},
          {"predicted_bytes_sent", json_count(r.predicted_bytes_sent)},
          {"predicted_bytes_received", json_count(r.predicted_bytes_received)},
          {"predicted_bytes_uniform", json_count(r.predicted_bytes_uniform)},
          {"bytes_match", r.bytes_sent == r.predicted_bytes_sent && r.bytes_received == r.predicted_bytes_received}};
}

EpLayerBenchRow row_of(const nlohmann::json& j) {
  EpLayerBenchRow r;
  r.rank = j.at("rank").get<int>();
  r.tokens = j.at("tokens").get<int64_t>();
  r.local_experts = j.at("local_experts").get<int64_t>();
  r.layer_ms = j.at("layer_ms").get<double>();
  r.route_ms = j.at("route_ms").get<double>();
  r.dispatch_ms = j.at("dispatch_ms").get<double>();
  r.experts_ms = j.at("experts_ms").get<double>();
  r.combine_ms = j.at("combine_ms").get<double>();
  r.wait_ms = j.at("wait_ms").get<double>();
  r.comm_share = j.at("comm_fraction").get<double>();
  r.bytes_sent = j.at("bytes_sent").get<double>();
  r.bytes_received = j.at("bytes_received").get<double>();
  r.predicted_bytes_sent = j.at("predicted_bytes_sent").get<double>();
  r.predicted_bytes_received = j.at("predicted_bytes_received").get<double>();
  r.predicted_bytes_uniform = j.at("predicted_bytes_uniform").get<int64_t>();
  return r;
}

}  // namespace

EpLayerBenchResult run_ep_layer_bench(Comm& comm, const EpLayerBenchOptions& o) {
  if (o.repetitions < 1) fail_usage("bench", "--repetitions must be >= 1, got {}", o.repetitions);
  EpLayerBenchResult res;
  res.options = o;
  res.n_rank = comm.size();
  res.threads = num_threads();
  const ExpertPlacement placement = ExpertPlacement::parse(o.placement, o.shape.n_expert, comm.size());
  res.placement = placement.describe();
  RankWeights w;
  run_collectively(comm, "making the expert weights", [&] { make_weights(o, placement, comm.rank(), &w); });
  MoeLayerConfig config = o.shape.config;
  config.d_model = o.shape.d_model;
  config.router.n_expert = o.shape.n_expert;
  config.router.top_k = o.shape.top_k;
  EpMoeLayer layer(comm, placement, config, w.view);
  for (int64_t T : o.tokens) {
    const EpLayerBenchRow mine = measure(comm, o, layer, T);
    const std::vector<std::string> all = comm.all_gather_strings(row_json(mine).dump());
    if (comm.rank() != 0) {
      res.rows.push_back(mine);
      continue;
    }
    for (const std::string& s : all) res.rows.push_back(row_of(nlohmann::json::parse(s)));
  }
  return res;
}

std::string format_ep_layer_bench(const EpLayerBenchResult& r) {
  const EpLayerBenchOptions& o = r.options;
  std::string s = fmt::format(
      "moe bench layer --ep {}: {} D={} F={} E={} K={} shared width={} dtype={} uniform routing, {} threads per "
      "rank\n{}; tokens are per rank (data parallel); median of {} calls\n",
      r.n_rank, o.shape.name, o.shape.d_model, o.shape.d_ff, o.shape.n_expert, o.shape.top_k, o.shape.d_ff_shared,
      o.dtype == DType::kBF16 ? "bf16" : "f32", r.threads, r.placement, o.repetitions);
  s += fmt::format("{:>6} {:>4} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>12} {:>12} {:>12} {:>12}\n", "tokens",
                   "rank", "layer ms", "route", "dispatch", "experts", "combine", "wait", "comm%", "sent B",
                   "predicted", "recv B", "uniform");
  for (const EpLayerBenchRow& w : r.rows) {
    s += fmt::format(
        "{:>6} {:>4} {:>9.3f} {:>8.3f} {:>8.3f} {:>8.3f} {:>8.3f} {:>8.3f} {:>5.1f}% {:>12.0f} {:>12.0f} "
        "{:>12.0f} {:>12}\n",
        w.tokens, w.rank, w.layer_ms, w.route_ms, w.dispatch_ms, w.experts_ms, w.combine_ms, w.wait_ms,
        100 * w.comm_share, w.bytes_sent, w.predicted_bytes_sent, w.bytes_received, w.predicted_bytes_uniform);
  }
  s += "sent/recv B: measured per layer from the collectives; predicted: 8 (R-1) + rows_sent (4D+8) + rows_recv 4D for"
       " the routing that happened; uniform: the same with T K (R-1)/R rows each way (moe inspect --ep);"
       " comm% = (dispatch + wait) / layer time\n";
  return s;
}

nlohmann::ordered_json ep_layer_bench_report(const EpLayerBenchResult& r) {
  const EpLayerBenchOptions& o = r.options;
  nlohmann::ordered_json j;
  j["model"] = o.shape.name;
  j["d_model"] = o.shape.d_model;
  j["n_ff_expert"] = o.shape.d_ff;
  j["n_expert"] = o.shape.n_expert;
  j["n_expert_used"] = o.shape.top_k;
  j["n_ff_shared"] = o.shape.d_ff_shared;
  j["dtype"] = o.dtype == DType::kBF16 ? "bf16" : "f32";
  j["ep"] = r.n_rank;
  j["placement"] = r.placement;
  j["threads"] = r.threads;
  j["repetitions"] = o.repetitions;
  j["rows"] = nlohmann::ordered_json::array();
  for (const EpLayerBenchRow& w : r.rows) j["rows"].push_back(row_json(w));
  return j;
}

}  // namespace moe::parallel
