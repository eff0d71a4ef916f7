// `moe bench model`: a random-weight model in the shape of a catalog model with fewer layers,
// written as a real checkpoint (config.json + model.safetensors named by the TensorRegistry) and
// run through the same Decoder as `moe run`: prefill and decode tokens/s, the decode fraction of
// the bandwidth floor and the prefill fraction of the FMA peak, both ceilings measured in the same run.
#include <fmt/format.h>
#include <fstream>

#include <sys/resource.h>

#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <span>

#include "cli/command.h"
#include "cli/flags.h"
#include "cli/offload_args.h"
#include "cli/output.h"
#include "cli/run_common.h"
#include "io/gguf_config.h"
#include "io/run_folder.h"
#include "io/safetensors.h"
#include "kernels/ceilings.h"
#include "runtime/process_limits.h"
#include "runtime/timer.h"
#include "spec/accounting.h"
#include "spec/catalog.h"
#include "spec/tensor_registry.h"
#include "util/error.h"

namespace moe::cli {
namespace {

namespace fs = std::filesystem;

struct BenchModelArgs {
  std::string model = "qwen3-30b-a3b";
  int64_t layers = 2;
  std::string dtype = "bf16";
  int64_t prompt = 512;
  int64_t decode = 16;
  int repetitions = 3;
  std::string dir;               // where the checkpoint goes (default: a temporary folder, removed after)
  OffloadArgs offload;           // --mem-budget: routed experts read from disk
  double temperature = 0;        // 0: greedy decoding; > 0: sampled (seed 1), routing as varied as the tokens
  bool no_warmup = false;        // every run timed: long prompts, where a warm-up run would double the time
  bool uniform_routing = false;  // each token's experts drawn uniformly at random (an expert cache's worst case)
  double router_skew = 0;        // > 0: Zipf-like expert popularity (see skew_router)
};

// The catalog config with fewer layers, dense weights in `dtype`, no MTP and no quantization.
// keep_quant (--dtype native): the quantization_config and expert_dtype stay, so the registry lists the stored formats.
nlohmann::json shrink_config(const CatalogEntry& entry, int64_t layers, const std::string& torch_dtype,
                             bool keep_quant = false) {
  nlohmann::json config = entry.config;
  nlohmann::json& text = config.contains("text_config") ? config["text_config"] : config;
  const char* layer_key = text.contains("n_layers") ? "n_layers" : "num_hidden_layers";
  if (!text.contains(layer_key)) fail("bench", "{}: config has no {}", entry.file, layer_key);
  if (layers < 1 || layers > text[layer_key].get<int64_t>()) {
    fail_usage("bench", "--layers {} must be between 1 and the model's {}", layers, text[layer_key].get<int64_t>());
  }
  const int64_t full = text[layer_key].get<int64_t>();
  text[layer_key] = layers;
  if (text.contains("compress_ratios")) {
    // DeepSeek-V4: the ratios of the last `layers` main layers (for 2 of Flash: one HCA, one CSA layer), hash
    // routing in all but the last layer; the experts dense (FP4 is not decoded).
    const auto r = text["compress_ratios"].get<std::vector<int64_t>>();
    if (static_cast<int64_t>(r.size()) < full)
      fail("bench", "{}: compress_ratios is shorter than the layers", entry.file);
    text["compress_ratios"] = std::vector<int64_t>(r.begin() + (full - layers), r.begin() + full);
    text["num_hash_layers"] = std::min(text.value("num_hash_layers", int64_t{0}), layers - 1);
    if (!keep_quant) text.erase("expert_dtype");
  }
  if (text.contains("layer_types")) {
    auto types = text["layer_types"];
    text["layer_types"] = nlohmann::json(std::vector<nlohmann::json>(types.begin(), types.begin() + layers));
  }
  if (text.contains("first_k_dense_replace") && text["first_k_dense_replace"].get<int64_t>() >= layers) {
    text["first_k_dense_replace"] = layers - 1;  // keep at least one MoE layer
  }
  text["num_nextn_predict_layers"] = 0;
  if (!keep_quant) config.erase("quantization_config");
  config["torch_dtype"] = torch_dtype;
  if (config.contains("text_config")) config["text_config"]["torch_dtype"] = torch_dtype;
  return config;
}

// Random weights route uniformly; real routers have favourites. With skew S > 0 every embedding
// row gets a constant C = 1 in dimension 0 (which the residual stream keeps, so the normed input
// of every router has a large positive x0 = C / rms), and router row e of each layer gets
// -S sigma ln(rank_e + 1) / x0 in column 0, with rank a per-layer random permutation and sigma the
// spread of the random part of a router logit (0.02 x 0.02 sqrt(D - 1) / rms; rms cancels). Logits
// then carry offsets -S sigma ln(rank + 1) against noise sigma: expert popularity falls off with
// rank like a power law, hotter for larger S (`moe bench serve` reports the load it measures).
void skew_tensor(const TensorEntry& t, double skew, int64_t d_model, uint64_t layer_seed, std::vector<float>& w) {
  const int64_t rows = t.shape[0], cols = t.shape.size() > 1 ? t.shape[1] : 1;
  if (t.role == Role::kEmbedding) {
    for (int64_t r = 0; r < rows; ++r) w[static_cast<size_t>(r * cols)] = 1.0f;
    return;
  }
  std::vector<int64_t> rank(static_cast<size_t>(rows));
  for (int64_t e = 0; e < rows; ++e) rank[e] = e;
  std::mt19937_64 rng(layer_seed);
  std::shuffle(rank.begin(), rank.end(), rng);
  const double sigma_x0 = 0.02 * 0.02 * std::sqrt(static_cast<double>(d_model - 1));  // sigma / x0 with C = 1
  for (int64_t e = 0; e < rows; ++e)
    w[static_cast<size_t>(e * cols)] = static_cast<float>(-skew * sigma_x0 * std::log(double(rank[e]) + 1.0));
}

// The routed experts of the MoE layer a tensor belongs to: the rows of that layer's router weight.
int64_t reg_experts(const TensorRegistry& reg, const TensorEntry& t) {
  for (const TensorEntry& r : reg.tensors)
    if (r.layer == t.layer && r.role == Role::kRouter && r.shape.size() == 2) return r.shape[0];
  fail("bench", "no router beside {}", t.name);
}

// Shared random bytes of the stored formats (--dtype native), each tensor a span into its dtype's pool (sized
// for the largest tensor first: spans must not move). FP8 E4M3 codes with bit 6 clear (|v| <= 1.875, never
// NaN); FP4 / MXFP4 codes any nibble; E8M0 / U8 scales 2^-8; F32 tensors from the N(0, 0.02) pool; F32 / BF16
// scales 2^-6.
struct StoredFormatPools {
  std::map<int, std::vector<uint8_t>> pools;  // by pool_key
  static int pool_key(const TensorEntry& t) { return static_cast<int>(t.dtype) * 2 + (t.role == Role::kQuantScale); }

