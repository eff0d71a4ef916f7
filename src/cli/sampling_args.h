// The sampling flags shared by `moe run`, `moe chat` and `moe serve`, named as llama.cpp and the
// OpenAI API name them (--temp, --top-k, --top-p, --min-p, --repeat-penalty, --presence-penalty,
// --frequency-penalty, --stop, --logprobs, --seed, --ignore-eos). A flag given on the command line
// overrides the model's generation_config.json; one not given leaves the model's default.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
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

// The model's defaults with the given flags on top.
SamplerOptions resolve_sampling(const SamplingArgs& args, const GenerationDefaults& defaults);

// {"temperature", ..., "seed", "eos_ids", "stop", "defaults_from"}: what generation used.
nlohmann::ordered_json sampling_json(const GenerateOptions& options, const GenerationDefaults& defaults);
// [{"id", "token", "logprob", "top_logprobs": [{"id", "token", "logprob"}]}] per generated token.
nlohmann::ordered_json logprobs_json(const std::vector<TokenLogprobs>& logprobs, const Tokenizer* tok, int64_t vocab);

}  // namespace moe::cli
