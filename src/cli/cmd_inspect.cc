// `moe inspect`: total vs activated parameters, breakdown, FLOPs, KV cache, weight bytes, decode
// floor and EP traffic of catalog models, config.json files, or checkpoint folders (cross-checked
// against the safetensors headers); several models print side by side.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/command.h"
#include "cli/flags.h"
#include "cli/inspect.h"
#include "cli/offload_args.h"
#include "cli/output.h"
#include "io/gguf_config.h"
#include "io/registry_check.h"
#include "io/run_folder.h"
#include "model/gguf_weights.h"
#include "spec/catalog.h"
#include "spec/report.h"
#include "util/error.h"
#include "util/input_file.h"

namespace moe::cli {
namespace {

struct InspectOptions {
  std::vector<std::string> targets;
  bool list = false;
  bool markdown = false;
  bool explain = false;
  bool tensors = false;
  Workload workload;
  std::string mem_budget, trace;  // --mem-budget: what fits and the expected hit rate (uniform, --trace)
};

struct Target {
  ModelSpec spec;
  std::string name;
  const CatalogEntry* entry = nullptr;
  std::string checkpoint_dir;                   // set when the folder holds safetensors
  std::optional<TensorRegistry> file_registry;  // a GGUF file's tensors as it stores them
};

bool has_safetensors(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  if (fs::exists(dir / "model.safetensors") || fs::exists(dir / "model.safetensors.index.json")) return true;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".safetensors") return true;
  return false;
}

// A GGUF file's tensors as the registry: each entry the file holds (under its Hugging Face name, as the
// loader maps it) takes the file's stored type, so the report's bytes and decode floor are the file's.
// Experts the file holds under other names (gpt-oss's fused gate_up_proj, Granite's fused input_linear:
// the loader names them per expert, or per gate / up) are replaced by the file's unnamed tensors of that
// layer and expert kind (routed "_exps", shared "_shexp"), with the role of the entries they replace;
// DeepSeek's kv_b_proj, where the file splits it, by attn_k_b and attn_v_b. Entries the file lacks keep the
// spec's type and are named in a note.
TensorRegistry gguf_registry(ModelSpec& spec, const std::string& path) {
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

Target resolve(const InspectTarget& target) {
  namespace fs = std::filesystem;
  const std::string& arg = target.arg;
  Target t;
  t.name = arg;
  if (!target.config_text.empty()) {
    t.spec = parse_model_spec_text(target.config_text, arg);
    return t;
  }
  if (arg == "-") {  // a config.json on standard input
    t.name = "stdin";
    t.spec = parse_model_spec_text(read_input_file("-", "config.json", "inspect"), "stdin");
    return t;
  }
  if (const CatalogEntry* e = find_catalog_entry(arg)) {
    t.entry = e;
    t.name = e->name;
    t.spec = parse_model_spec(e->config, e->name);
    return t;
  }
  std::error_code ec;
  if (!fs::exists(arg, ec))
    fail_usage("inspect",
               "\"{}\" is neither a catalog model (see `moe inspect --list`) nor a config.json or model folder", arg);
  const std::string path = resolve_model_path(arg);  // a training run folder: the checkpoint `latest` names
  t.spec = load_model_spec_any(path);  // a config.json, a checkpoint folder or a .gguf file (its metadata)
  if (fs::is_directory(path, ec) && has_safetensors(path)) t.checkpoint_dir = path;
  if (is_gguf_path(path)) t.file_registry = gguf_registry(t.spec, path);
  return t;
}

struct Reports {
  std::vector<ModelReport> reports;
  std::vector<std::string> dirs;  // [i]: the checkpoint folder of reports[i], or empty
};

Reports make_reports(const std::vector<InspectTarget>& targets, const Workload& workload) {
  Reports r;
  for (const InspectTarget& target : targets) {
    Target t = resolve(target);
    r.dirs.push_back(t.checkpoint_dir);
    r.reports.push_back(t.file_registry ? make_report(std::move(t.spec), std::move(*t.file_registry), t.name, workload)
                                        : make_report(std::move(t.spec), t.name, t.entry, workload));
  }
  return r;
}

// {"models": [one report per target]}, whatever the number of targets (docs/CLI.md).
nlohmann::ordered_json reports_json(const Reports& r, bool explain, bool tensors) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (size_t i = 0; i < r.reports.size(); ++i) {
    nlohmann::ordered_json j = report_json(r.reports[i], explain);
    j["checkpoint_check"] = r.dirs[i].empty() ? nlohmann::ordered_json(nullptr)
                                              : check_json(check_checkpoint_dir(r.reports[i].spec, r.dirs[i]));
    if (tensors) j["tensors"] = tensors_json(r.reports[i]);
    out.push_back(std::move(j));
  }
  return {{"models", out}};
}

void print_list(const InspectOptions& o, bool json) {
  if (json) {
    print_json_report(catalog_json());
    return;
  }
  fmt::print("{}", render_catalog(o.markdown ? ReportFormat::kMarkdown : ReportFormat::kText));
}

void run_inspect(const InspectOptions& o, const GlobalOptions& global) {
  if (o.list) {
    print_list(o, global.json);
    return;
  }
  if (o.targets.empty())
    fail_usage("inspect", "name a model (catalog name, config.json or checkpoint folder), or use --list");
  const ReportFormat fmt_kind = o.markdown ? ReportFormat::kMarkdown : ReportFormat::kText;
  std::vector<InspectTarget> targets;
  for (const std::string& arg : o.targets) targets.push_back(InspectTarget{arg, {}});
  const Reports r = make_reports(targets, o.workload);
  std::optional<OffloadPrediction> pred;
  if (!o.trace.empty() && o.mem_budget.empty()) fail_usage("inspect", "--trace {}: only with --mem-budget", o.trace);
  if (!o.mem_budget.empty()) {
    if (r.reports.size() != 1) fail_usage("inspect", "--mem-budget: name one model");
    pred = offload_prediction(r.reports[0], parse_size(o.mem_budget, "--mem-budget"), o.trace,
                              is_gguf_path(o.targets[0]) ? o.targets[0] : std::string());
  }
  if (global.json) {
    nlohmann::ordered_json j = reports_json(r, o.explain, o.tensors);
    if (pred) j["models"][0]["offload_prediction"] = prediction_json(*pred);
    print_json_report(j);
    return;
  }
  const std::vector<ModelReport>& reports = r.reports;
  const std::vector<std::string>& dirs = r.dirs;
  if (reports.size() > 1) {
    fmt::print("{}", render_comparison(reports, fmt_kind));
    return;
  }
  fmt::print("{}", render_report(reports[0], fmt_kind, o.explain));
  if (o.tensors) fmt::print("\n{}", render_tensors(reports[0], fmt_kind));
  if (!dirs[0].empty()) fmt::print("\n{}", render_check(check_checkpoint_dir(reports[0].spec, dirs[0])));
  if (pred) fmt::print("\n{}", prediction_text(*pred));
}

}  // namespace