  StoredFormatPools(const TensorRegistry& reg, DType dense, const std::vector<float>& pool_f32) {
    std::map<int, size_t> need;
    std::map<int, const TensorEntry*> example;
    for (const TensorEntry& t : reg.tensors) {
      if (t.dtype == dense || t.role == Role::kIndexTable) continue;
      need[pool_key(t)] = std::max(need[pool_key(t)], static_cast<size_t>(t.nbytes()));
      example[pool_key(t)] = &t;
    }
    for (const auto& [key, n] : need) fill(*example[key], n, pool_f32);
  }

  void fill(const TensorEntry& t, size_t n, const std::vector<float>& pool_f32) {
    std::vector<uint8_t>& p = pools[pool_key(t)];
    p.resize(n);
    std::mt19937 rng(99 + pool_key(t));
    const bool scale = t.role == Role::kQuantScale;
    if (scale && (t.dtype == DType::kF8E8M0 || t.dtype == DType::kU8)) {
      std::fill(p.begin(), p.end(), uint8_t{127 - 8});
    } else if (scale) {
      const std::vector<float> v(n / dtype_size(t.dtype), 1.0f / 64);
      convert_from_f32(t.dtype, v.data(), p.data(), v.size());
    } else if (t.dtype == DType::kF8E4M3) {
      for (uint8_t& b : p) b = static_cast<uint8_t>(rng() & 0xbf);
    } else if (t.dtype == DType::kI8 || t.dtype == DType::kU8) {
      for (uint8_t& b : p) b = static_cast<uint8_t>(rng());
    } else if (t.dtype == DType::kF32 && n / 4 <= pool_f32.size()) {
      std::memcpy(p.data(), pool_f32.data(), n);
    } else {
      fail("bench", "--dtype native: no random writer for {} stored as {}", t.name, dtype_name(t.dtype));
    }
  }

