// The sampling flags shared by `moe run`, `moe chat` and `moe serve`, named as llama.cpp and the
// OpenAI API name them (--temp, --top-k, --top-p, --min-p, --repeat-penalty, --presence-penalty,
// --frequency-penalty, --stop, --logprobs, --seed, --ignore-eos). A flag given on the command line
// overrides the model's generation_config.json; one not given leaves the model's default.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/generate.h"
#include "model/generation_config.h"
#include "model/sampler.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace moe {
class Tokenizer;
}

namespace moe::cli {

struct SamplingArgs {
  SamplerOptions values;
  std::vector<std::string> stop;  // stop strings
  int64_t logprobs = -1;          // -1: off
  bool ignore_eos = false;
  // The options whose values override the model's defaults when given.
  CLI::Option *temp = nullptr, *top_k = nullptr, *top_p = nullptr, *min_p = nullptr, *repeat = nullptr,
              *presence = nullptr, *frequency = nullptr;
};

void add_sampling_options(CLI::App* command, SamplingArgs& args);

// The sampling values a caller gave (a flag, a Python keyword); nullopt leaves the model's default.
struct SamplingOverrides {
  std::optional<float> temperature, top_p, min_p, repetition_penalty, presence_penalty, frequency_penalty;
  std::optional<int64_t> top_k;
  uint64_t seed = 0;
};

// The flags given on the command line.
SamplingOverrides sampling_overrides(const SamplingArgs& args);
// The model's defaults with the given values on top.
SamplerOptions resolve_sampling(const SamplingOverrides& given, const GenerationDefaults& defaults);
SamplerOptions resolve_sampling(const SamplingArgs& args, const GenerationDefaults& defaults);

// The GenerateOptions of `moe run` (and of moe.Model.generate): the resolved sampler, `stop_ids`
// plus the model's EOS ids unless ignore_eos, stop strings, routing recorded for the report.
GenerateOptions run_generate_options(const SamplingOverrides& given, const GenerationDefaults& defaults,
                                     std::vector<int32_t> stop_ids, std::vector<std::string> stop_strings,
                                     bool ignore_eos, int64_t logprobs, int64_t max_new_tokens, int64_t context);

// {"temperature", ..., "seed", "eos_ids", "stop", "defaults_from"}: what generation used.
nlohmann::ordered_json sampling_json(const GenerateOptions& options, const GenerationDefaults& defaults);
// [{"id", "token", "logprob", "top_logprobs": [{"id", "token", "logprob"}]}] per generated token.
nlohmann::ordered_json logprobs_json(const std::vector<TokenLogprobs>& logprobs, const Tokenizer* tok, int64_t vocab);

}  // namespace moe::cli
