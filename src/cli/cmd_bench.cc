// `moe bench`: groups the benchmarks (ceilings, layer, model, serve).
#include "cli/command.h"

namespace moe::cli {

void register_bench(CLI::App& app, const GlobalOptions& global) {
  CLI::App* bench = app.add_subcommand("bench", "Measure the machine's ceilings and the engine against them");
  bench->require_subcommand(1);
  register_bench_ceilings(*bench, global);
  register_bench_layer(*bench, global);
  register_bench_model(*bench, global);
  register_bench_serve(*bench, global);
}

}  // namespace moe::cli
