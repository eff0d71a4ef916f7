// Tensor names in GGUF files (llama.cpp's, gguf-py's tensor map) and their Hugging Face checkpoint names,
// for the architectures moe reads and writes; shared by the GGUF reader (gguf_weights.h) and writer
// (gguf_export.h) so both directions use one table. The HF side is the family's own naming
// (DecoderNames: DBRX's transformer.blocks, Llama 4's feed_forward, ...).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "spec/model_spec.h"

namespace moe::gguf_names {

// A per-layer tensor whose HF name is DecoderNames::layer(N) + hf and GGUF name "blk.N." + gguf
// (attention, norms, dense FFN; not the MoE block, which the reader and writer lay out themselves).
struct Rule {
  std::string gguf;  // after "blk.N."
  std::string hf;    // after the layer prefix
};
// The layer rules of this model's family, one GGUF name per HF name and one HF name per GGUF name.
std::vector<Rule> layer_rules(const ModelSpec& spec);
// The GGUF layer suffix of an HF layer suffix (empty when the family has none).
std::string gguf_for(const ModelSpec& spec, const std::string& hf_suffix);

// Routed expert matrices: "w1" / "w3" / "w2" for Mixtral and PhiMoE, else "gate_proj" / "up_proj" /
// "down_proj"; which is "gate", "up" or "down". Experts read from GGUF are one matrix each, named
// ffn_prefix + "experts.<e>." + this + ".weight", whatever layout the family's checkpoints fuse.
const char* expert_hf_name(const ModelSpec& spec, const std::string& which);
// The full HF prefix of a layer's shared expert ("...mlp.shared_experts.", Qwen2-MoE's and Llama 4's
// "shared_expert.", Granite's "model.layers.N.shared_mlp.", which sits beside the MoE block).
std::string shared_prefix(const ModelSpec& spec, int64_t layer);
// The router Linear's HF name of a layer (ffn_prefix + "gate.weight", "router.layer.weight", ...).
std::string router_name(const ModelSpec& spec, int64_t layer);
// The score-correction bias's HF name (DeepSeek-V3's gate.e_score_correction_bias, ERNIE's moe_statics).
std::string score_bias_name(const ModelSpec& spec, int64_t layer);
// True for an HF tensor that checkpoints of this family fuse and GGUF files split (Granite's input_linear,
// DBRX's experts.mlp, Llama 4's and gpt-oss's gate_up_proj / down_proj).
bool fused_expert_tensor(const ModelSpec& spec, const std::string& hf);

// The general.architecture a family is written as (nullptr when moe cannot write it to GGUF).
const char* gguf_architecture(const ModelSpec& spec);
// True when the architecture's llama.cpp graph rotates pairs (2j, 2j+1) while the family's HF code rotates
// halves (j, j + d/2): the converter then reorders the q and k rows of every head (Llama, Granite).
bool permutes_qk(const ModelSpec& spec);

// The GGUF name of a model tensor (HF name) for the architectures above; empty when it has none.
std::string gguf_name(const ModelSpec& spec, const std::string& hf);

}  // namespace moe::gguf_names
