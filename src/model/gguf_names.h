// Tensor names in GGUF files (llama.cpp's, gguf-py's tensor map) and their Hugging Face checkpoint names,
// for the architectures moe reads and writes; shared by the GGUF reader (gguf_weights.h) and writer
// (gguf_export.h) so both directions use one table.
#pragma once

#include <cstdint>
#include <string>

#include "spec/model_spec.h"

namespace moe::gguf_names {

// Per-layer tensors whose HF name is "model.layers.N." + hf (attention, norms, dense FFN).
struct Rule {
  const char* gguf;  // after "blk.N."
  const char* hf;    // after "model.layers.N."
};
const Rule* layer_rules(int* n);

// The HF name of a layer tensor for the GGUF suffix (nullptr when the table has none); for gpt-oss the
// post-attention norm is post_attention_norm, for the others ffn_norm.
const char* hf_for(const std::string& gguf_suffix);
// The GGUF suffix of an HF layer suffix (nullptr when none); family picks the post-attention norm's name.
const char* gguf_for(const std::string& hf_suffix, Family family);

// Routed expert matrices: "w1" / "w3" / "w2" for Mixtral, else "gate_proj" / "up_proj" / "down_proj";
// which is "gate", "up" or "down".
const char* expert_hf_name(const ModelSpec& spec, const std::string& which);
// Shared experts' HF prefix: "shared_expert." (Qwen2-MoE) or "shared_experts." (DeepSeek).
std::string shared_prefix(const ModelSpec& spec);

// The general.architecture a family is written as (nullptr when moe cannot write it to GGUF).
const char* gguf_architecture(const ModelSpec& spec);

// The GGUF name of a model tensor (HF name) for the architectures above; empty when it has none.
std::string gguf_name(const ModelSpec& spec, const std::string& hf);

}  // namespace moe::gguf_names
