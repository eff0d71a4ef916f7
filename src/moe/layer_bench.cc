// `moe bench layer` driver: weight pool sized past the last-level cache, routing patterns
// rotated between calls, MoE layer timing with telemetry, dense baselines on the same kernels.
#include "moe/layer_bench.h"

#include <fmt/format.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "kernels/packed_weights.h"
#include "moe/dense_ffn.h"
#include "moe/layer_config.h"
#include "runtime/aligned.h"
#include "runtime/cpu_features.h"
#include "runtime/process_limits.h"
#include "runtime/thread_pool.h"
#include "runtime/timer.h"
#include "spec/catalog.h"
#include "util/error.h"

namespace moe {
namespace {

constexpr int64_t kGiB = int64_t(1) << 30;

int64_t llc_bytes() {
  const long v = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return v > 0 ? v : 32 * (int64_t(1) << 20);
}

// Fills n bf16 or f32 values in [-0.05, 0.05) from a cheap generator seeded by `seed` (values do not
// matter for speed, only that they are finite normals).
void fill_random_serial(uint8_t* p, int64_t n, DType dt, uint64_t seed) {
  uint64_t s = 0x9e3779b97f4a7c15ull * (seed + 1);
  for (int64_t i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    const float v = (static_cast<float>(s >> 40) / static_cast<float>(1 << 24) - 0.5f) * 0.1f + 1e-3f;
    if (dt == DType::kBF16) {
      reinterpret_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
    } else {
      reinterpret_cast<float*>(p)[i] = v;
    }
  }
}

// The same in parallel over the pool's threads.
void fill_random(uint8_t* p, int64_t n, DType dt) {
  const int64_t es = static_cast<int64_t>(dtype_size(dt));
  thread_pool().parallel_for(n, [&](int64_t b, int64_t e, int t) { fill_random_serial(p + b * es, e - b, dt, b + t); });
}

// Expert ids [T, K] for call `call`: the pattern, then every id shifted by call * K (mod E) so
// consecutive calls touch different experts (and the hot expert of zipf moves).
std::vector<int32_t> make_routing(RoutingPattern pat, double zipf_s, int64_t T, int K, int E, int64_t call) {
  std::vector<int32_t> ids(T * K);
  std::mt19937_64 rng(1234 + call);
  std::vector<double> w(E);
  for (int e = 0; e < E; ++e) w[e] = pat == RoutingPattern::kZipf ? 1.0 / std::pow(e + 1.0, zipf_s) : 1.0;
  const int64_t shift = (call * K) % E;
  for (int64_t t = 0; t < T; ++t) {
    if (pat == RoutingPattern::kBalanced) {
      for (int k = 0; k < K; ++k) ids[t * K + k] = static_cast<int32_t>((t * K + k + shift) % E);
      continue;
    }
    std::vector<double> left = w;
    for (int k = 0; k < K; ++k) {
      std::discrete_distribution<int> d(left.begin(), left.end());
      const int e = d(rng);
      left[e] = 0.0;
      ids[t * K + k] = static_cast<int32_t>((e + shift) % E);
    }
  }
  return ids;
}

int64_t round_up_64(int64_t v) { return (v + 63) / 64 * 64; }

// The pool of expert-sized weight blocks and views into it: per block gate, up [F, D] and down [D, F],
// in rows or (panels) in the kernels' panel layout, each matrix 64-byte aligned.
struct Pool {
  int64_t D = 0, F = 0, bpe = 0, gate_bytes = 0, down_bytes = 0;
  int64_t weight_bytes = 0;  // 3 * D * F * dtype size: the bytes a call needs per expert (no padding)
  DType dt = DType::kBF16;
  bool panels = false;
  int P = 0;
  AlignedBuffer<uint8_t> mem;
  void init(int64_t d, int64_t f, DType dtype, bool pack) {
    D = d;
    F = f;
    dt = dtype;
    panels = pack;
    const int64_t es = static_cast<int64_t>(dtype_size(dt));
    weight_bytes = 3 * D * F * es;
    gate_bytes = round_up_64(panels ? static_cast<int64_t>(panel_bytes(dt, F, D)) : F * D * es);
    down_bytes = round_up_64(panels ? static_cast<int64_t>(panel_bytes(dt, D, F)) : D * F * es);
    bpe = 2 * gate_bytes + down_bytes;
  }
  ExpertMatrices expert(int64_t p) const {
    const uint8_t* base = mem.data() + (p % P) * bpe;
    const WeightLayout lay = panels ? WeightLayout::kPanels : WeightLayout::kRows;
    const int64_t ld_gu = panels ? panel_ld(dt, D) : D, ld_d = panels ? panel_ld(dt, F) : F;
    return {{base, dt, ld_gu, lay}, {base + gate_bytes, dt, ld_gu, lay}, {base + 2 * gate_bytes, dt, ld_d, lay}};
  }
  // Random weights: rows filled directly, or random rows packed into panels block by block.
  void fill() {
    if (!panels) {
      fill_random(mem.data(), P * bpe / static_cast<int64_t>(dtype_size(dt)), dt);
      return;
    }
    const int64_t es = static_cast<int64_t>(dtype_size(dt));
    thread_pool().parallel_for(P, [&](int64_t b, int64_t e, int) {
      std::vector<uint8_t> rows(static_cast<size_t>(D * F * es));  // [F, D] or [D, F]
      for (int64_t blk = b; blk < e; ++blk) {
        uint8_t* base = mem.data() + blk * bpe;
        const int64_t n[3] = {F, F, D}, k[3] = {D, D, F}, off[3] = {0, gate_bytes, 2 * gate_bytes};
        for (int j = 0; j < 3; ++j) {
          fill_random_serial(rows.data(), D * F, dt, static_cast<uint64_t>(3 * blk + j));
          pack_panels({rows.data(), dt, k[j]}, n[j], k[j], base + off[j]);
        }
      }
    });
  }
};

double median_of(std::vector<double> v) { return median(std::move(v)); }

double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return 1e3 * double(ts.tv_sec) + 1e-6 * double(ts.tv_nsec);
}

// Shared experts as blocks of width F (the pool's expert-sized blocks); fails on a shape the bench cannot time.
int shared_blocks_of(const LayerBenchShape& sh) {
  const int E = sh.n_expert, K = sh.top_k;
  const int64_t D = sh.d_model, F = sh.d_ff;
  if (D < 1 || F < 1 || E < 1 || K < 1 || K > E) {
    fail_usage("bench", "layer shape needs d, f, e >= 1 and 1 <= k <= e; got d={} f={} e={} k={}", D, F, E, K);
  }
  if (sh.d_ff_shared % F != 0) {
    fail_usage("bench",
               "shared width {} must be a multiple of the expert width {} (shared experts are timed as "
               "expert-sized blocks of the pool)",
               sh.d_ff_shared, F);
  }
  return static_cast<int>(sh.d_ff_shared / F);
}

// Pool: at least max(2 x LLC, 1 GiB) of expert weights, at most --max-weight-gib; allocated, filled,
// and its size recorded in `res`.
void build_pool(const LayerBenchOptions& opt, int S, Pool& pool, LayerBenchResult& res) {
  const LayerBenchShape& sh = opt.shape;
  const int E = sh.n_expert, K = sh.top_k;
  const int64_t D = sh.d_model, F = sh.d_ff;
  pool.init(D, F, opt.dtype, opt.pack_weights && panel_layout_supported(opt.dtype));
  res.packed = pool.panels;
  const int64_t target = std::max<int64_t>(2 * res.llc_bytes, kGiB);
  const int64_t fit = std::max<int64_t>(1, static_cast<int64_t>(opt.max_weight_gib * kGiB) / pool.bpe);
  int64_t want = std::max<int64_t>(E + S, (target + pool.bpe - 1) / pool.bpe);
  if (want > E + S) want = (want + E - 1) / E * E;  // whole extra weight sets for small models
  pool.P = static_cast<int>(std::min(want, fit));
  int64_t max_tokens = 1;
  for (int64_t T : opt.tokens) max_tokens = std::max(max_tokens, T);
  check_fits_in_memory(
      static_cast<long double>(pool.P) * pool.bpe +
          4.0L * max_tokens * (4.0L * D + (static_cast<long double>(K) + S) * 3 * F),
      "bench",
      fmt::format("d_model {} x d_ff {} (--d-model, --d-ff) with up to {} tokens (--tokens): the weight pool "
                  "and activations",
                  D, F, max_tokens));
  res.physical_experts = pool.P;
  res.weight_sets = std::max(1, pool.P / E);
  res.pool_bytes = pool.P * pool.bpe;
  pool.mem = AlignedBuffer<uint8_t>(static_cast<size_t>(res.pool_bytes));
  pool.fill();
}

// What the report says of the pool: its size against the LLC, how calls rotate through it, the layout.
std::string describe_residency(const Pool& pool, const LayerBenchResult& res, int E, int S) {
  std::string s = fmt::format(
      "weight pool {:.2f} GiB = {} expert-sized blocks ({:.1f} MiB each), {:.1f}x the {} MiB LLC; routed expert e of "
      "call c uses block (e + (c mod {}) * E) mod {}, shared blocks rotate too, and routing is shifted by c*K experts "
      "per call, so a timed call's experts were last read at least one full pool sweep earlier{}",
      double(res.pool_bytes) / kGiB, pool.P, double(pool.bpe) / (1 << 20), double(res.pool_bytes) / res.llc_bytes,
      res.llc_bytes >> 20, res.weight_sets, pool.P,
      pool.P < E + S ? fmt::format(" (pool smaller than the layer: {} experts alias {} blocks)", E + S, pool.P) : "");
  s += pool.panels ? "; expert weights packed into the kernels' panel layout once, before timing"
                   : "; expert weights in row layout (B packed per matmul call)";
  if (res.pool_bytes < 2 * res.llc_bytes) {
    s += "; WARNING: the pool is smaller than 2x the LLC (raise --max-weight-gib), so weights may be "
         "cache-resident and the figures overstate memory speed";
  }
  return s;
}

// One row's timed calls (warm-up excluded), reduced to medians by RowSamples::summarize.
struct RowSamples {
  std::vector<double> ms, cpu, route, dispatch, experts, combine, ceiling, fraction;
  std::vector<double> d_act, d_act_cpu, d_tot, d_tot_cpu, speedup;

