// The memory `moe train` needs, computed in closed form from the options before anything is
// allocated: parameters, gradients and the two AdamW moments (4 x f32 per parameter) plus the
// activations one step keeps for its backward. A size that cannot fit is a moe::Error naming the
// field that makes it large ("num_hidden_layers = 1000000 (--layers): ... needs 3.4 PiB ...").
#pragma once

#include "train/trainer.h"

namespace moe::train {

// Parameters of the model, exact, in long double (a config may describe more than 2^63).
long double param_count(const ModelConfig& c);

// Bytes one training run holds: parameters, gradients, AdamW moments, activations of one step.
long double train_bytes(const TrainOptions& o);

// Throws moe::Error("[train] ...") when train_bytes(o) exceeds the memory this process may use;
// the message names the option whose reduction to its default shrinks the need the most.
void check_train_fits_in_memory(const TrainOptions& o);

}  // namespace moe::train
