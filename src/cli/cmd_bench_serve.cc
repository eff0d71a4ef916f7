// `moe bench serve`: continuous batching measured where it pays or does not. For each number of
// concurrent streams B, B greedy generations run through the serving scheduler (the same code as
// `moe serve`, without HTTP); the steps where all B sequences decode are timed. Each row reports the
// aggregate tokens/s, the distinct routed experts a step touched per MoE layer next to the uniform
// routing prediction E(1-(1-k/E)^B), the bytes a step read (always-on weights once, every distinct
// expert, every sequence's KV) and the rate that byte count allows at the read ceiling measured
// around the same run: decode is bound by those bytes, so the fraction of that floor says how much
// of the batch's possible gain the engine delivered.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "cli/command.h"
#include "cli/flags.h"
#include "cli/output.h"
#include "cli/run_common.h"
#include "io/run_folder.h"
#include "kernels/ceilings.h"
#include "runtime/timer.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"
#include "spec/accounting.h"
#include "spec/tensor_registry.h"
#include "util/error.h"
#include "util/log.h"

namespace moe::cli {
namespace {

struct BenchServeArgs {
  std::string weights;
  std::string streams = "1,2,4,8,16";
  int64_t prompt = 64;
  int64_t decode = 32;
  int repetitions = 1;
};

struct Row {
  int64_t streams = 0;
  double step_seconds = 0, tokens_per_s = 0;
  double distinct = 0, predicted = 0;  // per MoE layer, mean over steps
  double bytes_per_step = 0, read_gbps = 0, floor_tokens_per_s = 0;
  double flops_per_step = 0, compute_tokens_per_s = 0;  // B x decode FLOPs per token; at the FMA peak
  double load_max_over_mean = 0;                        // hottest expert / mean, mean over MoE layers
  double hot_share = 0;  // share of routed tokens the hottest k experts of each layer took
  double attention_ms = 0, ffn_ms = 0, head_ms = 0, other_ms = 0;  // medians of the steps' parts (ForwardStats)
};

// The figures of the timed steps (those where all B streams decoded), over the runs.
struct StepSamples {
  std::vector<double> seconds, distinct, bytes, attention, ffn, head, other;
  void add(const serve::StepRecord& s, double always_on_bytes) {
    seconds.push_back(s.seconds);
    double d = 0;
    for (int32_t x : s.distinct_experts) d += x;
    if (!s.distinct_experts.empty()) distinct.push_back(d / static_cast<double>(s.distinct_experts.size()));
    bytes.push_back(always_on_bytes + static_cast<double>(s.expert_bytes) + static_cast<double>(s.kv_bytes));
    attention.push_back(s.attention_seconds);
    ffn.push_back(s.ffn_seconds);
    head.push_back(s.head_seconds);
    other.push_back(s.seconds - s.attention_seconds - s.ffn_seconds - s.head_seconds);  // this step's rest
  }
};

std::vector<int64_t> parse_streams(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 1 || v > 4096)
      fail_usage("bench", "--streams must be a comma-separated list of counts from 1 to 4096, found '{}'", text);
    out.push_back(v);
  }
  if (out.empty()) fail_usage("bench", "--streams is empty");
  return out;
}

