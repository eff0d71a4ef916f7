// DeepSeek-V4 tensor names: the official checkpoint's (layers.N.attn.wq_a.weight, the registry's own) and
// transformers' (model.layers.N.self_attn.q_a_proj.weight), which name the same weights; the routed experts
// are per-expert tensors in the first and fused [E, 2F, D] gate_up_proj / [E, D, F] down_proj in the second.
#pragma once

#include <string>

#include "spec/model_spec.h"

namespace moe {

// True when the spec describes a checkpoint in the transformers layout. Whoever opens a checkpoint decides it
// from the tensor names and records it as tensor_prefix "model." (where that layout keeps all but lm_head);
// the official layout leaves tensor_prefix empty.
bool dsv4_hf_layout(const ModelSpec& s);

// The transformers name of an official one (not for routed experts' ffn.experts.E.*, nor MTP tensors);
// throws moe::Error "[spec] ..." naming a tensor it does not know.
std::string dsv4_hf_name(const std::string& official);

}  // namespace moe