  void summarize(int repetitions, bool dense, LayerBenchRow& row) const {
    const double n = repetitions;
    row.experts_touched /= n;
    row.bytes /= n;
    row.flops /= n;
    row.ms = median_of(ms);
    row.cpu_ms = median_of(cpu);
    row.route_ms = median_of(route);
    row.dispatch_ms = median_of(dispatch);
    row.experts_ms = median_of(experts);
    row.combine_ms = median_of(combine);
    row.overhead_fraction = (row.route_ms + row.dispatch_ms + row.combine_ms) / row.ms;
    row.gbps = row.bytes / (row.ms * 1e6);
    row.read_gbps_paired = median_of(ceiling);
    row.read_fraction = median_of(fraction);
    row.gflops = row.flops / (row.ms * 1e6);
    if (dense) {
      row.dense_activated_ms = median_of(d_act);
      row.dense_activated_cpu_ms = median_of(d_act_cpu);
      row.dense_total_ms = median_of(d_tot);
      row.dense_total_cpu_ms = median_of(d_tot_cpu);
      row.speedup_vs_dense_total = median_of(speedup);
    }
  }
};

// The layer under test over the pool: a random router [E, D] packed as the decoder loads it, routed and
// shared experts of call c taken from the pool in rotation, and the read probe paired with each call.
class LayerUnderTest {
 public:
  LayerUnderTest(const LayerBenchOptions& opt, const Pool& pool, int S, int weight_sets)
      : opt_(opt),
        pool_(pool),
        E_(opt.shape.n_expert),
        K_(opt.shape.top_k),
        S_(S),
        weight_sets_(weight_sets),
        D_(opt.shape.d_model),
        F_(opt.shape.d_ff),
        router_(static_cast<size_t>(E_) * D_),  // [E, D]
        corr_(E_, 0.0f),                        // [E]
        router_view_(packed_router()),
        cfg_(layer_config()),
        layer_(cfg_, weights_for_call(0)) {}

