// `moe bench layer`: one MoE layer in a catalog model's shape (or explicit sizes) per token count:
// median time, GB/s and GFLOP/s as fractions of the ceilings measured in the same run, and dense
// FFNs of equal total and equal activated parameters on the same kernels (table or --json).
// With `mpirun -np R moe bench layer --ep R` the layer runs expert-parallel (parallel/ep_layer_bench.h).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/flags.h"
#include "cli/output.h"
#include "moe/layer_bench.h"
#include "parallel/ep_layer_bench.h"
#include "parallel/ep_setup.h"
#include "util/error.h"

namespace moe::cli {
namespace {

struct LayerFlags {
  std::string model = "qwen3-30b-a3b";
  int64_t d = 0, f = 0, shared = -1;
  int e = 0, k = 0;
  std::vector<int64_t> tokens = {1, 4, 16, 128, 512};
  std::string dtype = "bf16";
  std::string routing = "uniform";
  double capacity_factor = 0;
  int repetitions = 5;
  double max_weight_gib = 4.0;
  int dense_max_chunks = 32;
  bool no_dense = false;
  parallel::EpArgs ep;
};

LayerBenchOptions resolve(const LayerFlags& fl) {
  LayerBenchOptions o;
  o.shape = layer_bench_shape_from_catalog(fl.model);
  if (fl.d > 0) o.shape.d_model = fl.d;
  if (fl.f > 0) o.shape.d_ff = fl.f;
  if (fl.e > 0) o.shape.n_expert = fl.e;
  if (fl.k > 0) o.shape.top_k = fl.k;
  if (fl.shared >= 0) o.shape.d_ff_shared = fl.shared * o.shape.d_ff;
  if (fl.d > 0 || fl.f > 0 || fl.e > 0 || fl.k > 0 || fl.shared >= 0) o.shape.name += " (modified)";
  // Group-limited routing only makes sense for the catalog's expert count.
  if (fl.e > 0 && o.shape.n_expert % o.shape.config.router.n_group != 0) {
    o.shape.config.router.n_group = o.shape.config.router.topk_group = 1;
  }
  o.tokens = fl.tokens;
  for (int64_t t : o.tokens) {
    if (t < 1) fail_usage("bench", "--tokens values must be >= 1, got {}", t);
  }
  if (fl.dtype == "bf16") {
    o.dtype = DType::kBF16;
  } else if (fl.dtype == "f32") {
    o.dtype = DType::kF32;
  } else {
    fail_usage("bench", "--dtype must be f32 or bf16, got '{}'", fl.dtype);
  }
  parse_routing_pattern(fl.routing, &o.routing, &o.zipf_s);
  if (fl.capacity_factor < 0) fail_usage("bench", "--capacity-factor must be > 0 (or 0 for dropless)");
  o.capacity_factor = fl.capacity_factor;
  o.repetitions = fl.repetitions;
  o.max_weight_gib = fl.max_weight_gib;
  o.dense_max_chunks = fl.dense_max_chunks;
  o.dense = !fl.no_dense;
  return o;
}

void print_layer_json(const LayerBenchResult& r) {
  const bool bf16 = r.options.dtype == DType::kBF16;
  nlohmann::ordered_json j;
  j["model"] = r.options.shape.name;
  j["d_model"] = r.options.shape.d_model;
  j["n_ff_expert"] = r.options.shape.d_ff;
  j["n_expert"] = r.options.shape.n_expert;
  j["n_expert_used"] = r.options.shape.top_k;
  j["n_ff_shared"] = r.options.shape.d_ff_shared;
  j["dtype"] = bf16 ? "bf16" : "f32";
  j["threads"] = r.threads;
  j["isa"] = r.isa;
  j["read_ceiling_gb_per_s"] = r.ceilings.read_gbps;
  j["fma_ceiling_gflop_per_s"] = r.ceilings.fma_f32_gflops;
  j["dot_bf16_ceiling_gflop_per_s"] = r.ceilings.dot_bf16_gflops;
  j["total_params"] = json_count(r.total_params);
  j["activated_params"] = json_count(r.activated_params);
  j["residency"] = r.residency;
  for (const LayerBenchRow& w : r.rows) {
    nlohmann::ordered_json row;
    row["tokens"] = w.tokens;
    row["ms"] = w.ms;
    row["gb_per_s"] = w.gbps;
    row["gflop_per_s"] = w.gflops;
    row["read_ceiling_gb_per_s"] = w.read_gbps_paired;
    row["fma_ceiling_gflop_per_s"] = r.ceilings.fma_f32_gflops;
    row["dot_bf16_ceiling_gflop_per_s"] = r.ceilings.dot_bf16_gflops;
    // The pool rotation keeps a call's experts out of cache (see "residency"): no cache exemption.
    put_ceiling_fraction(row, "read_fraction", read_ceiling_fraction(w.read_fraction, 1.0, 0, 0));
    row["peak_fraction"] = w.gflops / (bf16 ? r.ceilings.dot_bf16_gflops : r.ceilings.fma_f32_gflops);
    row["dense_total_ms"] = json_measured(w.dense_total_ms, w.dense_total_ms > 0);
    row["dense_activated_ms"] = json_measured(w.dense_activated_ms, w.dense_activated_ms > 0);
    row["dense_total_extrapolated"] = w.dense_total_extrapolated;
    row["speedup_vs_dense_total"] = json_measured(w.speedup_vs_dense_total, w.dense_total_ms > 0);
    row["theory_total_over_activated"] = r.total_params / r.activated_params;
    row["experts_touched"] = json_count(w.experts_touched);
    row["route_ms"] = w.route_ms;
    row["dispatch_ms"] = w.dispatch_ms;
    row["experts_ms"] = w.experts_ms;
    row["combine_ms"] = w.combine_ms;
    row["overhead_fraction"] = w.overhead_fraction;
    row["dropped_slots"] = w.dropped_slots;
    j["rows"].push_back(row);
  }
  print_json_report(j);
}

void print_table(const LayerBenchResult& r) {
  const LayerBenchOptions& o = r.options;
  const bool bf16 = o.dtype == DType::kBF16;
  const double peak = bf16 ? r.ceilings.dot_bf16_gflops : r.ceilings.fma_f32_gflops;
  fmt::print("moe bench layer: {} D={} F={} E={} K={} shared width={} dtype={} routing={} {} threads={} isa={}\n",
             o.shape.name, o.shape.d_model, o.shape.d_ff, o.shape.n_expert, o.shape.top_k, o.shape.d_ff_shared,
             bf16 ? "bf16" : "f32",
             o.routing == RoutingPattern::kUniform    ? "uniform"
             : o.routing == RoutingPattern::kBalanced ? "balanced"
                                                      : fmt::format("zipf:{}", o.zipf_s),
             o.capacity_factor > 0 ? fmt::format("capacity-factor={}", o.capacity_factor) : "dropless", r.threads,
             r.isa);
  fmt::print("ceilings (same run, all threads): read {:.1f} GB/s, f32 FMA {:.1f} GFLOP/s, bf16 dot {:.1f} GFLOP/s\n",
             r.ceilings.read_gbps, r.ceilings.fma_f32_gflops, r.ceilings.dot_bf16_gflops);
  fmt::print("cache residency: {}\n", r.residency);
  fmt::print(
      "median of {} calls; GB/s = (router + touched experts + shared) weight bytes / time; %read = median over calls "
      "of "
      "GB/s / the read ceiling measured right before that call (paired; column 'read'); peak = {}\n",
      o.repetitions, bf16 ? "bf16 dot" : "f32 FMA");
  fmt::print("{:>6} {:>9} {:>8} {:>6} {:>6} {:>9} {:>6} {:>7} {:>10} {:>10} {:>8} {:>7} {:>9}\n", "tokens", "ms",
             "GB/s", "read", "%read", "GFLOP/s", "%peak", "touched", "dense_tot", "dense_act", "speedup", "theory",
             "overhead");
  bool above_ceiling = false;
  auto dense = [&](double v) { return o.dense ? fmt::format("{:.2f}", v) : std::string("-"); };  // --no-dense
  for (const LayerBenchRow& w : r.rows) {
    above_ceiling |= w.read_fraction > 1.0;
    fmt::print(
        "{:>6} {:>9.3f} {:>8.1f} {:>6.1f} {:>5.0f}{} {:>9.1f} {:>5.0f}% {:>7.1f} {:>9}{} {:>10} {:>8} {:>7.2f} "
        "{:>8.1f}%\n",
        w.tokens, w.ms, w.gbps, w.read_gbps_paired, 100 * w.read_fraction, w.read_fraction > 1.0 ? "!" : "%", w.gflops,
        100 * w.gflops / peak, w.experts_touched, dense(w.dense_total_ms), w.dense_total_extrapolated ? "*" : " ",
        dense(w.dense_activated_ms), dense(w.speedup_vs_dense_total), r.total_params / r.activated_params,
        100 * w.overhead_fraction);
  }
  fmt::print(
      "dense_tot / dense_act: dense GLU FFN of equal total / equal activated parameters, same kernels and weight pool"
      "{}, each run right after each MoE call; speedup = median over calls of dense_tot / that call's ms (paired); "
      "theory = total / activated parameters; overhead = route + dispatch + combine\n",
      r.rows.empty() || !r.rows[0].dense_total_extrapolated
          ? ""
          : fmt::format(" (* measured on {} expert-sized chunks, scaled by width)", o.dense_max_chunks));
  if (above_ceiling) fmt::print("!: {}\n", kAboveCeilingNote);
}

// --ep R > 1: the expert-parallel layer; rank 0 prints.
void run_ep(const LayerFlags& fl, const LayerBenchOptions& o, const GlobalOptions& global) {
  if (o.routing != RoutingPattern::kUniform) fail_usage("bench", "--ep supports only --routing uniform");
  if (o.capacity_factor > 0) fail_usage("bench", "--ep runs dropless: leave --capacity-factor at 0");
  const parallel::EpContext ep = parallel::init_from_args(fl.ep);
  parallel::EpLayerBenchOptions eo;
  eo.shape = o.shape;
  eo.dtype = o.dtype;
  eo.tokens = o.tokens;
  eo.repetitions = o.repetitions;
  eo.placement = ep.placement_spec;
  const parallel::EpLayerBenchResult r = parallel::run_ep_layer_bench(*ep.comm, eo);
  if (!ep.is_root()) return;
  if (global.json) {
    print_json_report(parallel::ep_layer_bench_report(r));
  } else {
    fmt::print("{}", parallel::format_ep_layer_bench(r));
  }
}

}  // namespace

void register_bench_layer(CLI::App& bench, const GlobalOptions& global) {
  auto* cmd = bench.add_subcommand("layer", "One MoE layer vs the dense FFN and the machine's ceilings");
  auto fl = std::make_shared<LayerFlags>();
  cmd->add_option("-m,--model", fl->model, "Catalog model whose layer shape to use (see `moe inspect`)")
      ->capture_default_str();
  add_number(cmd, "--d-model", fl->d, "Override d_model", int64_t{0}, int64_t{1} << 20, "0 = the model's");
  add_number(cmd, "--d-ff", fl->f, "Override the expert hidden size F", int64_t{0}, int64_t{1} << 20,
             "0 = the model's");
  add_number(cmd, "--experts", fl->e, "Override the number of routed experts E", 0, 1 << 16, "0 = the model's");
  add_number(cmd, "--experts-per-token", fl->k, "Override the experts per token K", 0, 1 << 16, "0 = the model's");
  add_number(cmd, "--shared-experts", fl->shared, "Override the shared experts (count of expert-width experts)",
             int64_t{-1}, int64_t{1024}, "-1 = the model's");
  add_numbers(cmd, "--tokens", fl->tokens, "Token counts, comma-separated", int64_t{1}, int64_t{1} << 24);
  cmd->add_option("--dtype", fl->dtype, "Expert weight dtype: f32 or bf16")->capture_default_str();
  cmd->add_option("--routing", fl->routing, "uniform | balanced | zipf:S")->capture_default_str();
  add_number(cmd, "--capacity-factor", fl->capacity_factor, "Capacity factor", 0.0, 1e6, "0 = dropless");
  add_number(cmd, "-r,--repetitions", fl->repetitions, "Timed calls per row (median)", 1, 1000);
  add_number(cmd, "--max-weight-gib", fl->max_weight_gib, "Memory for the expert weight pool", 0.01, 1024.0);
  add_number(cmd, "--dense-max-chunks", fl->dense_max_chunks, "Routed chunks measured for the dense-total baseline", 1,
             100000);
  cmd->add_flag("--no-dense", fl->no_dense, "Skip the dense baselines");
  add_number(cmd, "--ep", fl->ep.ep, "Expert-parallel ranks R: run as 'mpirun -np R moe bench layer --ep R'", 1,
             kMaxEpRanks);
  cmd->add_option("--ep-placement", fl->ep.placement, "Experts to ranks: contiguous, round-robin or file:PATH")
      ->capture_default_str();
  cmd->callback([&global, fl] {
    if (fl->ep.ep != 1) {
      run_ep(*fl, resolve(*fl), global);
      return;
    }
    LayerBenchOptions o = resolve(*fl);
    Progress progress("bench layer", true, global);
    if (progress.active())
      o.on_row = [&](int64_t done, int64_t rows) { progress.update(double(done), double(rows), "rows"); };
    const LayerBenchResult r = run_layer_bench(o);
    progress.done();
    if (global.json) {
      print_layer_json(r);
    } else {
      print_table(r);
    }
  });
}

}  // namespace moe::cli
