// A model's own generation defaults, read as Hugging Face and llama.cpp read them: the ids that end
// generation (config.json and generation_config.json eos_token_id, an int or a list, plus the
// tokenizer's eos; in a GGUF, tokenizer.ggml.eos_token_id / eot_token_id / eom_token_id) and the
// sampling defaults of generation_config.json (do_sample, temperature, top_k, top_p,
// repetition_penalty; Hugging Face's defaults where a key is absent). Flags override them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/sampler.h"

namespace moe {

class Tokenizer;

struct GenerationDefaults {
  std::vector<int32_t> eos_ids;    // every id that ends generation, ascending, no repeats
  SamplerOptions sampler;          // greedy unless generation_config.json says do_sample
  std::vector<std::string> files;  // the files the defaults came from (for the printed configuration)
};

// model_path: a checkpoint folder or a .gguf file; tok: its tokenizer (eos), may be null.
// Throws moe::Error "[generation] <file>: <field> ..." for a field of the wrong type or range.
GenerationDefaults read_generation_defaults(const std::string& model_path, const Tokenizer* tok);

}  // namespace moe