  // Times opt.repetitions calls (after one warm-up) of `T` tokens, each followed by its dense baselines.
  LayerBenchRow measure_row(int64_t T) {
    std::vector<float> x(static_cast<size_t>(T) * D_), out(static_cast<size_t>(T) * D_);  // [T, D]
    fill_random(reinterpret_cast<uint8_t*>(x.data()), T * D_, DType::kF32);
    LayerBenchRow row;
    row.tokens = T;
    RowSamples s;
    // Dense FFNs as expert-sized chunks of the same pool: equal activated = K + S chunks; equal total =
    // E + S chunks, measured on at most dense_max_chunks routed chunks and scaled by width. Each runs
    // right after each timed MoE call (paired, like the read ceiling): this VM's speed moves within
    // seconds, and a speedup of medians taken minutes apart measured the machine's drift as much as
    // the layer. The speedup is the median over calls of each call's own ratio.
    const int total_chunks = std::min(E_, std::max(opt_.dense_max_chunks, K_)) + S_;
    const double total_scale = double(E_ + S_) / total_chunks;
    row.dense_total_extrapolated = total_chunks < E_ + S_;
    DenseTimer dense{*this, x.data(), out.data(), T, {}, 0};
    for (int rep = -1; rep < opt_.repetitions; ++rep, ++call_) {
      const CallFigures c = time_moe_call(x.data(), out.data(), T);
      if (opt_.dense) {
        double act_cpu = 0, tot_cpu = 0;
        const double act = dense.time(K_ + S_, &act_cpu);
        const double tot = dense.time(total_chunks, &tot_cpu) * total_scale;
        if (rep >= 0) {
          s.d_act.push_back(act);
          s.d_act_cpu.push_back(act_cpu);
          s.d_tot.push_back(tot);
          s.d_tot_cpu.push_back(tot_cpu * total_scale);
          s.speedup.push_back(tot / c.ms);
        }
      }
      if (rep < 0) continue;  // warm-up: workspace allocation, page faults
      record_call(T, c, s, row);
    }
    s.summarize(opt_.repetitions, opt_.dense, row);
    return row;
  }

