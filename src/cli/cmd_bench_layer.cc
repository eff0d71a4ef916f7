// `moe bench layer`: placeholder until the MoE-layer issue lands.
#include "cli/command.h"

namespace moe::cli {

void register_bench_layer(CLI::App& bench, const GlobalOptions&) {
  auto* cmd = bench.add_subcommand("layer", "One MoE layer vs the dense FFN and the machine's ceilings");
  cmd->allow_extras();
  cmd->callback([] { not_implemented("bench layer", "MoE layer engine on CPU"); });
}

}  // namespace moe::cli