  std::span<const uint8_t> bytes(const TensorEntry& t) const {
    return {pools.at(pool_key(t)).data(), static_cast<size_t>(t.nbytes())};
  }
};

// Writes every registry tensor: norms = 1, everything else from one random pool (N(0, 0.02)).
// Tensors share the pool's contents but each has its own bytes in the file, so decode streams
// distinct memory for each expert, as with real weights. router_skew > 0: see skew_tensor.
void write_random_checkpoint(const std::string& dir, const nlohmann::json& config, const TensorRegistry& reg,
                             DType dtype, double router_skew = 0, int64_t d_model = 0) {
  int64_t largest = 0;
  for (const TensorEntry& t : reg.tensors) largest = std::max(largest, t.numel());
  std::vector<float> pool_f32(static_cast<size_t>(largest)), ones(static_cast<size_t>(largest), 1.0f);
  std::mt19937 rng(1234);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  for (float& v : pool_f32) v = dist(rng);
  std::vector<uint8_t> pool(pool_f32.size() * dtype_size(dtype)), one(ones.size() * dtype_size(dtype));
  convert_from_f32(dtype, pool_f32.data(), pool.data(), pool_f32.size());
  convert_from_f32(dtype, ones.data(), one.data(), ones.size());
  std::vector<TensorToWrite> tensors;
  std::deque<std::vector<uint8_t>> skewed;  // own copies of the tensors skew_tensor changes
  const StoredFormatPools formats(reg, dtype, pool_f32);
  for (const TensorEntry& t : reg.tensors) {
    if (t.dtype != dtype && t.role != Role::kIndexTable) {  // --dtype native: the stored formats
      tensors.push_back({t.name, t.dtype, t.shape, formats.bytes(t)});
      continue;
    }
    if (t.role == Role::kIndexTable) {  // DeepSeek-V4 tid2eid [V, K]: distinct expert ids per token
      const int64_t E = t.shape[1] > 0 ? reg_experts(reg, t) : 1;
      auto& ids = skewed.emplace_back(static_cast<size_t>(t.numel()) * 8);
      for (int64_t i = 0; i < t.numel(); ++i) {
        const int64_t id = ((i / t.shape[1]) * 7 + i % t.shape[1]) % E;
        std::memcpy(ids.data() + i * 8, &id, 8);
      }
      tensors.push_back({t.name, DType::kI64, t.shape, std::span<const uint8_t>(ids.data(), ids.size())});
      continue;
    }
    const size_t n = static_cast<size_t>(t.numel()) * dtype_size(dtype);
    const auto& src = t.role == Role::kNorm ? one : pool;
    const bool skew = router_skew > 0 && t.shape.size() == 2 &&
                      ((t.role == Role::kEmbedding && t.name.find("embed") != std::string::npos) ||
                       (t.role == Role::kRouter && t.shape[1] == d_model));
    if (!skew) {
      tensors.push_back({t.name, dtype, t.shape, std::span<const uint8_t>(src.data(), n)});
      continue;
    }
    std::vector<float> w(pool_f32.begin(), pool_f32.begin() + t.numel());
    skew_tensor(t, router_skew, d_model, 77 + static_cast<uint64_t>(t.layer + 1), w);
    auto& bytes = skewed.emplace_back(n);
    convert_from_f32(dtype, w.data(), bytes.data(), w.size());
    tensors.push_back({t.name, dtype, t.shape, std::span<const uint8_t>(bytes.data(), n)});
  }
  fs::create_directories(dir);
  write_file_atomic(dir + "/config.json", config.dump(2));
  write_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}, {"writer", "moe bench model"}});
}