 private:
  // A dense FFN over `chunks` consecutive expert-sized blocks of the pool (a fresh run of blocks per
  // call), on the row's input.
  struct DenseTimer {
    const LayerUnderTest& l;
    const float* x;
    float* out;
    int64_t T;
    std::vector<float> h;
    int64_t dense_call = 0;

    double time(int chunks, double* cpu_ms) {
      ExpertWeights w;
      w.d_model = l.D_;
      w.d_ff = l.F_;
      for (int c = 0; c < chunks; ++c) w.experts.push_back(l.pool_.expert(dense_call * chunks + c));
      ++dense_call;
      const double cpu0 = process_cpu_ms();
      Timer timer;
      dense_ffn_forward(w, l.cfg_.activation, x, T, out, {}, &h);
      const double t = timer.ms();
      *cpu_ms = process_cpu_ms() - cpu0;
      return t;
    }
  };

  struct CallFigures {
    double ms = 0, cpu_ms = 0, ceiling_gbps = 0;  // wall and process CPU time; the paired read ceiling
    MoeTelemetry tel;
  };

  // One MoE call of `T` tokens on call_'s weights and routing, right after a read-ceiling pass.
  CallFigures time_moe_call(const float* x, float* out, int64_t T) {
    const std::vector<int32_t> ids = make_routing(opt_.routing, opt_.zipf_s, T, K_, E_, call_);
    layer_.set_weights(weights_for_call(call_));
    RunOptions ro;
    ro.expert_ids = ids.data();
    CallFigures c;
    c.ceiling_gbps = probe_.gbps();
    const double cpu0 = process_cpu_ms();
    Timer timer;
    layer_.forward(x, T, out, ro, &c.tel);
    c.ms = timer.ms();
    c.cpu_ms = process_cpu_ms() - cpu0;
    return c;
  }

  // One timed call's figures into the row: times, telemetry, the bytes it streamed against its ceiling.
  void record_call(int64_t T, const CallFigures& c, RowSamples& s, LayerBenchRow& row) const {
    const MoeTelemetry& tel = c.tel;
    s.ms.push_back(c.ms);
    s.cpu.push_back(c.cpu_ms);
    s.route.push_back(tel.route_ms);
    s.dispatch.push_back(tel.dispatch_ms);
    s.experts.push_back(tel.experts_ms);
    s.combine.push_back(tel.combine_ms);
    row.experts_touched += tel.experts_touched;
    const double call_bytes = double(E_) * D_ * 4 + double(tel.experts_touched + S_) * pool_.weight_bytes;
    row.bytes += call_bytes;
    s.ceiling.push_back(c.ceiling_gbps);
    s.fraction.push_back(call_bytes / (c.ms * 1e6) / c.ceiling_gbps);
    row.flops += double(tel.expert_flops) + 2.0 * T * E_ * D_;
    row.dropped_slots += tel.dropped_slots;
  }

  WeightView packed_router() {
    fill_random(reinterpret_cast<uint8_t*>(router_.data()), E_ * D_, DType::kF32);
    return pack_dense({router_.data(), DType::kF32, D_}, E_, &router_packed_);
  }

