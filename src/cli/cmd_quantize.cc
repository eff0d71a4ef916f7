// `moe quantize --model DIR --out FILE.gguf --type T`: a Hugging Face checkpoint written as a GGUF file
// (model/gguf_export.h), with a progress bar on a terminal and a summary of the types written.
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/flags.h"
#include "cli/output.h"
#include "io/paths.h"
#include "io/run_folder.h"
#include "model/gguf_export.h"
#include "runtime/timer.h"
#include "util/error.h"

namespace moe::cli {
namespace {

struct QuantizeArgs {
  std::string model, out, type = "Q4_K_M";
  bool progress = true;
};

void run_quantize(const QuantizeArgs& given, const GlobalOptions& g) {
  QuantizeArgs a = given;
  if (a.out.size() < 6 || a.out.substr(a.out.size() - 5) != ".gguf")
    fail_usage("quantize", "--out {} must end in .gguf", a.out);
  if (std::filesystem::is_regular_file(a.model)) {
    require_input_file(a.model, "--model", "quantize");
  } else {
    require_input_folder(a.model, "--model", "quantize");
    a.model = resolve_model_path(a.model);  // a training run folder: the checkpoint its `latest` names
  }
  check_output_file(a.out, "--out", {a.model}, "quantize");
  QuantizeOptions o;
  o.type = a.type;  // q4_k_m and Q4_K_M alike, as llama-quantize accepts
  for (char& ch : o.type) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  Timer timer;
  Progress progress("quantize " + o.type, a.progress, g);
  if (progress.active())
    o.progress = [&](uint64_t done, uint64_t total) {
      progress.update(double(done) * 1e-9, double(total) * 1e-9, "GB");
    };
  const QuantizeSummary s = quantize_to_gguf(a.model, a.out, o);
  progress.done();
  if (g.json) {
    nlohmann::ordered_json j;
    j["model"] = a.model;
    j["out"] = a.out;
    j["type"] = o.type;
    j["n_tensors"] = s.tensors;
    j["total_params"] = s.params;
    j["file_bytes"] = s.file_bytes;
    j["bits_per_weight"] = s.bits_per_weight();
    j["tensors_by_type"] = s.tensors_by_type;
    j["params_by_type"] = s.params_by_type;
    j["elapsed_s"] = timer.seconds();
    print_json_report(j);
    return;
  }
  std::printf("wrote %s: %s, %lld tensors, %.3f GB, %.2f bits per weight, %.1f s\n", a.out.c_str(), o.type.c_str(),
              static_cast<long long>(s.tensors), double(s.file_bytes) * 1e-9, s.bits_per_weight(), timer.seconds());
  for (const auto& [type, n] : s.tensors_by_type) {
    std::printf("  %-5s %4lld tensors %14lld params\n", type.c_str(), static_cast<long long>(n),
                static_cast<long long>(s.params_by_type.at(type)));
  }
}

}  // namespace

void register_quantize(CLI::App& app, const GlobalOptions& global) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* cmd = app.add_subcommand("quantize", "Write a Hugging Face checkpoint as a quantized GGUF file");
  cmd->add_option("-m,--model", args->model, "Checkpoint folder (config.json + safetensors)")->required();
  cmd->add_option("-o,--out", args->out, "Output .gguf file (written atomically)")->required();
  cmd->add_option("--type", args->type, std::string("Quantization: ") + quantize_types())->capture_default_str();
  add_off_flag(cmd, "--no-progress", args->progress, "No progress bar on stderr");
  cmd->callback([args, &global] { run_quantize(*args, global); });
}

}  // namespace moe::cli
