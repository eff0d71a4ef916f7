// What differs between MoE families beyond ModelSpec's flags: how the router's HF semantics map
// onto RouterOptions, the expert activation, and where the MoE block's tensors live and how
// they are laid out (per-expert Linear tensors, or gpt-oss's fused interleaved gate_up_proj).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "model/weights.h"
#include "moe/moe_layer.h"
#include "spec/model_spec.h"

namespace moe {

// Router and activation semantics of the family: moe/layer_config.h's mapping, validated, for the
// families the decoder can load (throws moe::Error "[model] ..." for the others).
MoeLayerConfig decoder_moe_config(const ModelSpec& spec);

// Which routed experts to load (expert parallelism: a rank loads only its own); empty = all.
using ExpertKeep = std::function<bool(int64_t expert)>;

// Views of one MoE layer's router, routed and shared experts (may re-lay out into the store).
// Experts `keep` rejects are neither read nor converted: their views have null data.
MoeLayerWeights moe_layer_weights(const ModelSpec& spec, int64_t layer, WeightStore& store,
                                  const ExpertKeep& keep = {});

// Prefix of a layer's feed-forward block: "model.layers.<i>.mlp." or Mixtral's block_sparse_moe.
std::string ffn_prefix(const ModelSpec& spec, int64_t layer);

// Where a family keeps the decoder's tensors (checkpoint names; the Llama layout unless noted).
struct DecoderNames {
  std::string embed = "model.embed_tokens.weight";
  std::string final_norm = "model.norm";  // + ".weight" (and ".bias" for LayerNorm)
  std::string head = "lm_head";           // + ".weight" / ".bias"
  std::string layers = "model.layers.";   // + "<i>."
  std::string in_norm = "input_layernorm", post_norm = "post_attention_layernorm";
  std::string attn = "self_attn.";
  std::string fused_qkv;  // DBRX "Wqkv": the q, k and v rows stacked in one matrix; empty: q/k/v_proj
  std::string o_proj = "o_proj";
  std::string dense_ffn = "mlp.";
  std::string layer(int64_t i) const;  // layers + "<i>."
};
DecoderNames decoder_names(const ModelSpec& spec);

}  // namespace moe
