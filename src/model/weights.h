// Model weights out of a Hugging Face checkpoint, checked against the TensorRegistry: a missing,
// misshapen or unexpected tensor is an error that names it. Linear weights stored as f32 or
// bf16 are zero-copy views into the memory map; other float dtypes are converted to f32 once;
// FP8 E4M3 weights with block scales (weight_scale_inv, DeepSeek-V3) are dequantized to f32 on load.
// MTP-layer tensors (DeepSeek-V3 num_nextn_predict_layers) may be present or absent: not run.
#pragma once

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "kernels/matmul.h"
#include "spec/model_spec.h"
#include "spec/tensor_registry.h"

namespace moe {

class WeightStore {
 public:
  // Opens the checkpoint (a folder with model.safetensors or shards) and validates every tensor
  // against build_registry(spec). Throws moe::Error "[weights] ...".
  WeightStore(const std::string& path, const ModelSpec& spec);

  bool has(const std::string& name) const { return checkpoint_.has(name); }
  // Shape as stored; throws naming the tensor when absent.
  const std::vector<int64_t>& shape(const std::string& name) const;
  // A [rows, cols] Linear weight as a matmul view (f32/bf16 zero-copy, others converted).
  WeightView matrix(const std::string& name);
  // Rows [first_row, first_row + rows) of a tensor seen as [R, C] (C its last dimension, R the product
  // of the others) as a matmul view with ld C: one expert's block of a fused [E, rows, C] tensor, or
  // the up half of a fused [2F, D] gate_up matrix. Zero-copy like matrix(); throws when out of range.
  WeightView rows(const std::string& name, int64_t first_row, int64_t rows);
  // Any float tensor as f32 (converted once, owned by the store): norms, biases, sinks, fused experts.
  const float* f32(const std::string& name);
  // f32(name) when the tensor exists, else null.
  const float* f32_or_null(const std::string& name) { return has(name) ? f32(name) : nullptr; }
  // Buffers the caller fills once (re-laid-out experts); stable addresses.
  std::vector<float>& own(size_t n);
  const Checkpoint& checkpoint() const { return checkpoint_; }

 private:
  void validate(const ModelSpec& spec);
  std::vector<float> dequantize_fp8(const std::string& name) const;

  Checkpoint checkpoint_;
  std::map<std::string, std::vector<float>> converted_;
  std::deque<std::vector<float>> owned_;
  std::map<std::string, std::string> scale_of_;  // FP8 weight -> its block-scale tensor
  int64_t block_rows_ = 128, block_cols_ = 128;
};

}  // namespace moe