struct Measured {
  double prefill_tps = 0, decode_tps = 0;
  double load_seconds = 0;  // Decoder construction: read, validate, pack
  std::string pack_cache;   // "mapped": the panels came from the pack cache; "packed": packed at load; "off"
  std::optional<double> pack_cache_huge;  // mapped: the share of the file in 2 MiB pages
  // The engine's peak resident memory, loading and running (the read-ceiling passes' buffer is not
  // counted: each pass allocates it, measures and frees it, then the peak restarts), or where the peak
  // cannot be restarted (peak_rss_scope "process") the process's.
  int64_t peak_rss_bytes = 0;
  std::string peak_rss_scope = "engine";
  RunReport report;
  int64_t kv_tokens = 0;        // what the cache held at the end of the last run (its report's kv_cache_bytes)
  DType kv_type = DType::kF32;  // its rows
  int64_t prefill_passes = 0;   // of the last run: the LM head ran once per pass (its last position)
  // Read ceiling paired with each timed run (a ReadProbe pass before and after it, averaged), median,
  // and the median over runs of decode tokens/s / that run's bandwidth floor.
  double read_gbps_paired = 0, decode_floor_fraction = 0;
  nlohmann::ordered_json offload;  // null without --mem-budget
  std::string offload_text;
};

// One read-ceiling pass with its own buffer, freed before the engine's peak restarts.
double read_pass(bool own_peak) {
  double gbps = 0;
  {
    ReadProbe probe;
    gbps = probe.gbps();
  }
  if (own_peak) reset_peak_resident();
  return gbps;
}

