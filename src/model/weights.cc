// WeightStore (see weights.h).
#include "model/weights.h"

#include <span>

#include <fmt/ranges.h>

#include "util/dtype.h"
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
    if (!e.scale_of.empty()) {
      if (info.dtype != DType::kF32 && info.dtype != DType::kBF16) {
        fail("weights", "{}: block scales {} stored as {}; only F32 / BF16 scales are supported", checkpoint_.path(),
             e.name, dtype_name(info.dtype));
      }
      scale_of_[e.scale_of] = e.name;
    }
  }
  block_rows_ = spec.quant.block_rows;
  block_cols_ = spec.quant.block_cols;
  for (const std::string& name : checkpoint_.tensor_names()) {
    // A multimodal wrapper (Llama 4) keeps its vision tower and projector beside the text model: not run.
    if (spec.multimodal_wrapper && !name.starts_with(spec.tensor_prefix)) continue;
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
  // Zero-copy only when the mapped data is aligned for its type (the format does not promise it).
  const bool zero_copy = info.dtype == DType::kF32 || info.dtype == DType::kBF16;
  if (zero_copy && checkpoint_.file_of(name).is_aligned(name, dtype_size(info.dtype))) {
    return WeightView{checkpoint_.file_of(name).bytes(name).data(), info.dtype, s[1]};
  }
  return WeightView{f32(name), DType::kF32, s[1]};
}

WeightView WeightStore::rows(const std::string& name, int64_t first_row, int64_t n_rows) {
  const std::vector<int64_t>& s = shape(name);
  if (s.size() < 2)
    fail("weights", "{}: tensor {} should have at least 2 dims, found {}", checkpoint_.path(), name, s.size());
  const int64_t cols = s.back();
  int64_t total = 1;
  for (size_t i = 0; i + 1 < s.size(); ++i) total *= s[i];
  if (first_row < 0 || n_rows < 0 || first_row + n_rows > total)
    fail("weights", "{}: rows [{}, {}) of tensor {} are outside its {} rows", checkpoint_.path(), first_row,
         first_row + n_rows, name, total);
  const TensorInfo& info = checkpoint_.info(name);
  const bool zero_copy = info.dtype == DType::kF32 || info.dtype == DType::kBF16;
  if (zero_copy && checkpoint_.file_of(name).is_aligned(name, dtype_size(info.dtype))) {
    const uint8_t* base = checkpoint_.file_of(name).bytes(name).data();
    return WeightView{base + first_row * cols * static_cast<int64_t>(dtype_size(info.dtype)), info.dtype, cols};
  }
  return WeightView{f32(name) + first_row * cols, DType::kF32, cols};
}

const float* WeightStore::f32(const std::string& name) {
  auto it = converted_.find(name);
  if (it == converted_.end()) {
    shape(name);  // throws naming the tensor when absent
    const DType t = checkpoint_.info(name).dtype;
    if (t == DType::kF8E4M3) {
      it = converted_.emplace(name, dequantize_fp8(name)).first;
    } else {
      it = converted_.emplace(name, checkpoint_.file_of(name).to_f32(name)).first;
    }
  }
  return it->second.data();
}

// W[i, j] = fp8(q[i, j]) * scale_inv[i / block_rows, j / block_cols] (DeepSeek-V3 block FP8).
std::vector<float> WeightStore::dequantize_fp8(const std::string& name) const {
  const auto it = scale_of_.find(name);
  const std::vector<int64_t>& s = checkpoint_.info(name).shape;
  if (it == scale_of_.end() || s.size() != 2) {
    fail("weights", "{}: FP8 tensor {} has no block scales (weight_scale_inv) or is not a matrix", checkpoint_.path(),
         name);
  }
  const std::vector<float> scale = checkpoint_.file_of(it->second).to_f32(it->second);  // [ceil(N/br), ceil(K/bc)]
  const std::span<const uint8_t> q = checkpoint_.file_of(name).bytes(name);             // [N, K]
  const int64_t N = s[0], K = s[1], scale_cols = (K + block_cols_ - 1) / block_cols_;
  std::vector<float> w(static_cast<size_t>(N * K));  // [N, K]
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t j = 0; j < K; ++j) {
      w[i * K + j] = f8e4m3_to_f32(q[i * K + j]) * scale[(i / block_rows_) * scale_cols + j / block_cols_];
    }
  }
  return w;
}

std::vector<float>& WeightStore::own(size_t n) {
  owned_.emplace_back(n, 0.0f);
  return owned_.back();
}

}  // namespace moe
