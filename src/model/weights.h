// Model weights out of a Hugging Face checkpoint (safetensors) or a GGUF file, checked against what the
// ModelSpec implies: a missing, misshapen or unexpected tensor is an error that names it. Both sources give
// tensors under the checkpoint names (model/gguf_weights.h maps GGUF's). Linear weights stored as f32, bf16
// or a block-quantized type are zero-copy views into the memory map; other float dtypes are converted to
// f32 once; FP8 E4M3 matrices with block scales (weight_scale_inv: DeepSeek-V3, Kimi-K2, Qwen3-FP8) stay
// FP8, held as F8_E4M3_B128 rows (each 128 codes of a row after their block's f32 scale, 1.03 bytes per
// weight; the file's pages of the codes released) and computed on by the FP8 kernels; f32(name) still
// dequantizes one for a caller that needs floats, and a matrix whose row length or scale block width is
// not a multiple of 128 is dequantized to f32 at load. MTP-layer tensors (DeepSeek-V3 num_nextn_predict_layers) may be present or absent: not run.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "kernels/matmul.h"
#include "kernels/packed_weights.h"
#include "model/gguf_weights.h"
#include "runtime/aligned.h"
#include "spec/model_spec.h"
#include "spec/tensor_registry.h"

namespace moe {

class WeightStore {
 public:
  // Opens a checkpoint folder (model.safetensors or shards), a .safetensors file, or a .gguf file and
  // validates every tensor. Throws moe::Error "[weights] ..." (safetensors) or "[gguf] ..." (GGUF).
  WeightStore(const std::string& path, const ModelSpec& spec);

  bool has(const std::string& name) const;
  // Shape as stored; throws naming the tensor when absent.
  const std::vector<int64_t>& shape(const std::string& name) const;
  // A [rows, cols] Linear weight as a matmul view (f32/bf16/block types zero-copy, others converted).
  WeightView matrix(const std::string& name);
  // Rows [first_row, first_row + rows) of a tensor seen as [R, C] (C its last dimension, R the product
  // of the others) as a matmul view with ld C: one expert's block of a fused [E, rows, C] tensor, or
  // the up half of a fused [2F, D] gate_up matrix. Zero-copy like matrix(); throws when out of range.
  WeightView rows(const std::string& name, int64_t first_row, int64_t rows);
  // Any float tensor as f32 (converted once, owned by the store): norms, biases, sinks, fused experts.
  const float* f32(const std::string& name);
  // A tensor's stored bytes (any dtype; for re-layouts such as MXFP4 blocks), valid as long as the store.
  const uint8_t* raw_bytes(const std::string& name) const { return raw(name).data; }
  // A float tensor as a fresh f32 copy the store does not keep (a converter streaming tensors one by one).
  std::vector<float> read_f32(const std::string& name) const;
  // f32(name) when the tensor exists, else null.
  const float* f32_or_null(const std::string& name) { return has(name) ? f32(name) : nullptr; }
  // Buffers the caller fills once (re-laid-out experts); stable addresses.
  std::vector<float>& own(size_t n);
  std::vector<uint8_t>& own_bytes(size_t n);
  // A matrix the caller re-laid out into the kernels' panels (kept as long as the store).
  WeightView own_packed(PackedWeights&& w);
  // A matrix the caller re-laid out into `rows` (n rows of `cols`, dtype t, in the caller's buffer, free
  // again on return): packed into the kernels' panels when the ISA has them for t, else copied; kept.
  WeightView keep_matrix(const uint8_t* rows, DType t, int64_t n, int64_t cols);
  // After a caller has copied a view's bytes (packed them into panels): drops this process's pages of its
  // rows from the file mapping, so the weights are resident once. Views of memory the store does not map
  // are left alone. Returns the bytes released.
  size_t release(const WeightView& v, int64_t rows);
  bool is_gguf() const { return gguf_ != nullptr; }
  // The file and byte offset of [p, p + n) when the range lies in one of the store's memory-mapped files
  // (a zero-copy view); nullopt for memory the store converted or owns.
  std::optional<std::pair<std::string, uint64_t>> locate(const void* p, uint64_t n) const;

 private:
  struct Raw {
    const std::vector<int64_t>* shape;
    DType dtype;
    const uint8_t* data;
    uint64_t nbytes;
  };
  Raw raw(const std::string& name) const;
  void validate(const ModelSpec& spec);
  std::vector<float> dequantize_fp8(const std::string& name) const;
  // The F8_E4M3_B128 rows of an FP8 matrix (built once), or null when its layout does not allow them.
  const uint8_t* fp8_blocks(const std::string& name);
  const std::string& path() const { return path_; }

  std::string path_;
  std::optional<Checkpoint> checkpoint_;
  std::unique_ptr<GgufTensorSource> gguf_;
  std::map<std::string, std::vector<float>> converted_;
  std::deque<std::vector<float>> owned_;
  std::deque<std::vector<uint8_t>> owned_bytes_;
  std::deque<PackedWeights> owned_packed_;
  std::map<std::string, std::string> scale_of_;        // FP8 weight -> its block-scale tensor
  std::map<std::string, AlignedBuffer<uint8_t>> fp8_;  // FP8 weight -> its F8_E4M3_B128 rows
  int64_t block_rows_ = 128, block_cols_ = 128;
};

}  // namespace moe
