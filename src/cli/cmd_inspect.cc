// `moe inspect`: placeholder until the inspect issue lands.
#include "cli/command.h"

namespace moe::cli {

void register_inspect(CLI::App& app, const GlobalOptions&) {
  auto* cmd = app.add_subcommand("inspect", "Parameters, FLOPs, bytes, KV cache and EP traffic of a model");
  cmd->allow_extras();
  cmd->callback([] { not_implemented("inspect", "moe inspect"); });
}

}  // namespace moe::cli
