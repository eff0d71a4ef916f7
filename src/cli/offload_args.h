// The memory flags of the commands that run a model (run, eval, bench model, serve, chat): --mem-budget /
// --expert-profile / --no-prefetch (routed experts from disk) and --kv-type (the KV cache's row type), and
// the offload section of their reports.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "model/decoder.h"
#include "model/offload.h"
#include "spec/report.h"

namespace CLI {
class App;
}

namespace moe::cli {

struct OffloadArgs {
  std::string mem_budget;  // "24G", "512M", "1.5GB", bytes; empty: every expert in memory
  std::string expert_profile;
  bool no_prefetch = false;
  std::string kv_type = "auto";    // auto, f32, f16, bf16
  OffloadOptions options() const;  // throws a usage error naming --mem-budget when it does not parse
  // --kv-type: nullopt for auto (the decoder's choice: f32 for a float32 checkpoint, else f16).
  std::optional<DType> kv_dtype() const;
  // A DecoderOptions with both.
  DecoderOptions decoder_options() const;
};

void add_offload_options(CLI::App* command, OffloadArgs& args);
// --kv-type alone (moe chat, which has no --mem-budget).
void add_kv_type_option(CLI::App* command, std::string& kv_type);
std::optional<DType> parse_kv_type(const std::string& text);
// "24G" -> bytes (K/M/G/T, optional B or iB, powers of 1024; a plain number is bytes).
uint64_t parse_size(const std::string& text, const std::string& flag);

// The offload section (null / nothing when the decoder keeps every expert in memory). tokens: the
// tokens the reads served (bytes per token); disk_gbps: the disk's read ceiling measured in the same
// run (0: not measured), which the achieved read rate is set against.
nlohmann::ordered_json offload_json(const Decoder& dec, int64_t tokens, double disk_gbps = 0);
std::string offload_text(const Decoder& dec, int64_t tokens, double disk_gbps = 0);
// The read ceiling of the disk the experts come from (O_DIRECT, 512 MiB of the first file), or 0 without
// --mem-budget.
double offload_disk_ceiling(const Decoder& dec);

// `moe inspect --mem-budget`: the prediction for a model's report, at the checkpoint's dtypes, or at the
// tensors' own types when `gguf` names the model's GGUF file.
OffloadPrediction offload_prediction(const ModelReport& report, uint64_t mem_budget, const std::string& trace,
                                     const std::string& gguf = "");
nlohmann::ordered_json prediction_json(const OffloadPrediction& p);
std::string prediction_text(const OffloadPrediction& p);

}  // namespace moe::cli
