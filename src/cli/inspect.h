// What `moe inspect --json` prints, as a function: the command and the Python bindings (moe.inspect)
// both build their JSON here, so the two cannot drift apart.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "spec/accounting.h"
#include "spec/model_spec.h"

namespace moe::cli {

// Accounting is closed-form in the workload, so it may be huge (--context 1e11); the caps keep every
// figure finite and exact enough in a double. The ranges of --context, --batch, --prompt, --ep, --kv-bytes.
inline constexpr int64_t kMaxAccountedTokens = int64_t{1} << 50;  // ~1.1e15
inline constexpr int64_t kMaxAccountedEpRanks = int64_t{1} << 20;
inline constexpr double kMaxKvBytesPerElem = 64.0;

// One model to account for: a catalog entry, a config.json, a model folder (a checkpoint folder's
// safetensors headers are cross-checked against the registry), or a config given as JSON.
struct InspectTarget {
  std::string arg;          // the catalog name or path as given; with config_text: the report's name
  std::string config_text;  // when not empty: a config.json's contents, accounted instead of a path
};

// The JSON of `moe inspect --json`: one object for one target, {"models": [...]} for several.
// Errors as the command reports them (a target that is no catalog model and no file is a UsageError).
nlohmann::ordered_json inspect_json(const std::vector<InspectTarget>& targets, const Workload& workload, bool explain);

}  // namespace moe::cli