  MoeLayerConfig layer_config() const {
    MoeLayerConfig cfg = opt_.shape.config;
    cfg.d_model = D_;
    cfg.router.n_expert = E_;
    cfg.router.top_k = K_;
    if (opt_.capacity_factor > 0) {
      cfg.dispatch.mode = CapacityMode::kCapacity;
      cfg.dispatch.capacity_factor = opt_.capacity_factor;
    }
    return cfg;
  }

  MoeLayerWeights weights_for_call(int64_t c) const {
    MoeLayerWeights w;
    w.router.weight = router_view_;
    w.router.correction_bias = corr_.data();
    w.experts.d_model = D_;
    w.experts.d_ff = F_;
    const int64_t base = (c % weight_sets_) * E_;
    for (int e = 0; e < E_; ++e) w.experts.experts.push_back(pool_.expert(base + e));
    w.shared.d_model = D_;
    w.shared.d_ff = F_;
    for (int s = 0; s < S_; ++s) w.shared.experts.push_back(pool_.expert(base + E_ + c * S_ + s));
    return w;
  }

  const LayerBenchOptions& opt_;
  const Pool& pool_;
  const int E_, K_, S_, weight_sets_;
  const int64_t D_, F_;
  std::vector<float> router_, corr_;
  std::deque<PackedWeights> router_packed_;  // the router in panels, as the decoder loads it
  WeightView router_view_;
  MoeLayerConfig cfg_;
  MoeLayer layer_;
  ReadProbe probe_;  // a read-ceiling pass before each timed call (also evicts the caches)
  int64_t call_ = 0;
};

}  // namespace

LayerBenchShape layer_bench_shape_from_catalog(const std::string& model) {
  const CatalogEntry* e = find_catalog_entry(model);
  if (!e) fail_usage("bench", "unknown model '{}': `moe inspect` lists the catalog names", model);
  const ModelSpec spec = parse_model_spec(e->config, e->name);
  if (!spec.is_moe_model()) fail_usage("bench", "model '{}' has no MoE layers", model);
  LayerBenchShape s;
  s.name = e->name;
  s.config = moe_layer_config(spec);
  s.d_model = spec.d_model;
  s.d_ff = spec.n_ff_expert;
  s.d_ff_shared = spec.n_ff_shared;
  s.n_expert = static_cast<int>(spec.n_expert);
  s.top_k = static_cast<int>(spec.n_expert_used);
  return s;
}

void parse_routing_pattern(const std::string& text, RoutingPattern* pattern, double* zipf_s) {
  if (text == "uniform") {
    *pattern = RoutingPattern::kUniform;
  } else if (text == "balanced") {
    *pattern = RoutingPattern::kBalanced;
  } else if (text.rfind("zipf:", 0) == 0) {
    *pattern = RoutingPattern::kZipf;
    char* end = nullptr;
    *zipf_s = std::strtod(text.c_str() + 5, &end);
    if (end == text.c_str() + 5 || *end != '\0' || !(*zipf_s > 0)) {
      fail_usage("bench", "--routing zipf:S needs a number S > 0, got '{}'", text);
    }
  } else {
    fail_usage("bench", "--routing must be uniform, balanced or zipf:S, got '{}'", text);
  }
}

LayerBenchResult run_layer_bench(const LayerBenchOptions& opt) {
  const LayerBenchShape& sh = opt.shape;
  const int S = shared_blocks_of(sh);
  const int E = sh.n_expert, K = sh.top_k;
  const int64_t D = sh.d_model, F = sh.d_ff;
  LayerBenchResult res;
  res.options = opt;
  res.threads = num_threads();
  res.isa = isa_name(active_isa());
  res.llc_bytes = llc_bytes();
  res.ceilings = measure_quick_ceilings(3);
  Pool pool;
  build_pool(opt, S, pool, res);
  res.residency = describe_residency(pool, res, E, S);

  LayerUnderTest layer(opt, pool, S, res.weight_sets);
  res.total_params = double(E + S) * 3 * D * F + double(E) * D;
  res.activated_params = double(K + S) * 3 * D * F + double(E) * D;
  for (int64_t T : opt.tokens) {
    res.rows.push_back(layer.measure_row(T));
    if (opt.on_row) opt.on_row(static_cast<int64_t>(res.rows.size()), static_cast<int64_t>(opt.tokens.size()));
  }
  return res;
}

}  // namespace moe
