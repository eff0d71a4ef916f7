// MoeLayerConfig from a ModelSpec: the Hugging Face family's router, activation and shared-expert
// semantics (the rows of moe/family_routing.h), so loaders and benchmarks build layers the same way.
#pragma once

#include "moe/moe_layer.h"
#include "spec/model_spec.h"

namespace moe {

// Throws moe::Error("moe_layer", ...) when the spec has no routed experts or its family no router row.
MoeLayerConfig moe_layer_config(const ModelSpec& spec);

}  // namespace moe
