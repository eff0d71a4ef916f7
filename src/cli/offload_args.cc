// Offload flags and report (see offload_args.h).
#include "cli/offload_args.h"

#include <cctype>
#include <cmath>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "io/disk_read.h"
#include "io/gguf.h"
#include "util/error.h"
#include "util/json_out.h"

namespace moe::cli {

uint64_t parse_size(const std::string& text, const std::string& flag) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    fail_usage("cli", "{} {}: expected a size such as 24G, 512M or 1073741824", flag, text);
  }
  std::string unit = text.substr(used);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
  if (unit.size() > 1 && unit.back() == 'I') unit.pop_back();
  double scale = 1;
  if (unit == "K")
    scale = 1024.0;
  else if (unit == "M")
    scale = 1024.0 * 1024;
  else if (unit == "G")
    scale = 1024.0 * 1024 * 1024;
  else if (unit == "T")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else if (!unit.empty() && unit != "B")
    fail_usage("cli", "{} {}: unknown unit \"{}\" (K, M, G or T)", flag, text, text.substr(used));
  if (!(v > 0) || !std::isfinite(v * scale) || v * scale > 1e18)
    fail_usage("cli", "{} {}: expected a positive size", flag, text);
  return static_cast<uint64_t>(v * scale);
}

OffloadOptions OffloadArgs::options() const {
  OffloadOptions o;
  if (!mem_budget.empty()) o.mem_budget = parse_size(mem_budget, "--mem-budget");
  if (!expert_profile.empty() && mem_budget.empty())
    fail_usage("cli", "--expert-profile {}: only with --mem-budget (it picks the experts kept resident)",
               expert_profile);
  o.expert_profile = expert_profile;
  o.prefetch = !no_prefetch;
  return o;
}

std::optional<DType> parse_kv_type(const std::string& text) {
  if (text == "auto") return std::nullopt;
  if (text == "f32") return DType::kF32;
  if (text == "f16") return DType::kF16;
  if (text == "bf16") return DType::kBF16;
  fail_usage("cli", "--kv-type {}: expected auto, f32, f16 or bf16", text);
}

std::optional<DType> OffloadArgs::kv_dtype() const { return parse_kv_type(kv_type); }

DecoderOptions OffloadArgs::decoder_options() const {
  DecoderOptions o;
  o.offload = options();
  o.kv_type = kv_dtype();
  return o;
}

void add_kv_type_option(CLI::App* command, std::string& kv_type) {
  command
      ->add_option("--kv-type", kv_type,
                   "KV cache rows: auto (f32 for a float32 checkpoint, else f16), f32, f16 or bf16 (16 bits: half "
                   "the bytes decode reads)")
      ->capture_default_str();
}

void add_offload_options(CLI::App* command, OffloadArgs& args) {
  add_kv_type_option(command, args.kv_type);
  command->add_option("--mem-budget", args.mem_budget,
                      "Weights budget (e.g. 12G): routed experts stay in the model file and are read into a cache");
  command->add_option("--expert-profile", args.expert_profile,
                      "With --mem-budget: a routing trace (moe run --trace) whose most used experts stay resident");
  command->add_flag("--no-prefetch", args.no_prefetch,
                    "With --mem-budget: read experts only when asked (no pre-gating of the next layer)");
}

double offload_disk_ceiling(const Decoder& dec) {
  const ExpertOffload* off = dec.offload();
  if (!off || off->files().empty()) return 0;
  return measure_disk_read(off->files().front(), uint64_t{512} << 20).gbps;
}

