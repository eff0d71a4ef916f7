// Checkpoint cross-check for `moe inspect DIR`: compares every TensorRegistry entry with the
// safetensors headers (no tensor data is read) and lists missing, unexpected, wrong-shape and
// wrong-dtype tensors; counts the parameters the headers hold beside the computed count.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "spec/tensor_registry.h"

namespace moe {

struct TensorMismatch {
  std::string name;
  std::string expected;
  std::string found;
};

struct RegistryCheck {
  std::string path;
  WeightFormat format = WeightFormat::kCheckpoint;  // registry layout compared
  size_t n_registry = 0, n_file = 0;
  std::vector<std::string> missing;      // in the registry, not in the files
  std::vector<std::string> missing_mtp;  // MTP tensors absent (transformers drops them when saving)
  std::vector<std::string> unexpected;   // in the files, not in the registry
  std::vector<TensorMismatch> wrong_shape, wrong_dtype;
  int64_t header_params = 0;    // parameters in the headers (registry's logical count where matched; scales 0)
  int64_t header_elements = 0;  // raw stored elements
  int64_t header_bytes = 0;
  int64_t header_scale_bytes = 0;  // quantization scales and integer tables: bytes, not parameters
  int64_t registry_params = 0;     // computed count of the same scope (MTP included when present in files)
  bool ok() const { return missing.empty() && unexpected.empty() && wrong_shape.empty() && wrong_dtype.empty(); }
  size_t n_problems() const { return missing.size() + unexpected.size() + wrong_shape.size() + wrong_dtype.size(); }
};

// Compares a registry with the tensors of a checkpoint (opened header-only or not).
RegistryCheck check_checkpoint(const TensorRegistry& registry, const Checkpoint& checkpoint);

// Opens the checkpoint at dir header-only and compares it with the spec's registry, trying the
// checkpoint layout and the dense layout (bf16 / the config dtype) and keeping the closer one.
RegistryCheck check_checkpoint_dir(const ModelSpec& spec, const std::string& dir);

// True for tensor names that hold quantization scales, not parameters.
bool is_scale_tensor_name(const std::string& name);

std::string render_check(const RegistryCheck& check, size_t max_listed = 20);
nlohmann::ordered_json check_json(const RegistryCheck& check);

}  // namespace moe
