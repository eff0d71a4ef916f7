// Shared helpers of the model-running commands.
#include "cli/run_common.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/flags.h"
#include "cli/output.h"
#include "cli/sampling_args.h"
#include "io/gguf_config.h"
#include "io/paths.h"
#include "io/run_folder.h"
#include "io/safetensors.h"
#include "model/gguf_weights.h"
#include "model/pack_cache.h"
#include "runtime/cpu_features.h"
#include "runtime/process_limits.h"
#include "runtime/thread_pool.h"
#include "spec/model_spec.h"
#include "spec/tensor_registry.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace moe::cli {

namespace fs = std::filesystem;

void add_ep_options(CLI::App* command, parallel::EpArgs& args) {
  add_number(command, "--ep", args.ep, "Expert-parallel ranks R: run as 'mpirun -np R moe ... --ep R'", 1, kMaxEpRanks);
  command->add_option("--ep-placement", args.placement, "Experts to ranks: contiguous, round-robin or file:PATH")
      ->capture_default_str();
}

RankedModel load_ranked_model(const std::string& model_dir, const parallel::EpArgs& args,
                              const std::function<void(const Decoder&)>& then, const OffloadArgs& memory,
                              const GlobalOptions* global) {
  RankedModel m;
  m.ep = parallel::init_from_args(args);
  const DecoderOptions base = memory.decoder_options();  // --mem-budget and --kv-type, parsed once
  if (!m.multi_rank()) {
    DecoderOptions options = base;
    std::optional<Progress> progress;
    if (global) progress.emplace("loading", true, *global);
    if (progress && progress->active())
      options.load_progress = [&](int64_t done, int64_t total) {
        progress->update(double(done), double(total), "layers");
      };
    m.decoder = std::make_unique<Decoder>(model_dir, options);
    if (progress) progress->done();
    if (then) then(*m.decoder);
    return m;
  }
  if (base.offload.mem_budget > 0)
    fail_usage("run", "--mem-budget runs in one process; it cannot be combined with --ep");
  parallel::run_collectively(*m.ep.comm, "loading the model", [&] {
    const ModelSpec spec = load_model_spec_any(model_dir);
    m.hook =
        std::make_unique<parallel::EpDecoderHook>(*m.ep.comm, m.ep.placement_spec, static_cast<int>(spec.n_expert));
    DecoderOptions options = m.hook->options();
    options.kv_type = base.kv_type;
    m.decoder = std::make_unique<Decoder>(model_dir, options);
  });
  if (then) parallel::run_collectively(*m.ep.comm, "reading the inputs", [&] { then(*m.decoder); });
  return m;
}

std::string resolve_model_dir(const std::string& model) {
  if (!model.empty()) {
    // A missing folder is reported by the (collective, under --ep) load; a file other than a
    // .gguf is named here.
    std::error_code ec;
    if (fs::exists(model, ec) && !fs::is_directory(model, ec) && !model.ends_with(".gguf")) {
      fail_usage("run", "--model {}: is a file; expected a checkpoint folder or a .gguf file", model);
    }
    return resolve_model_path(model);  // a training run folder: the checkpoint its `latest` names
  }
  const std::string def = std::string(MOE_DATA_DIR) + "/default-model";
  if (!fs::exists(fs::path(def) / "config.json")) {
    fail("run", "no --model given and the embedded default model is missing at {}", def);
  }
  return def;
}

std::vector<int32_t> read_ids_file(const std::string& path) {
  return parse_ids(read_input_file(path, "--ids-file", "cli"), path);
}

std::unique_ptr<Tokenizer> find_tokenizer(const std::string& model_dir, const ModelSpec& spec) {
  if (is_gguf_path(model_dir)) {  // the file's own tokenizer, unless it carries none ("none": ids only)
    const auto model = GgufFile::open(model_dir).opt_str("tokenizer.ggml.model");
    if (model && *model != "none") return load_tokenizer(model_dir);
    return nullptr;
  }
  if (fs::exists(fs::path(model_dir) / "tokenizer.json")) return load_tokenizer(model_dir);
  if (spec.vocab == 256) return nullptr;  // byte-level: id = byte
  return nullptr;
}

std::vector<int32_t> encode_text(const Tokenizer* tok, const std::string& text) {
  if (tok != nullptr) return tok->encode(text);
  std::vector<int32_t> ids;
  for (unsigned char c : text) ids.push_back(c);
  return ids;
}

