// What a resumed run (`moe train --out DIR --resume`) must share with its checkpoint, and the
// messages that name the flags a user typed when it does not (never internal JSON keys). --steps
// may grow: the run is extended, and its cosine schedule then spans the new --steps.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "train/model_config.h"

namespace moe::train {

struct TrainOptions;

// The settings recorded in each checkpoint (trainer_state.json "run") and compared on resume.
nlohmann::json run_fingerprint(const TrainOptions& o);

// "--lr: the run used 0.001, this asks 0.002; --batch: ..." for each key of `saved` whose value
// differs in `asked` (keys the saved run lacks are not compared: older checkpoints); empty when
// they agree. `skip`: a key left out (the run's "steps").
std::string run_settings_diff(const nlohmann::json& saved, const nlohmann::json& asked, const std::string& skip = "");

// The same for two models' config.json contents, naming the flags that set each field.
std::string model_config_diff(const ModelConfig& saved, const ModelConfig& asked);

// Checks a resume of the checkpoint `dir` (its trainer_state "run" and step) against `o`: a
// setting that differs is an error naming the flags; --steps below the run's is an error
// (use --stop-after), above it extends the run. Returns the run's original --steps.
int64_t check_resume_settings(const nlohmann::json& saved, int64_t step, const TrainOptions& o, const std::string& dir);

}  // namespace moe::train
