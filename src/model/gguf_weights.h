// The tensors of a GGUF file under the Hugging Face names the decoder reads (model.layers.N.self_attn.
// q_proj.weight, ...), as zero-copy views into the mapping: GGUF's 3-D expert tensors blk.N.ffn_*_exps
// [E, F, D] become E per-expert matrices (contiguous slices), a fused ffn_gate_up_exps [E, 2F, D] splits
// into gate (rows 0..F-1) and up, and gpt-oss's experts (which GGUF stores unfused, in Linear layout)
// appear as model.layers.N.mlp.experts.E.{gate,up,down}_proj.weight with their biases as
// mlp.experts.{gate,up,down}_proj_bias [E, F or D]. DeepSeek's attn_k_b / attn_v_b (kv_b_proj split and k
// transposed by newer converters) are put back into kv_b_proj, dequantized to f32.
// Every tensor of the file must be placed, and every tensor the model needs must be there with the shape
// the ModelSpec implies: otherwise a [gguf] error names the tensor.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "spec/model_spec.h"

namespace moe {

struct SourceTensor {
  std::vector<int64_t> shape;  // outermost first ([out, in] for Linear weights)
  DType dtype = DType::kF32;
  const uint8_t* data = nullptr;  // rows of shape.back() elements, packed
  uint64_t nbytes = 0;
  std::string origin;  // the GGUF tensor it comes from (for messages)
};

class GgufTensorSource {
 public:
  // kv_b_data false (accounting, `moe inspect`): a DeepSeek file's split attn_k_b / attn_v_b are not folded
  // back into kv_b_proj's f32 rows (4 GB for DeepSeek-V3); kv_b_proj is then listed with its shape and no
  // data (origin kKvBFromSplit), the split tensors under "<layer>.self_attn.attn_{k,v}_b.gguf".
  GgufTensorSource(const std::string& path, const ModelSpec& spec, bool kv_b_data = true);
  static constexpr const char* kKvBFromSplit = "attn_k_b + attn_v_b";

  const GgufFile& file() const { return file_; }
  const SourceTensor* find(const std::string& hf_name) const;
  const std::map<std::string, SourceTensor>& tensors() const { return tensors_; }

 private:
  void map_tensor(const ModelSpec& spec, const GgufTensor& t);
  bool map_experts(const ModelSpec& spec, const GgufTensor& t, DType dt, int64_t layer, const std::string& rest);
  void add(const std::string& name, std::vector<int64_t> shape, DType dtype, const uint8_t* data,
           const std::string& origin);
  void rebuild_kv_b(const ModelSpec& spec, bool with_data);
  void check_split_experts(const ModelSpec& spec);

  GgufFile file_;
  std::map<std::string, SourceTensor> tensors_;
  std::deque<std::vector<float>> owned_;
  std::vector<std::pair<std::string, std::string>> layer_names_;  // GGUF layer suffix -> HF suffix (gguf_names)
};

}  // namespace moe
