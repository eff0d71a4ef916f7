// TensorRegistry: every tensor of a model with its exact Hugging Face checkpoint name, stored
// shape and dtype, role, layer and expert. The loader checks files against it, the accounting
// sums it by role, the trainer allocates from it, the checkpoint writer names tensors from it.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "spec/model_spec.h"
#include "util/dtype.h"

namespace moe {

enum class Role {
  kEmbedding,        // input token embedding (also MTP copies)
  kAttention,        // q/k/v/o, MLA projections, sinks, DeepSeek-V4 compressor and indexer
  kNorm,             // RMSNorm / LayerNorm weights, QK-norm weights
  kRouter,           // gate weight, router bias, score-correction bias
  kSharedExpert,     // always-on experts (and Qwen2-MoE's shared_expert_gate)
  kRoutedExpert,     // top-k routed experts
  kDenseFfn,         // dense MLP of non-MoE layers
  kLmHead,           // output projection (also MTP shared_head.head)
  kMtp,              // MTP-only projections (eh_proj, e_proj, h_proj)
  kHyperConnection,  // DeepSeek-V4 mHC mixers
  kQuantScale,       // block scales of quantized weights: bytes, not parameters
  kIndexTable,       // integer tables (DeepSeek-V4 tid2eid): bytes, not parameters
};
constexpr int kNumRoles = 12;
const char* role_name(Role r);

struct TensorEntry {
  std::string name;            // exact checkpoint name
  std::vector<int64_t> shape;  // as stored ([out, in] for Linear weights)
  DType dtype = DType::kBF16;  // as stored
  Role role = Role::kAttention;
  int layer = -1;   // decoder layer (MTP layers continue after the main ones), -1 if none
  int expert = -1;  // routed/shared expert index, -1 if none or fused
  bool is_mtp = false;
  int64_t n_params = 0;          // logical parameters (packed FP4 counts two per byte; scales 0)
  int64_t n_experts_packed = 0;  // routed tensors: experts stored in it (1, or E when fused)
  std::string scale_of;          // quant scales: the weight they belong to

  int64_t numel() const;
  // Block-quantized types (a GGUF's): rows of shape.back() elements, each a whole number of blocks.
  int64_t nbytes() const;
  bool is_parameter() const { return n_params > 0; }
};

// kCheckpoint: as the published checkpoint stores it (FP8 + block scales, MXFP4 blocks, packed FP4).
// kDense: unquantized logical weights in dense_dtype (what a trainer allocates), same names
// where the family has one name for both.
enum class WeightFormat { kCheckpoint, kDense };

struct RegistryOptions {
  WeightFormat format = WeightFormat::kCheckpoint;
  DType dense_dtype = DType::kBF16;  // kDense: dtype of every floating tensor
  bool include_mtp = true;
};

struct TensorRegistry {
  std::vector<TensorEntry> tensors;
  std::unordered_map<std::string, size_t> index;  // name -> position

  const TensorEntry* find(const std::string& name) const;
  size_t size() const { return tensors.size(); }
};

// Builds the registry of a model. Throws moe::Error if the spec cannot be laid out
// (for example a DeepSeek-V4 o_groups that does not divide the heads).
TensorRegistry build_registry(const ModelSpec& spec, const RegistryOptions& options = {});

// The dtype a config's torch_dtype names ("bfloat16" -> kBF16); bf16 when unknown.
DType dtype_from_torch_name(const std::string& torch_dtype);

}  // namespace moe
