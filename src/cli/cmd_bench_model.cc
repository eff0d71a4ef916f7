// `moe bench model`: placeholder until the run-models issue lands.
#include "cli/command.h"

namespace moe::cli {

void register_bench_model(CLI::App& bench, const GlobalOptions&) {
  auto* cmd = bench.add_subcommand("model", "A random-weight model in a catalog shape: prefill and decode speed");
  cmd->allow_extras();
  cmd->callback([] { not_implemented("bench model", "Run whole MoE LLMs"); });
}

}  // namespace moe::cli
