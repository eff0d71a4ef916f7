// The inverse of parse_model_spec for the families moe writes checkpoints of (`moe train` saves
// Qwen3-MoE, OLMoE, Mixtral and DeepSeek-V3 models): a Hugging Face config.json that transformers
// loads and that parse_model_spec reads back to the same architecture. One reader (model_spec.cc),
// one writer (here); tests/spec/config_writer_test.cc holds the two to each other.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "spec/model_spec.h"

namespace moe {

// Throws moe::Error("spec", ...) naming the family or the field when the spec holds something the
// family's config class cannot say (a per-layer pattern it has no key for, a head_dim OLMoE derives).
nlohmann::json write_hf_config(const ModelSpec& spec);

// The model_type values write_hf_config accepts.
std::vector<std::string> writable_model_types();

}  // namespace moe