std::vector<int32_t> prompt_text_ids(const std::string& model_dir, const ModelSpec& spec, const Tokenizer* tok,
                                     const std::string& text) {
  if (tok == nullptr && spec.vocab != 256) {
    fail("run", "{}: no tokenizer.json in the model folder; use --prompt-ids", model_dir);
  }
  return tok != nullptr ? tok->encode_prompt(text) : encode_text(tok, text);
}

std::string decode_ids(const Tokenizer* tok, const std::vector<int32_t>& ids, int64_t vocab) {
  if (tok != nullptr) return tok->decode(ids);
  std::string s;
  for (int32_t id : ids) s += vocab == 256 ? std::string(1, static_cast<char>(id)) : fmt::format("<{}>", id);
  return s;
}

namespace {

// A model file's tensors as the decoder holds them: the stored dtype and the bytes each occupies as
// loaded (the file's bytes for f32, bf16 and block types, read in place or repacked to the same size;
// block-scaled FP8 matrices stay FP8, 132 bytes per 128 weights (model/weights.h); f32 for what is
// converted at load).
class LoadedTensors {
 public:
  LoadedTensors(const std::string& model_dir, const ModelSpec& spec) : spec_(spec) {
    if (is_gguf_path(model_dir))
      gguf_.emplace(model_dir, spec);
    else
      ckpt_.emplace(Checkpoint::open(model_dir, /*header_only=*/true));
  }
  struct Loaded {
    DType stored;
    double bytes;
  };
  std::optional<Loaded> find(const TensorEntry& t) const {
    if (gguf_) {
      const SourceTensor* s = gguf_->find(t.name);
      if (!s) return std::nullopt;
      const bool in_place = s->dtype == DType::kF32 || s->dtype == DType::kBF16 || dtype_is_block(s->dtype);
      return Loaded{s->dtype, in_place ? static_cast<double>(s->nbytes) : 4.0 * static_cast<double>(t.numel())};
    }
    if (!ckpt_->has(t.name)) return std::nullopt;
    const TensorInfo& info = ckpt_->info(t.name);
    const bool zero_copy = info.dtype == DType::kF32 || info.dtype == DType::kBF16;
    const bool fp8_blocks = info.dtype == DType::kF8E4M3 && info.shape.size() == 2 && info.shape[1] % 128 == 0 &&
                            spec_.quant.block_cols % 128 == 0 && spec_.quant.method == QuantMethod::kFp8;
    if (fp8_blocks) return Loaded{info.dtype, static_cast<double>(info.numel()) * 132.0 / 128.0};
    // gpt-oss as released: an MXFP4 matrix's codes (*_blocks, U8) stay MXFP4; its *_scales are their own entry.
    if (info.dtype == DType::kU8 && spec_.quant.method == QuantMethod::kMxfp4 && t.name.ends_with("_blocks"))
      return Loaded{DType::kMXFP4, static_cast<double>(info.nbytes())};
    return Loaded{info.dtype, zero_copy ? static_cast<double>(info.nbytes()) : 4.0 * static_cast<double>(info.numel())};
  }

 private:
  const ModelSpec& spec_;
  std::optional<Checkpoint> ckpt_;
  std::optional<GgufTensorSource> gguf_;
};

}  // namespace

