// `moe tokenize` and `moe detokenize`: placeholders until the tokenizer issue lands.
#include "cli/command.h"

namespace moe::cli {

void register_tokenize(CLI::App& app, const GlobalOptions&) {
  auto* tok = app.add_subcommand("tokenize", "Text to token ids with a model's tokenizer");
  tok->allow_extras();
  tok->callback([] { not_implemented("tokenize", "Tokenizers of real MoE models"); });
  auto* detok = app.add_subcommand("detokenize", "Token ids to text with a model's tokenizer");
  detok->allow_extras();
  detok->callback([] { not_implemented("detokenize", "Tokenizers of real MoE models"); });
}

}  // namespace moe::cli