// cache_panels false: a temporary random checkpoint, whose panels are not worth a cache file.
Measured measure(const std::string& dir, const BenchModelArgs& a, double read_gbps, bool cache_panels,
                 const GlobalOptions& global) {
  const bool own_peak = reset_peak_resident();  // the ceilings measured before are not the engine's
  Timer load;
  Progress progress("bench model", true, global);
  DecoderOptions options = a.offload.decoder_options();  // --mem-budget, --kv-type
  if (progress.active())
    options.load_progress = [&](int64_t done, int64_t total) {
      progress.update(double(done), double(total), "layers loaded");
    };
  if (!cache_panels) options.pack_cache = PackCacheOptions{.enabled = false, .dir = {}};
  if (a.uniform_routing) options.uniform_routing_seed = 12345;
  Decoder dec(dir, options);
  const double load_seconds = load.seconds();
  const std::string pack_cache = !dec.pack_cache().enabled() ? "off" : dec.pack_cache().hit() ? "mapped" : "packed";
  std::optional<double> pack_cache_huge;
  if (dec.pack_cache().hit() && dec.pack_cache().bytes() > 0)
    pack_cache_huge = double(dec.pack_cache().huge_page_bytes()) / double(dec.pack_cache().bytes());
  std::mt19937 rng(7);
  std::vector<int32_t> prompt(static_cast<size_t>(a.prompt));
  for (int32_t& id : prompt) id = static_cast<int32_t>(rng() % static_cast<uint32_t>(dec.spec().vocab));
  GenerateOptions opts;
  opts.max_new_tokens = a.decode + 1;  // the first token comes from the prefill's logits
  opts.sampler.temperature = static_cast<float>(a.temperature);
  opts.sampler.seed = 1;
  opts.record_routing = true;
  std::vector<double> prefill, decode, ceiling;
  GenerateResult last;
  uint64_t peak = peak_resident_bytes();     // the load's
  std::vector<int32_t> warm(prompt.size());  // with --mem-budget the warm-up routes elsewhere: no free hits
  for (int32_t& id : warm) id = static_cast<int32_t>(rng() % static_cast<uint32_t>(dec.spec().vocab));
  for (int r = a.no_warmup ? 1 : 0; r < a.repetitions + 1; ++r) {  // run 0 warms up the page cache
    bool reset = r == 1 && dec.offload() != nullptr;               // the timed runs' decode reads only
    opts.keep_going = [&] {  // called before each decode step: the first time, the prefill is done
      if (reset) dec.offload()->reset_stats();
      reset = false;
      return true;
    };
    const double before = read_pass(own_peak);
    last = generate(dec, r == 0 && dec.offload() ? warm : prompt, opts);
    peak = std::max(peak, peak_resident_bytes());
    const double after = read_pass(own_peak);
    progress.update(r + 1, a.repetitions + 1, "runs");
    if (r == 0) continue;
    prefill.push_back(a.prompt / last.prefill_seconds);
    decode.push_back(static_cast<double>(last.decode.size()) / last.decode_seconds);
    ceiling.push_back(0.5 * (before + after));
  }
  progress.done();
  Measured m;
  m.load_seconds = load_seconds;
  m.pack_cache = pack_cache;
  m.pack_cache_huge = pack_cache_huge;
  if (own_peak) {
    m.peak_rss_bytes = static_cast<int64_t>(peak);
  } else {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    m.peak_rss_bytes = static_cast<int64_t>(u.ru_maxrss) * 1024;  // ru_maxrss is in KiB on Linux
    m.peak_rss_scope = "process";
  }
  m.prefill_tps = median(prefill);
  m.decode_tps = median(decode);
  m.report = report_of_generation(last, dec.spec(), dir, read_gbps);
  m.kv_tokens = last.prompt_tokens + static_cast<int64_t>(last.decode.size());
  m.kv_type = last.kv_cache_type;
  m.prefill_passes = last.prefill_passes;
  const int64_t tokens = a.repetitions * static_cast<int64_t>(last.decode.size());  // decode steps read
  const double disk = offload_disk_ceiling(dec);  // after the runs: their reads are done
  m.offload = offload_json(dec, tokens, disk);
  m.offload_text = offload_text(dec, tokens, disk);
  // Greedy decoding of the same prompt routes identically in every run: the same bytes per token.
  const double bytes = m.report.weight_bytes_per_decode_token + m.report.kv_bytes_read_per_decode_token;
  std::vector<double> fraction;
  for (size_t r = 0; r < decode.size(); ++r) fraction.push_back(decode[r] * bytes / (ceiling[r] * 1e9));
  m.read_gbps_paired = median(ceiling);
  m.decode_floor_fraction = median(fraction);
  return m;
}

// What was measured, and against what: one report shape for a random checkpoint and for a checkpoint or .gguf.
struct BenchSubject {
  std::string model;    // catalog name, config file stem, or the measured checkpoint path
  std::string weights;  // the measured checkpoint folder / .gguf; empty for a random checkpoint
  std::string dtype;    // the random checkpoint's dtype, or the file's (torch_dtype / "gguf")
  int64_t layers = 0;
};

// The cache the last run held against the accounting's KV figure at the same length and element size.
struct KvMeasured {
  double accounting = 0;
  int64_t elem_bytes = 0;
  std::string note;  // what the measured bytes hold beyond the accounting's rows
};

KvMeasured kv_against_accounting(const ModelSpec& spec, const TensorRegistry& reg, const Measured& m) {
  KvMeasured kv;
  kv.elem_bytes = static_cast<int64_t>(dtype_size(m.kv_type));
  Workload w;
  w.prompt = w.context = m.kv_tokens;
  w.kv_bytes_per_elem = static_cast<double>(kv.elem_bytes);
  kv.accounting = compute_cost(spec, reg, w).kv.bytes_at_context;
  const double extra = static_cast<double>(m.report.kv_cache_bytes) - kv.accounting;
  if (extra > 0) kv.note = fmt::format(" (+ {} of state beside those rows)", format_bytes(extra));
  return kv;
}

