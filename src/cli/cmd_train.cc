// `moe train` and `moe plot`: placeholders until the training issue lands.
#include "cli/command.h"

namespace moe::cli {

void register_train(CLI::App& app, const GlobalOptions&) {
  auto* train = app.add_subcommand("train", "Train an MoE language model");
  train->allow_extras();
  train->callback([] { not_implemented("train", "Train MoE language models"); });
}

}  // namespace moe::cli
