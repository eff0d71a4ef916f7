// `moe run` and `moe eval`: placeholders until the run-models issue lands.
#include "cli/command.h"

namespace moe::cli {

void register_run(CLI::App& app, const GlobalOptions&) {
  auto* run = app.add_subcommand("run", "Generate text with an MoE model");
  run->allow_extras();
  run->callback([] { not_implemented("run", "Run whole MoE LLMs"); });
  auto* eval = app.add_subcommand("eval", "Score token ids with an MoE model");
  eval->allow_extras();
  eval->callback([] { not_implemented("eval", "Run whole MoE LLMs"); });
}

}  // namespace moe::cli