// The registry of a GGUF file as it stores it (run_common.h).
TensorRegistry gguf_file_registry(ModelSpec& spec, const std::string& path) {
  TensorRegistry reg = build_registry(spec);
  const GgufTensorSource src(path, spec, /*kv_b_data=*/false);
  std::set<std::string> known;
  for (const TensorEntry& e : reg.tensors) known.insert(e.name);
  // The file's tensors the registry does not name, by layer ("blk.N.") and the expert role of the GGUF tensor
  // they come from ("_exps": routed, "_shexp": shared).
  std::map<std::pair<int, Role>, std::vector<std::pair<std::string, const SourceTensor*>>> per_expert;
  for (const auto& [name, s] : src.tensors()) {
    int layer = -1;
    if (known.count(name) || std::sscanf(s.origin.c_str(), "blk.%d.", &layer) != 1) continue;
    if (s.origin.find("_exps") != std::string::npos)
      per_expert[{layer, Role::kRoutedExpert}].emplace_back(name, &s);
    else if (s.origin.find("_shexp") != std::string::npos)
      per_expert[{layer, Role::kSharedExpert}].emplace_back(name, &s);
  }
  std::vector<TensorEntry> out;
  std::set<std::pair<int, Role>> replaced;
  std::vector<std::string> missing;
  const auto from_file = [&out](const TensorEntry& e, const std::string& name, const SourceTensor& s) {
    TensorEntry x = e;
    x.name = name;
    x.shape = s.shape;
    x.dtype = s.dtype;
    x.n_params = x.numel();
    out.push_back(std::move(x));
  };
  for (const TensorEntry& e : reg.tensors) {
    const SourceTensor* s = src.find(e.name);
    if (s && s->origin == GgufTensorSource::kKvBFromSplit) {  // DeepSeek's split kv_b: the two file tensors
      const std::string a = e.name.substr(0, e.name.size() - std::string("kv_b_proj.weight").size());
      for (const char* part : {"attn_k_b.gguf", "attn_v_b.gguf"}) from_file(e, a + part, *src.find(a + part));
    } else if (s) {
      out.push_back(e);
      out.back().dtype = s->dtype;
    } else if (per_expert.count({e.layer, e.role})) {
      if (!replaced.insert({e.layer, e.role}).second) continue;
      for (const auto& [name, s] : per_expert[{e.layer, e.role}]) {
        from_file(e, name, *s);
        const size_t at = name.find(".experts.");
        out.back().expert = at == std::string::npos ? -1 : std::atoi(name.c_str() + at + 9);
        out.back().n_experts_packed = 1;
        out.back().scale_of.clear();
      }
    } else {
      out.push_back(e);
      missing.push_back(e.name);
    }
  }
  reg.tensors = std::move(out);
  reg.index.clear();
  for (size_t i = 0; i < reg.tensors.size(); ++i) reg.index[reg.tensors[i].name] = i;
  if (!missing.empty()) {
    std::string some = missing[0] + (missing.size() > 1 ? ", " + missing[1] : "") + (missing.size() > 2 ? ", ..." : "");
    spec.notes.push_back(fmt::format("{} tensors of the model are not in the file ({}): counted at {}", missing.size(),
                                     some, spec.torch_dtype));
  }
  return reg;
}

double always_on_weight_bytes(const std::string& model_dir, const ModelSpec& spec) {
  const LoadedTensors loaded(model_dir, spec);
  const TensorRegistry reg = build_registry(spec);
  double bytes = 0;
  for (const TensorEntry& t : reg.tensors) {
    if (t.is_mtp) continue;
    const std::optional<LoadedTensors::Loaded> l = loaded.find(t);
    if (!l) continue;
    const double size = l->bytes;
    if (t.role == Role::kEmbedding) {
      bytes += size / std::max<int64_t>(1, spec.vocab);  // one row per token
      if (spec.tie_word_embeddings) bytes += size;       // the head reads the whole table
      continue;
    }
    if (t.role == Role::kRoutedExpert || t.role == Role::kQuantScale || t.role == Role::kIndexTable) continue;
    bytes += size;
  }
  return bytes;
}

MatmulPeak matmul_peak(const std::string& model_dir, const ModelSpec& spec, const CeilingRow& ceiling) {
  // The routed experts' stored type (the dense FFN's in a model without experts): a GGUF's registry holds its
  // stored types (gpt-oss's experts under the loader's per-expert names), a checkpoint's are looked up.
  const bool gguf = is_gguf_path(model_dir);
  ModelSpec file_spec = spec;
  const TensorRegistry reg = gguf ? gguf_file_registry(file_spec, model_dir) : build_registry(spec);
  std::optional<LoadedTensors> loaded;
  if (!gguf) loaded.emplace(model_dir, spec);
  std::optional<DType> stored;
  for (Role role : {Role::kRoutedExpert, Role::kDenseFfn, Role::kAttention}) {
    for (const TensorEntry& t : reg.tensors) {
      if (stored) break;
      if (t.role != role || t.is_mtp || t.shape.size() < 2) continue;
      if (gguf)
        stored = t.dtype;
      else if (const auto l = loaded->find(t))
        stored = l->stored;
    }
  }
  const DType d = stored.value_or(DType::kF32);
  if (dtype_is_block(d) && d != DType::kF8E4M3_B128 && ceiling.dot_i8_gops > 0)
    return {ceiling.dot_i8_gops, "int8 dot", std::string(dtype_name(d))};
  if (d == DType::kBF16 && ceiling.dot_bf16_gflops > 0)
    return {ceiling.dot_bf16_gflops, "bf16 dot", std::string(dtype_name(d))};
  return {ceiling.fma_f32_gflops, "f32 FMA", std::string(dtype_name(d))};
}

void check_finite_logits(const std::vector<float>& logits, const std::string& model_dir) {
  for (float v : logits) {
    if (!std::isfinite(v)) fail("eval", "{}: the model produced a non-finite logit", model_dir);
  }
}