Row measure_streams(Decoder& model, const BenchServeArgs& a, int64_t B, double always_on_bytes, ReadProbe& probe,
                    const MatmulPeak& peak) {
  const ModelSpec& spec = model.spec();
  std::mt19937 rng(static_cast<uint32_t>(11 + B));
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(B));
  for (auto& p : prompts) {
    p.resize(static_cast<size_t>(a.prompt));
    for (int32_t& id : p) id = static_cast<int32_t>(rng() % static_cast<uint32_t>(spec.vocab));
  }
  StepSamples steps_of_b;
  std::vector<double> ceilings;
  std::vector<std::vector<int64_t>> load(static_cast<size_t>(spec.n_layer));
  for (int r = 0; r < a.repetitions + 1; ++r) {  // the first run warms up
    // Every prompt prefills in the first step (all sequences then decode together).
    serve::Scheduler sched(model, nullptr, {B, 0, std::max<int64_t>(B * a.prompt, B + 1)});
    sched.record_steps(true);
    GenerateOptions o;
    o.max_new_tokens = a.decode + 1;  // the first token comes from the prefill's logits
    const double before = probe.gbps();
    std::vector<std::shared_ptr<serve::Ticket>> tickets;
    sched.pause();  // all B start in the same step
    for (const auto& p : prompts) tickets.push_back(sched.submit(p, o));
    sched.resume();
    for (auto& t : tickets) (void)t->result();
    const double after = probe.gbps();
    const auto steps = sched.take_steps();
    const serve::SchedulerStats st = sched.stats();
    if (r == 0) continue;
    ceilings.push_back(0.5 * (before + after));
    for (const serve::StepRecord& s : steps)
      if (s.prefill_rows == 0 && s.decode_rows == B) steps_of_b.add(s, always_on_bytes);
    for (size_t l = 0; l < st.expert_tokens.size(); ++l) {
      if (st.expert_tokens[l].empty()) continue;
      auto& dst = load[l];
      dst.resize(st.expert_tokens[l].size());
      for (size_t e = 0; e < dst.size(); ++e) dst[e] += st.expert_tokens[l][e];
    }
  }
  if (steps_of_b.seconds.empty()) fail("bench", "--decode {} gave no step where all {} streams decoded", a.decode, B);
  Row row;
  row.streams = B;
  row.step_seconds = median(steps_of_b.seconds);
  row.tokens_per_s = static_cast<double>(B) / row.step_seconds;
  for (double d : steps_of_b.distinct) row.distinct += d / static_cast<double>(steps_of_b.distinct.size());
  row.predicted = expected_distinct_experts(spec.n_expert, spec.n_expert_used, static_cast<double>(B));
  row.bytes_per_step = median(steps_of_b.bytes);
  row.attention_ms = 1e3 * median(steps_of_b.attention);
  row.ffn_ms = 1e3 * median(steps_of_b.ffn);
  row.head_ms = 1e3 * median(steps_of_b.head);
  row.other_ms = 1e3 * median(steps_of_b.other);
  row.read_gbps = median(ceilings);
  row.floor_tokens_per_s = static_cast<double>(B) * row.read_gbps * 1e9 / row.bytes_per_step;
  Workload w;
  w.prompt = a.prompt;
  w.context = a.prompt + a.decode / 2;  // the mean cache length over the timed steps
  RegistryOptions ro;
  ro.include_mtp = false;
  row.flops_per_step = static_cast<double>(B) * compute_cost(spec, build_registry(spec, ro), w).decode_flops_per_token;
  row.compute_tokens_per_s = static_cast<double>(B) * peak.gflops * 1e9 / row.flops_per_step;
  int64_t layers = 0;
  for (auto& l : load) {
    if (l.empty()) continue;
    std::sort(l.begin(), l.end(), std::greater<>());
    double sum = 0, hot = 0;
    for (size_t e = 0; e < l.size(); ++e) sum += static_cast<double>(l[e]);
    for (int64_t e = 0; e < spec.n_expert_used && e < static_cast<int64_t>(l.size()); ++e) hot += double(l[e]);
    if (sum <= 0) continue;
    row.load_max_over_mean += static_cast<double>(l[0]) / (sum / static_cast<double>(l.size()));
    row.hot_share += hot / sum;
    ++layers;
  }
  if (layers > 0) row.load_max_over_mean /= double(layers), row.hot_share /= double(layers);
  return row;
}

// The tokens/s of one stream (0 when the first row is not one stream): what "vs 1" divides by.
double single_stream_rate(const std::vector<Row>& rows) {
  return rows.front().streams == 1 ? rows.front().tokens_per_s : 0;
}

