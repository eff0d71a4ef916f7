// `--dump-hidden DIR` (moe eval): every named intermediate tensor of the forward written to DIR
// (model/hidden_dump.h), for comparing a port layer by layer with another implementation.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/decoder.h"
#include "model/hidden_dump.h"

namespace CLI {
class App;
}

namespace moe::cli {

void add_dump_hidden_option(CLI::App* command, std::string& dir);
// Before the load: DIR is a usable output folder (io/paths.h) that holds none of the inputs.
void check_dump_hidden(const std::string& dir, const std::vector<std::string>& inputs, const std::string& command);
// When DIR is given and this rank prints (rank 0 of --ep): a HiddenDump that dec's forwards now
// feed (settings go into index.json, with the version of moe); else null and no tap.
std::unique_ptr<HiddenDump> start_hidden_dump(const std::string& dir, bool is_root, Decoder& dec,
                                              nlohmann::ordered_json settings);

}  // namespace moe::cli