// The FLOPs the prefill executed: the accounting's prompt FLOPs with the LM head only on the rows it computed
// (the last position of each pass), not on every position.
double prefill_flops_executed(const ModelSpec& spec, const TensorRegistry& reg, int64_t prompt, const Measured& m) {
  Workload w;
  w.prompt = w.context = prompt;
  const Cost cost = compute_cost(spec, reg, w);
  const double head_rows = static_cast<double>(std::min<int64_t>(m.prefill_passes, prompt));
  return cost.prefill_flops - (static_cast<double>(prompt) - head_rows) * cost.lm_head_flops_per_token;
}

void report_bench_model(const BenchModelArgs& a, const BenchSubject& s, const ModelSpec& spec,
                        const TensorRegistry& reg, const CeilingRow& ceiling, const MatmulPeak& peak, const Measured& m,
                        const GlobalOptions& global) {
  const double prefill_flops = prefill_flops_executed(spec, reg, a.prompt, m);
  const double prefill_gflops = prefill_flops / static_cast<double>(a.prompt) * m.prefill_tps * 1e-9;
  const double bytes = m.report.weight_bytes_per_decode_token + m.report.kv_bytes_read_per_decode_token;
  const double floor_tps = m.read_gbps_paired * 1e9 / bytes;
  // The median over runs of each run's decode speed / its own floor (ceiling 1): null when the last-level
  // cache holds a decode step's bytes.
  const CeilingFraction floor_fraction = step_floor_fraction(m.decode_floor_fraction, bytes, m.read_gbps_paired);
  nlohmann::ordered_json j{
      {"model", s.model},
      {"weights", s.weights.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(s.weights)},
      {"model_type", spec.model_type},
      {"layers", s.layers},
      {"dtype", s.dtype},
      {"prompt_tokens", a.prompt},
      {"decode_tokens", a.decode},
      {"repetitions", a.repetitions},
      {"total_params", m.report.total_params},
      {"activated_params", m.report.activated_params_analytic},
      {"load_s", m.load_seconds},
      {"pack_cache", m.pack_cache},
      {"pack_cache_huge_page_fraction", json_measured(m.pack_cache_huge)},
      {"peak_rss_bytes", m.peak_rss_bytes},
      {"peak_rss_scope", m.peak_rss_scope},
      {"prefill_tokens_per_s", m.prefill_tps},
      {"prefill_flops_executed", json_count(prefill_flops)},
      {"prefill_gflop_per_s", prefill_gflops},
      {"fma_ceiling_gflop_per_s", ceiling.fma_f32_gflops},
      {"prefill_fraction_of_fma_peak", prefill_gflops / ceiling.fma_f32_gflops},
      {"matmul_peak_gop_per_s", peak.gflops},
      {"matmul_peak_kind", peak.kind},
      {"matmul_peak_stored_dtype", peak.stored},
      {"prefill_fraction_of_matmul_peak", prefill_gflops / peak.gflops},
      {"decode_tokens_per_s", m.decode_tps},
      {"bytes_per_decode_token", json_count(bytes)},
      {"read_ceiling_gb_per_s", m.read_gbps_paired},
      {"read_ceiling_at_start_gb_per_s", ceiling.read_gbps},
      {"decode_floor_tokens_per_s", floor_tps}};
  put_ceiling_fraction(j, "decode_fraction_of_bandwidth_floor", floor_fraction);
  const KvMeasured kv = kv_against_accounting(spec, reg, m);
  j["kv_cache_tokens"] = m.kv_tokens;
  j["kv_cache_type"] = m.report.kv_cache_type;
  j["kv_cache_bytes"] = m.report.kv_cache_bytes;
  j["kv_cache_bytes_accounting"] = json_count(kv.accounting);
  j["offload"] = m.offload;
  if (global.json) {
    print_json_report(j);
    return;
  }
  fmt::print(
      "bench model {} ({} layers, {} weights, {} params, {} activated per token): loaded in {:.2f} s (panels "
      "{}), peak RSS {:.2f} GB{}\n",
      s.model, s.layers, s.dtype, format_count(static_cast<double>(m.report.total_params)),
      format_count(static_cast<double>(m.report.activated_params_analytic)), m.load_seconds,
      m.pack_cache_huge ? fmt::format("{}, {:.0f}% in 2 MiB pages", m.pack_cache, 100 * *m.pack_cache_huge)
                        : m.pack_cache,
      static_cast<double>(m.peak_rss_bytes) * 1e-9,
      m.peak_rss_scope == "engine" ? "" : " (the process's, read-ceiling buffers included)");
  fmt::print(
      "  prefill {:>5} tokens: {:>9.1f} tokens/s  {:>7.1f} GFLOP/s = {:.1f}% of the {} peak {:.0f} ({} weights)\n",
      a.prompt, m.prefill_tps, prefill_gflops, 100 * prefill_gflops / peak.gflops, peak.kind, peak.gflops, peak.stored);
  fmt::print("  decode  {:>5} tokens: {:>9.1f} tokens/s  {} per token; floor {:.1f} tokens/s at {:.1f} GB/s", a.decode,
             m.decode_tps, format_bytes(bytes), floor_tps, m.read_gbps_paired);
  if (floor_fraction.fraction) fmt::print(" = {:.1f}%", 100 * *floor_fraction.fraction);
  fmt::print("{}\n", ceiling_fraction_text(floor_fraction));
  fmt::print("  KV cache at {} tokens: {} in {} rows; the accounting counts {} for {}-byte elements{}\n", m.kv_tokens,
             format_bytes(static_cast<double>(m.report.kv_cache_bytes)), m.report.kv_cache_type,
             format_bytes(kv.accounting), kv.elem_bytes, kv.note);
  fmt::print("{}", m.offload_text);
  fmt::print(
      "  (medians of {} runs{}; the peak measured at the start of this run (AMX-INT8 tiles, where prefill uses them, "
      "are faster than the int8 dot peak and not measured); the read ceiling is paired "
      "with each run: a read pass before and after it, averaged, and the % is the median over runs of each run's "
      "decode speed / its own floor; prefill GFLOP/s counts the LM head once per prefill pass, where it ran)\n",
      a.repetitions, a.no_warmup ? ", no warm-up" : " after a warm-up");
}

