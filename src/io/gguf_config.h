// A GGUF file's architecture as the Hugging Face config.json its converter read: the metadata of the
// supported architectures (llama / Mixtral, qwen2moe, qwen3moe, olmoe, deepseek2, gpt-oss) mapped back to
// the transformers config keys, so a GGUF file goes through the same ModelSpec parser (and its checks) as a
// safetensors checkpoint. Where llama.cpp hard-codes a semantic the GGUF does not record (qwen3moe and
// Mixtral renormalize the top-k weights, qwen2moe and olmoe do not), the config says what llama.cpp does.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "spec/model_spec.h"

namespace moe {

// The general.architecture values moe runs, comma-separated (for messages).
std::string gguf_supported_architectures();

// The config.json equivalent of f's metadata. Throws moe::Error "[gguf] <file>: <key>: ..." for an
// unsupported architecture or a missing or inconsistent key.
nlohmann::json gguf_hf_config(const GgufFile& f);

// parse_model_spec(gguf_hf_config(f)), plus what the GGUF layout changes: the llama architecture's q/k
// rows are permuted by the converter so that interleaved (GPT-J) rotary pairs equal the checkpoint's
// rotate-half pairs, so the spec uses interleaved rope.
ModelSpec gguf_model_spec(const GgufFile& f);

// A model from any source: a .gguf file, or a config.json / checkpoint folder.
bool is_gguf_path(const std::string& path);
ModelSpec load_model_spec_any(const std::string& path);

}  // namespace moe