nlohmann::ordered_json offload_json(const Decoder& dec, int64_t tokens, double disk_gbps) {
  const ExpertOffload* off = dec.offload();
  if (!off) return nullptr;
  const OffloadReport r = off->report();
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  const PrefetchLayerStats all = r.prefetch_total();
  for (size_t i = 0; i < r.stats.layers.size(); ++i) {
    const ExpertCacheLayerStats& l = r.stats.layers[i];
    const PrefetchLayerStats& p = r.prefetch[i];
    if (l.requests == 0) continue;
    layers.push_back({{"layer", i},
                      {"requests", l.requests},
                      {"hit_rate", l.hit_rate()},
                      {"prefetch_hits", l.prefetch_hits},
                      {"misses", l.misses},
                      {"prefetches", l.prefetches},
                      {"bytes_read", l.bytes_read},
                      {"lookahead_precision", p.predicted ? nlohmann::ordered_json(p.precision()) : nullptr},
                      {"lookaheads_withheld", p.withheld}});
  }
  return {{"mem_budget_bytes", r.mem_budget},
          {"resident_bytes", r.resident_bytes},
          {"slot_bytes", r.slot_bytes},
          {"slots", r.slots},
          {"experts_total", r.experts_total},
          {"pinned", r.pinned},
          {"requests", r.stats.requests},
          {"hit_rate", r.stats.hit_rate()},
          {"bytes_read", r.stats.bytes_read},
          {"bytes_read_per_token",
           tokens > 0 ? json_count(double(r.stats.bytes_read) / double(tokens)) : nlohmann::ordered_json(nullptr)},
          {"read_s", r.stats.read_seconds},
          {"read_gb_per_s", r.stats.read_gbps()},
          {"disk_read_ceiling_gb_per_s",
           disk_gbps > 0 ? nlohmann::ordered_json(disk_gbps) : nlohmann::ordered_json(nullptr)},
          {"fraction_of_disk_ceiling",
           disk_gbps > 0 ? nlohmann::ordered_json(r.stats.read_gbps() / disk_gbps) : nlohmann::ordered_json(nullptr)},
          {"wait_s", r.stats.wait_seconds},
          {"lookahead_precision", all.predicted ? nlohmann::ordered_json(all.precision()) : nullptr},
          {"lookaheads_withheld", all.withheld},
          {"lookaheads", all.predictions},
          {"layers", layers}};
}

std::string offload_text(const Decoder& dec, int64_t tokens, double disk_gbps) {
  const ExpertOffload* off = dec.offload();
  if (!off) return {};
  const OffloadReport r = off->report();
  std::string s = fmt::format(
      "offload: budget {:.2f} GB = resident {:.2f} GB + {} slots x {:.2f} MB ({:.1f}% of {} experts; {} pinned)\n",
      double(r.mem_budget) * 1e-9, double(r.resident_bytes) * 1e-9, r.slots, double(r.slot_bytes) * 1e-6,
      100.0 * double(r.slots) / double(std::max<int64_t>(1, r.experts_total)), r.experts_total, r.pinned);
  s += fmt::format(
      "offload: hit rate {:.1f}% of {} expert requests; read {:.3f} GB ({:.1f} MB per token) at {:.2f} GB/s{}; "
      "compute waited {:.2f} s\n",
      100.0 * r.stats.hit_rate(), r.stats.requests, double(r.stats.bytes_read) * 1e-9,
      tokens > 0 ? double(r.stats.bytes_read) / double(tokens) * 1e-6 : 0.0, r.stats.read_gbps(),
      disk_gbps > 0 ? fmt::format(" ({:.0f}% of the disk's {:.2f} GB/s read ceiling)",
                                  100.0 * r.stats.read_gbps() / disk_gbps, disk_gbps)
                    : std::string(),
      r.stats.wait_seconds);
  std::string per;
  for (size_t l = 0; l < r.stats.layers.size(); ++l) {
    if (r.stats.layers[l].requests == 0) continue;
    per += fmt::format("{}{}:{:.0f}%", per.empty() ? "" : " ", l, 100.0 * r.stats.layers[l].hit_rate());
  }
  if (!per.empty()) s += "offload: hit rate per layer " + per + "\n";
  const PrefetchLayerStats all = r.prefetch_total();
  if (all.predicted > 0)
    s += fmt::format(
        "offload: look-ahead named {} experts, {:.1f}% of them used; reads withheld for {} of {} look-aheads "
        "(precision below {:.0f}%)\n",
        all.predicted, 100.0 * all.precision(), all.withheld, all.predictions, 100.0 * ExpertOffload::kMinPrecision);
  return s;
}

