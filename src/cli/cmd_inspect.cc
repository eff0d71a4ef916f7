// `moe inspect`: total vs activated parameters, breakdown, FLOPs, KV cache, weight bytes, decode
// floor and EP traffic of catalog models, config.json files, or checkpoint folders (cross-checked
// against the safetensors headers); several models print side by side.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/command.h"
#include "cli/flags.h"
#include "cli/inspect.h"
#include "cli/offload_args.h"
#include "cli/output.h"
#include "cli/run_common.h"
#include "io/gguf_config.h"
#include "io/registry_check.h"
#include "io/run_folder.h"
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
  if (is_gguf_path(path)) t.file_registry = gguf_file_registry(t.spec, path);
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
    r.reports.push_back(make_report(std::move(t.spec), t.name, t.entry, workload, std::move(t.file_registry)));
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