nlohmann::ordered_json inspect_json(const std::vector<InspectTarget>& targets, const Workload& workload, bool explain) {
  return reports_json(make_reports(targets, workload), explain, false);
}

void register_inspect(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("inspect", "Parameters, FLOPs, bytes, KV cache and EP traffic of a model");
  static InspectOptions o;
  cmd->add_option(
      "models", o.targets,
      "Catalog names (see --list), config.json files (- reads one from stdin), checkpoint folders or .gguf files");
  cmd->add_flag("--list", o.list, "List the embedded catalog with published and computed counts");
  cmd->add_flag("--markdown", o.markdown, "Print Markdown tables");
  cmd->add_flag("--explain", o.explain, "Show the formula behind every cost figure");
  cmd->add_flag("--tensors", o.tensors, "List every registry tensor (name, shape, dtype, role)");
  // Accounting is closed-form in these, so they may be huge (--context 1e11); the caps keep every
  // figure finite and exact enough in a double.
  add_number(cmd, "--context", o.workload.context, "Context length L for decode cost and KV cache", int64_t{1},
             kMaxAccountedTokens);
  add_number(cmd, "--batch", o.workload.batch, "Batch B of decoded sequences", int64_t{1}, kMaxAccountedTokens);
  add_number(cmd, "--prompt", o.workload.prompt, "Prefill length N", int64_t{0}, kMaxAccountedTokens,
             "0 = the context");
  add_number(cmd, "--ep", o.workload.ep_ranks, "Expert-parallel ranks R", int64_t{1}, kMaxAccountedEpRanks);
  add_number_above(cmd, "--kv-bytes", o.workload.kv_bytes_per_elem, "Bytes per KV-cache element (2 bf16, 1 fp8)", 0.0,
                   kMaxKvBytesPerElem);
  cmd->add_option("--mem-budget", o.mem_budget,
                  "Predict experts served from disk under this weights budget (e.g. 12G): slots, hit rate");
  cmd->add_option("--trace", o.trace,
                  "With --mem-budget: replay this routing trace (moe run --trace) for the hit rate");
  cmd->callback([&global] { run_inspect(o, global); });
}

}  // namespace moe::cli