OffloadPrediction offload_prediction(const ModelReport& report, uint64_t mem_budget, const std::string& trace,
                                     const std::string& gguf) {
  // The untied embedding table stays in the file mapping and is read a row per token (it is not
  // resident, as a run's measured resident bytes show); a tied one is also the LM head, read whole.
  double routed = 0, embedding = 0, total = double(report.counts.bytes);
  for (const RoleCount& rc : report.counts.breakdown) {
    if (rc.role == Role::kRoutedExpert) routed += double(rc.bytes);
    if (rc.role == Role::kEmbedding) embedding += double(rc.bytes);
  }
  if (!gguf.empty()) {  // the file's own tensor types: experts are the *_exps tensors
    const GgufFile f = GgufFile::open(gguf);
    routed = embedding = total = 0;
    for (const GgufTensor& t : f.tensors()) {
      const double b = double(f.bytes(t).size());
      total += b;
      if (t.name.find("_exps.") != std::string::npos) routed += b;
      if (t.name == "token_embd.weight") embedding += b;
    }
  }
  if (report.spec.tie_word_embeddings) embedding = 0;
  int64_t moe_layers = 0;
  for (const LayerSpec& l : report.spec.layers) moe_layers += l.is_moe;
  const int64_t experts = moe_layers * report.spec.n_expert;
  if (experts == 0) fail_usage("inspect", "--mem-budget: {} has no routed experts", report.name);
  return predict_offload(report.spec, total - routed - embedding, routed / double(experts), mem_budget, trace);
}

nlohmann::ordered_json prediction_json(const OffloadPrediction& p) {
  nlohmann::ordered_json j{{"mem_budget_bytes", p.mem_budget}, {"always_on_bytes", p.always_on_bytes},
                           {"expert_bytes", p.expert_bytes},   {"experts_total", p.experts_total},
                           {"min_budget_bytes", p.min_budget}, {"fits", p.fits}};
  if (!p.fits) return j;
  j["slots"] = p.slots;
  j["fraction_cached"] = p.fraction_cached;
  j["uniform"] = {{"hit_rate", p.uniform_hit_rate}, {"bytes_read_per_token", p.uniform_bytes_per_token}};
  if (p.trace_tokens > 0)
    j["trace"] = {
        {"tokens", p.trace_tokens}, {"hit_rate", p.trace_hit_rate}, {"bytes_read_per_token", p.trace_bytes_per_token}};
  return j;
}

std::string prediction_text(const OffloadPrediction& p) {
  std::string s = fmt::format(
      "Experts from disk under --mem-budget {:.2f} GB (at the stored tensor types): always-on {:.2f} GB (an untied "
      "embedding table is read from the file a row per token, not counted), one expert "
      "{:.2f} MB, "
      "{} routed experts; the least that runs is {:.2f} GB (always-on + one layer's {} experts)\n",
      double(p.mem_budget) * 1e-9, p.always_on_bytes * 1e-9, p.expert_bytes * 1e-6, p.experts_total,
      p.min_budget * 1e-9, p.experts_per_layer);
  if (!p.fits) return s + "  does not fit\n";
  s += fmt::format("  {} slots hold {:.1f}% of the experts\n", p.slots, 100 * p.fraction_cached);
  s += fmt::format("  uniform routing: hit rate {:.1f}%, {:.1f} MB read per decoded token\n", 100 * p.uniform_hit_rate,
                   p.uniform_bytes_per_token * 1e-6);
  if (p.trace_tokens > 0)
    s += fmt::format("  trace ({} tokens, demand reads): hit rate {:.1f}%, {:.1f} MB read per token\n", p.trace_tokens,
                     100 * p.trace_hit_rate, p.trace_bytes_per_token * 1e-6);
  return s;
}

}  // namespace moe::cli
