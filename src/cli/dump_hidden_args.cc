// --dump-hidden (see dump_hidden_args.h).
#include "cli/dump_hidden_args.h"

#include <CLI/CLI.hpp>

#include "io/paths.h"

namespace moe::cli {

void add_dump_hidden_option(CLI::App* command, std::string& dir) {
  command->add_option("--dump-hidden", dir,
                      "Write every layer's named tensors (embed, attn_norm, attn_out, ffn_norm, moe_out|ffn_out, "
                      "hidden, final_norm) to this folder as raw little-endian f32 [T, D] files plus index.json");
}

void check_dump_hidden(const std::string& dir, const std::vector<std::string>& inputs, const std::string& command) {
  if (!dir.empty()) check_output_folder(dir, "--dump-hidden", inputs, command);
}

std::unique_ptr<HiddenDump> start_hidden_dump(const std::string& dir, bool is_root, Decoder& dec,
                                              nlohmann::ordered_json settings) {
  if (dir.empty() || !is_root) return nullptr;
  settings["moe_version"] = MOE_VERSION;
  auto dump = std::make_unique<HiddenDump>(dir, dec.spec().n_layer, std::move(settings));
  dec.set_tap(dump->tap());
  return dump;
}

}  // namespace moe::cli
