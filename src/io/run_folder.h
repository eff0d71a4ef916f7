// A training run folder (`moe train --out RUN`: RUN/step-N/ checkpoints in Hugging Face layout, a
// `latest` file naming the newest one, metrics.jsonl) stands for the checkpoint `latest` names
// wherever a model folder is taken: every command and the Python binding resolve a model path here.
#pragma once

#include <string>

namespace moe {

// A folder holding a `latest` file and no config.json of its own.
bool is_run_folder(const std::string& path);

// RUN/<name> for a run folder (name = the first line of RUN/latest), else `path` unchanged. A
// `latest` naming no checkpoint (not a plain folder name, a folder that is gone, one without
// config.json) is a moe::Error naming RUN/latest and what it names.
std::string resolve_model_path(const std::string& path);

}  // namespace moe