// An existing checkpoint or GGUF file: the same measurements on its weights.
void run_bench_weights(const BenchModelArgs& a, const GlobalOptions& global) {
  const std::string weights = resolve_model_path(a.model);  // a training run folder: its latest checkpoint
  const ModelSpec spec = load_model_spec_any(weights);
  RegistryOptions ro;
  ro.include_mtp = false;
  const TensorRegistry reg = build_registry(spec, ro);
  const CeilingRow ceiling = measure_quick_ceilings(3);
  const Measured m = measure(weights, a, ceiling.read_gbps, true, global);
  const BenchSubject s{weights, weights, is_gguf_path(weights) ? "gguf" : spec.torch_dtype, spec.n_layer};
  report_bench_model(a, s, spec, reg, ceiling, matmul_peak(weights, spec, ceiling), m, global);
}

void run_bench_model(const BenchModelArgs& a, const GlobalOptions& global) {
  const CatalogEntry* entry = find_catalog_entry(a.model);
  // A checkpoint folder or a .gguf file: measured as it is (its own weights and layers).
  if (entry == nullptr && (fs::is_directory(a.model) || (is_gguf_path(a.model) && fs::exists(a.model))))
    return run_bench_weights(a, global);
  CatalogEntry from_file;  // --model CONFIG.json: that config's shape
  if (entry == nullptr && a.model.size() > 5 && a.model.ends_with(".json") && fs::is_regular_file(a.model)) {
    (void)load_model_spec(a.model);  // validated first: errors name the file and field
    std::ifstream in(a.model);
    from_file.name = fs::path(a.model).stem().string();
    from_file.file = a.model;
    from_file.config = nlohmann::json::parse(in);
    entry = &from_file;
  }
  if (entry == nullptr) {
    fail_usage("bench", "--model '{}' is neither in the catalog (see `moe inspect --list`) nor a config.json file",
               a.model);
  }
  if (a.dtype != "bf16" && a.dtype != "f32" && a.dtype != "native")
    fail_usage("bench", "--dtype must be bf16, f32 or native, got '{}'", a.dtype);
  const bool native = a.dtype == "native";
  const DType dtype = a.dtype == "f32" ? DType::kF32 : DType::kBF16;
  const nlohmann::json config = shrink_config(*entry, a.layers, a.dtype == "f32" ? "float32" : "bfloat16", native);
  const ModelSpec spec = parse_model_spec(config, entry->name);
  RegistryOptions ro;
  ro.format = native ? WeightFormat::kCheckpoint : WeightFormat::kDense;
  ro.dense_dtype = dtype;
  ro.include_mtp = false;
  const TensorRegistry reg = build_registry(spec, ro);
  const std::string dir =
      a.dir.empty() ? (fs::temp_directory_path() / fmt::format("moe-bench-model-{}", ::getpid())).string() : a.dir;
  long double bytes = 0;
  for (const TensorEntry& t : reg.tensors)
    bytes += native ? static_cast<long double>(t.nbytes()) : static_cast<long double>(t.numel()) * dtype_size(dtype);
  const std::string what = fmt::format("--model {} --layers {}: the random checkpoint", entry->name, a.layers);
  check_fits_on_disk(bytes, dir, "bench", what);
  check_fits_in_memory(bytes, "bench", what + " (read on every decode step)");
  const CeilingRow ceiling = measure_quick_ceilings(3);
  Measured m;
  MatmulPeak peak;
  try {
    write_random_checkpoint(dir, config, reg, dtype, a.router_skew, spec.d_model);
    m = measure(dir, a, ceiling.read_gbps, !a.dir.empty(), global);
    peak = matmul_peak(dir, spec, ceiling);
  } catch (...) {
    if (a.dir.empty()) fs::remove_all(dir);
    throw;
  }
  if (a.dir.empty()) fs::remove_all(dir);
  report_bench_model(a, BenchSubject{entry->name, "", a.dtype, a.layers}, spec, reg, ceiling, peak, m, global);
}

}  // namespace

