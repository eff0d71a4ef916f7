// WeightStore (see weights.h).
#include "model/weights.h"

#include <fmt/ranges.h>

#include "util/error.h"

namespace moe {

WeightStore::WeightStore(const std::string& path, const ModelSpec& spec) : checkpoint_(Checkpoint::open(path)) {
  validate(spec);
}

void WeightStore::validate(const ModelSpec& spec) {
  RegistryOptions with_mtp;
  with_mtp.include_mtp = true;
  const TensorRegistry registry = build_registry(spec, with_mtp);
  for (const TensorEntry& e : registry.tensors) {
    if (!checkpoint_.has(e.name)) {
      if (e.is_mtp) continue;  // MTP weights are optional: the decoder does not run them
      fail("weights", "{}: missing tensor {} (shape [{}])", checkpoint_.path(), e.name, fmt::join(e.shape, ", "));
    }
    const TensorInfo& info = checkpoint_.info(e.name);
    if (info.shape != e.shape) {
      fail("weights", "{}: tensor {} has shape [{}], the config implies [{}]", checkpoint_.path(), e.name,
           fmt::join(info.shape, ", "), fmt::join(e.shape, ", "));
    }
    if (dtype_is_float(e.dtype) != dtype_is_float(info.dtype) ||
        ((e.dtype == DType::kF8E4M3 || e.dtype == DType::kF8E5M2) && info.dtype != e.dtype)) {
      fail("weights", "{}: tensor {} is stored as {}, expected {}", checkpoint_.path(), e.name, dtype_name(info.dtype),
           dtype_name(e.dtype));
    }
    if (info.dtype == DType::kF8E4M3 || info.dtype == DType::kF8E5M2) {
      fail("weights", "{}: tensor {} is FP8 ({}); FP8 checkpoints are not supported by the decoder yet",
           checkpoint_.path(), e.name, dtype_name(info.dtype));
    }
  }
  for (const std::string& name : checkpoint_.tensor_names()) {
    if (!registry.find(name)) {
      fail("weights", "{}: unexpected tensor {} (not part of a {} model with this config)", checkpoint_.path(), name,
           spec.model_type);
    }
  }
}

const std::vector<int64_t>& WeightStore::shape(const std::string& name) const {
  if (!checkpoint_.has(name)) fail("weights", "{}: missing tensor {}", checkpoint_.path(), name);
  return checkpoint_.info(name).shape;
}

WeightView WeightStore::matrix(const std::string& name) {
  const std::vector<int64_t>& s = shape(name);
  if (s.size() != 2)
    fail("weights", "{}: tensor {} should be a matrix, found {} dims", checkpoint_.path(), name, s.size());
  const TensorInfo& info = checkpoint_.info(name);
  if (info.dtype == DType::kF32 || info.dtype == DType::kBF16) {
    return WeightView{checkpoint_.file_of(name).bytes(name).data(), info.dtype, s[1]};
  }
  return WeightView{f32(name), DType::kF32, s[1]};
}

const float* WeightStore::f32(const std::string& name) {
  auto it = converted_.find(name);
  if (it == converted_.end()) {
    shape(name);  // throws naming the tensor when absent
    it = converted_.emplace(name, checkpoint_.file_of(name).to_f32(name)).first;
  }
  return it->second.data();
}

std::vector<float>& WeightStore::own(size_t n) {
  owned_.emplace_back(n, 0.0f);
  return owned_.back();
}

}  // namespace moe