nlohmann::ordered_json bench_serve_json(const BenchServeArgs& a, const ModelSpec& spec, const CeilingRow& ceiling,
                                        const MatmulPeak& peak, double always_on, const std::vector<Row>& rows) {
  const double single = single_stream_rate(rows);
  nlohmann::ordered_json j{{"model", a.weights},
                           {"model_type", spec.model_type},
                           {"layers", spec.n_layer},
                           {"n_expert", spec.n_expert},
                           {"n_expert_used", spec.n_expert_used},
                           {"prompt_tokens", a.prompt},
                           {"decode_tokens", a.decode},
                           {"repetitions", a.repetitions},
                           {"read_ceiling_at_start_gb_per_s", ceiling.read_gbps},
                           {"fma_ceiling_gflop_per_s", ceiling.fma_f32_gflops},
                           {"matmul_peak_gop_per_s", peak.gflops},
                           {"matmul_peak_kind", peak.kind},
                           {"matmul_peak_stored_dtype", peak.stored},
                           {"always_on_bytes", json_count(always_on)},
                           {"rows", nlohmann::ordered_json::array()}};
  for (const Row& r : rows) {
    // null when the last-level cache holds a step's bytes (DRAM bandwidth is then not the floor)
    const CeilingFraction floor =
        step_floor_fraction(r.tokens_per_s / r.floor_tokens_per_s, r.bytes_per_step, r.read_gbps);
    j["rows"].push_back(
        {{"streams", r.streams},
         {"tokens_per_s", r.tokens_per_s},
         {"step_ms", 1e3 * r.step_seconds},
         {"speedup_vs_1_stream", json_measured(single > 0 ? r.tokens_per_s / single : 0.0, single > 0)},
         {"distinct_experts_per_layer", r.distinct},
         {"distinct_experts_uniform_prediction", r.predicted},
         {"bytes_per_step", json_count(r.bytes_per_step)},
         {"read_ceiling_gb_per_s", r.read_gbps},
         {"floor_tokens_per_s", r.floor_tokens_per_s},
         {"fraction_of_floor", json_measured(floor.fraction)},
         {"fraction_of_floor_note",
          floor.note.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(floor.note)},
         {"flops_per_step", json_count(r.flops_per_step)},
         {"compute_bound_tokens_per_s", r.compute_tokens_per_s},
         {"roofline_tokens_per_s", std::min(r.floor_tokens_per_s, r.compute_tokens_per_s)},
         {"fraction_of_roofline", r.tokens_per_s / std::min(r.floor_tokens_per_s, r.compute_tokens_per_s)},
         {"expert_load_max_over_mean", r.load_max_over_mean},
         {"hottest_k_share", r.hot_share},
         {"attention_ms", r.attention_ms},
         {"ffn_ms", r.ffn_ms},
         {"lm_head_ms", r.head_ms},
         {"other_ms", r.other_ms}});
  }
  return j;
}