void register_bench_model(CLI::App& bench, const GlobalOptions& global) {
  auto a = std::make_shared<BenchModelArgs>();
  auto* cmd = bench.add_subcommand(
      "model", "Prefill and decode speed of a model: random weights in a catalog shape, or a checkpoint");
  cmd->add_option("-m,--model", a->model,
                  "A catalog model or a config.json (random weights of that shape, --layers of them), or a "
                  "checkpoint folder or .gguf file (measured as it is)")
      ->capture_default_str();
  add_number(cmd, "--layers", a->layers, "Decoder layers to keep", int64_t{1}, int64_t{1} << 16);
  cmd->add_option(
         "--dtype", a->dtype,
         "Weight dtype: bf16, f32, or native (the catalog model's stored formats, e.g. FP8 with block scales and FP4 "
         "experts; the rest bf16)")
      ->capture_default_str();
  add_number(cmd, "-p,--prompt", a->prompt, "Prefill tokens", int64_t{1}, int64_t{1} << 24);
  add_number(cmd, "-n,--decode", a->decode, "Decode steps", int64_t{1}, int64_t{1} << 24);
  add_number(cmd, "-r,--repetitions", a->repetitions, "Timed runs (median)", 1, 100);
  cmd->add_option("--dir", a->dir, "Keep the random checkpoint in this folder");
  add_offload_options(cmd, a->offload);
  add_number(cmd, "--temperature", a->temperature, "Decode by sampling at this temperature (0: greedy)", 0.0, 100.0);
  cmd->add_flag("--no-warmup", a->no_warmup,
                "Time every run, the first too (long prompts: a warm-up run would double the time)");
  cmd->add_flag("--uniform-routing", a->uniform_routing,
                "Every MoE layer picks each token's experts uniformly at random (the worst case for --mem-budget)");
  add_number(
      cmd, "--router-skew", a->router_skew,
      "Zipf-like expert popularity in the random checkpoint (0: uniform routing; 1: about what real models show)", 0.0,
      100.0);
  cmd->callback([a, &global] { run_bench_model(*a, global); });
}

}  // namespace moe::cli
