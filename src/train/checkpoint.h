// Training checkpoints: a Hugging Face folder (config.json + model.safetensors, exact Qwen3-MoE
// or DeepSeek-V3 names, the latter with the learned mlp.gate.e_score_correction_bias) plus optimizer.safetensors (AdamW moments, router selection biases) and
// trainer_state.json (step, Rng state = data position, run settings). Each checkpoint is written
// into a temporary folder that is renamed into place, then the `latest` pointer file is replaced
// atomically: a kill at any moment leaves the previous checkpoint complete and pointed to.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/model.h"
#include "train/optimizer.h"

namespace moe::train {

struct TrainerState {
  int64_t step = 0;               // optimizer steps completed
  std::array<uint64_t, 4> rng{};  // batch sampler state after `step` steps
  nlohmann::json run;             // settings that must match on resume (batch, seq, balance, ...)
};

// Writes <out_dir>/step-<N>/ and points <out_dir>/latest at it; keeps the newest `keep` steps.
// A failed write (disk full, ...) removes its temporary folder before the error propagates.
void save_checkpoint(const std::string& out_dir, const TrainModel<float>& model, const AdamW& opt,
                     const TrainerState& state, int keep = 2);

// Writes only config.json + model.safetensors (the Hugging Face model) into dir (atomically per file).
void save_hf_model(const std::string& dir, const TrainModel<float>& model);

// Makes `out_dir` ready for a run: removes the temporaries of killed runs; for a fresh run
// (!resume) refuses a folder that holds another run (metrics.jsonl, latest, step-* folders) with a
// usage error, unless `overwrite`, which deletes that run's files first. A file is refused too.
void prepare_out_dir(const std::string& out_dir, bool resume, bool overwrite);

// Resolves a checkpoint folder: a step folder itself, or an output folder with a `latest` file.
std::string resolve_checkpoint(const std::string& path);

// Reads a checkpoint's config.json (for building the model before load_checkpoint).
ModelConfig read_checkpoint_config(const std::string& dir);

// `moe train --init DIR`: the model an existing Hugging Face checkpoint folder describes
// (DIR/config.json through the spec reader; notes: what is dropped or ignored, for the user).
ModelConfig read_init_config(const std::string& dir, std::vector<std::string>* notes);

// Loads the weights of an HF checkpoint folder (model.safetensors or a sharded index; f32, bf16 or
// f16, converted to f32) into `model`, and DeepSeek-V3's e_score_correction_bias into router_bias.
// A missing tensor, a wrong shape, a non-float dtype, a non-finite value or a tensor the model has no
// place for (other than the multi-token-prediction layers) is a moe::Error naming the file and tensor.
void load_hf_weights(const std::string& dir, TrainModel<float>& model);

// Loads parameters (and, when opt/state are non-null, optimizer state and trainer state).
// Every missing tensor, wrong shape or dtype, or config mismatch is a moe::Error naming the file.
void load_checkpoint(const std::string& dir, TrainModel<float>& model, AdamW* opt, TrainerState* state);

}  // namespace moe::train