void print_bench_serve(const BenchServeArgs& a, const ModelSpec& spec, const MatmulPeak& peak,
                       const std::vector<Row>& rows) {
  const double single = single_stream_rate(rows);
  fmt::print("bench serve {} ({} layers, {} experts, top-{}): prompt {}, {} decode steps, median step of {} run(s)\n",
             a.weights, spec.n_layer, spec.n_expert, spec.n_expert_used, a.prompt, a.decode, a.repetitions);
  fmt::print("  {:>7} {:>9} {:>8} {:>6} {:>16} {:>11} {:>9} {:>6} {:>7} {:>8} {:>7} {:>8}\n", "streams", "tokens/s",
             "step ms", "vs 1", "experts/layer", "bytes/step", "floor t/s", "GB/s", "floor%", "peak t/s", "roof%",
             "hot-k %");
  for (const Row& r : rows) {
    const double roof = std::min(r.floor_tokens_per_s, r.compute_tokens_per_s);
    fmt::print(
        "  {:>7} {:>9.1f} {:>8.1f} {:>6.2f} {:>7.1f} ({:>6.1f}) {:>11} {:>9.1f} {:>6.1f} {:>6.1f}% {:>8.1f} {:>6.1f}% "
        "{:>7.1f}%\n",
        r.streams, r.tokens_per_s, 1e3 * r.step_seconds, single > 0 ? r.tokens_per_s / single : 0.0, r.distinct,
        r.predicted, format_bytes(r.bytes_per_step), r.floor_tokens_per_s, r.read_gbps,
        100 * r.tokens_per_s / r.floor_tokens_per_s, r.compute_tokens_per_s, 100 * r.tokens_per_s / roof,
        100 * r.hot_share);
  }
  fmt::print(
      "  (experts/layer: measured distinct routed experts per decode step, in parentheses E(1-(1-k/E)^B) for uniform "
      "routing; bytes/step: always-on weights + the distinct experts + every sequence's KV; floor: B x read ceiling / "
      "bytes per step, the ceiling paired with each run; peak t/s: B x matmul peak / B x decode FLOPs per token (the "
      "compute bound; the peak of the experts' {} weights: {}, {:.0f} GOP/s, measured at the start); roof%: tokens/s "
      "over the lower of the two bounds; hot-k %: routed tokens the k hottest experts of a layer took, "
      "k/E under uniform routing)\n",
      peak.stored, peak.kind, peak.gflops);
  fmt::print("  {:>7} {:>12} {:>11} {:>11} {:>9}   (medians over the timed steps, ms)\n", "streams", "attention",
             "FFN / MoE", "LM head", "other");
  for (const Row& r : rows)
    fmt::print("  {:>7} {:>12.2f} {:>11.2f} {:>11.2f} {:>9.2f}\n", r.streams, r.attention_ms, r.ffn_ms, r.head_ms,
               r.other_ms);
}

void run_bench_serve(const BenchServeArgs& given, const GlobalOptions& global) {
  if (given.weights.empty()) fail_usage("bench", "--model is required: a checkpoint folder or .gguf file");
  BenchServeArgs a = given;
  a.weights = resolve_model_path(given.weights);  // a training run folder: the checkpoint its `latest` names
  const std::vector<int64_t> streams = parse_streams(a.streams);
  Decoder model(a.weights);
  const ModelSpec& spec = model.spec();
  if (spec.n_expert <= 0) log_warn("bench serve: {} is a dense model: no experts to count", a.weights);
  const double always_on = always_on_weight_bytes(a.weights, spec);
  const CeilingRow ceiling = measure_quick_ceilings(3);
  const MatmulPeak peak = matmul_peak(a.weights, spec, ceiling);
  ReadProbe probe;
  std::vector<Row> rows;
  {
    Progress progress("bench serve", true, global);
    for (int64_t B : streams) {
      rows.push_back(measure_streams(model, a, B, always_on, probe, peak));
      progress.update(double(rows.size()), double(streams.size()), "stream counts");
    }
  }
  if (global.json) {
    print_json_report(bench_serve_json(a, spec, ceiling, peak, always_on, rows));
    return;
  }
  print_bench_serve(a, spec, peak, rows);
}

}  // namespace

void register_bench_serve(CLI::App& bench, const GlobalOptions& global) {
  auto a = std::make_shared<BenchServeArgs>();
  auto* cmd = bench.add_subcommand(
      "serve", "Continuous batching: tokens/s and distinct experts per step at 1..N concurrent streams");
  cmd->add_option("-m,--model", a->weights, "Checkpoint folder or .gguf file (e.g. one `moe bench model --dir` wrote)");
  cmd->add_option("--streams", a->streams, "Concurrent streams to measure, comma-separated")->capture_default_str();
  add_number(cmd, "-p,--prompt", a->prompt, "Prompt tokens of each stream", int64_t{1}, int64_t{1} << 20);
  add_number(cmd, "-n,--decode", a->decode, "Decode steps timed", int64_t{1}, int64_t{1} << 20);
  add_number(cmd, "-r,--repetitions", a->repetitions, "Timed runs per stream count, after a warm-up run", 1, 100);
  cmd->callback([a, &global] { run_bench_serve(*a, global); });
}

}  // namespace moe::cli