double read_ceiling_for_run(bool fresh) {
  const PackCacheOptions cache = PackCacheOptions::from_env();
  const std::string boot = boot_id();
  const nlohmann::json key = {{"boot", boot}, {"isa", isa_name(active_isa())}, {"threads", num_threads()}};
  const std::string path = cache.dir.empty() ? std::string() : (fs::path(cache.dir) / "read-ceiling.json").string();
  if (!path.empty() && !boot.empty() && !fresh) {
    try {
      const nlohmann::json saved = nlohmann::json::parse(std::ifstream(path));
      if (saved.at("key") == key && saved.at("read_gb_per_s").get<double>() > 0)
        return saved.at("read_gb_per_s").get<double>();
    } catch (const std::exception&) {
      // absent or unreadable: measured again below
    }
  }
  ReadProbe probe;
  std::vector<double> runs;
  for (int r = 0; r < 3; ++r) runs.push_back(probe.gbps());
  std::sort(runs.begin(), runs.end());
  const double gbps = runs[1];
  if (!path.empty() && !boot.empty()) {
    try {
      std::error_code ec;
      fs::create_directories(cache.dir, ec);
      write_file_atomic(path, nlohmann::json{{"key", key}, {"read_gb_per_s", gbps}}.dump() + "\n");
    } catch (const std::exception&) {
      // an unwritable cache folder: measured again next time
    }
  }
  return gbps;
}

RunReport report_of_generation(const GenerateResult& g, const ModelSpec& spec, const std::string& model_dir,
                               double read_gbps) {
  RunRecorder rec(spec, build_registry(spec), always_on_weight_bytes(model_dir, spec));
  rec.record(g.prefill, g.prompt_tokens, g.prefill_seconds, true, 0);
  const int64_t length = g.prompt_tokens + static_cast<int64_t>(g.decode.size());
  const double kv_per_token = length > 0 ? static_cast<double>(g.kv_cache_bytes) / length : 0;
  for (size_t i = 0; i < g.decode.size(); ++i) {
    const uint64_t kv_before = static_cast<uint64_t>(kv_per_token * (g.prompt_tokens + static_cast<int64_t>(i)));
    rec.record(g.decode[i], 1, g.decode_seconds / g.decode.size(), false, kv_before);
  }
  RunReport r = rec.finish(read_gbps, g.kv_cache_bytes);
  r.kv_cache_type = std::string(dtype_name(g.kv_cache_type));
  r.generated_tokens = static_cast<int64_t>(g.tokens.size());  // the first comes from the prefill's logits
  return r;
}

nlohmann::ordered_json run_json(const GenerateResult& g, const std::vector<int32_t>& prompt_ids,
                                const GenerateOptions& options, const GenerationDefaults& defaults,
                                const Tokenizer* tok, int64_t vocab, const RunReport& report) {
  nlohmann::ordered_json out;
  out["text"] = g.text;
  out["finish_reason"] = finish_reason_name(g.finish_reason);
  if (!g.stop_string.empty()) out["stop"] = g.stop_string;
  out["prompt_ids"] = prompt_ids;
  out["generated_ids"] = g.tokens;
  out["sampling"] = sampling_json(options, defaults);
  if (options.logprobs >= 0) out["logprobs"] = logprobs_json(g.logprobs, tok, vocab);
  const auto j = nlohmann::ordered_json::parse(run_report_json(report));
  for (auto it = j.begin(); it != j.end(); ++it) out[it.key()] = it.value();
  return out;
}

CeilingFraction step_floor_fraction(double fraction, double bytes, double dram_gbps) {
  double ws_gbps = 0;
  const bool held = cache_holds(bytes, dram_gbps, &ws_gbps);
  CeilingFraction f = read_ceiling_fraction(fraction, 1.0, bytes, held ? last_level_cache_bytes() : 0);
  if (ws_gbps <= 0) return f;
  const std::string measured = fmt::format("{:.1f} against {:.1f} GB/s from DRAM", ws_gbps, dram_gbps);
  if (held) {
    f.note += fmt::format(" (a working set of that size reads at {})", measured);
  } else {
    const std::string fits = fmt::format(
        "the {:.1f} MiB touched per step fit the reported {} MiB last-level cache but read no faster than DRAM here "
        "({}): the DRAM floor applies",
        bytes / (1 << 20), last_level_cache_bytes() >> 20, measured);
    f.note = f.note.empty() ? fits : f.note + "; " + fits;
  }
  return f;
}

}  // namespace moe::cli
