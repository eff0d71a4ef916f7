// Internal to spec/: RegistryBuilder adds tensors (with FP8 block scales where the checkpoint
// stores them) and the per-family layer builders use it.
#pragma once

#include <string>
#include <vector>

#include "spec/tensor_registry.h"

namespace moe::spec_detail {

class RegistryBuilder {
 public:
  RegistryBuilder(const ModelSpec& spec, const RegistryOptions& options, TensorRegistry& out);

  // Context applied to the next tensors.
  void at(int layer, bool is_mtp) {
    layer_ = layer;
    mtp_ = is_mtp;
  }
  void expert(int e) { expert_ = e; }

  // A plain tensor (norm, bias, embedding...) in the model dtype unless given.
  void add(const std::string& name, std::vector<int64_t> shape, Role role);
  void add(const std::string& name, std::vector<int64_t> shape, Role role, DType dtype);
  // A Linear weight [out, in] named base + ".weight"; FP8 checkpoints add base + scale suffix
  // unless quantizable is false or base matches modules_to_not_convert.
  void linear(const std::string& base, int64_t out, int64_t in, Role role, bool quantizable = true);
  // A routed tensor: n_experts_packed experts stacked in it (1 for one expert per tensor).
  void routed(const std::string& name, std::vector<int64_t> shape, int64_t n_experts_packed);
  void routed_linear(const std::string& base, int64_t out, int64_t in);
  // Entry with explicit stored shape/dtype and logical parameter count (packed formats).
  void packed(const std::string& name, std::vector<int64_t> shape, DType dtype, Role role, int64_t n_params,
              int64_t n_experts_packed);
  void scale(const std::string& name, std::vector<int64_t> shape, DType dtype, const std::string& weight);

  const ModelSpec& spec() const { return spec_; }
  bool checkpoint() const { return opt_.format == WeightFormat::kCheckpoint; }
  bool fp8() const { return checkpoint() && spec_.quant.method == QuantMethod::kFp8; }
  DType dtype() const { return dtype_; }
  bool include_mtp() const { return opt_.include_mtp; }

 private:
  TensorEntry& push(const std::string& name, std::vector<int64_t> shape, DType dtype, Role role);
  bool not_converted(const std::string& base) const;

  const ModelSpec& spec_;
  RegistryOptions opt_;
  TensorRegistry& out_;
  DType dtype_;
  int layer_ = -1;
  int expert_ = -1;
  bool mtp_ = false;
};

// Family layouts (registry_families.cc, registry_deepseek_v4.cc).
void build_llama_style(RegistryBuilder& b);
void build_dbrx(RegistryBuilder& b);
void build_deepseek_v4(RegistryBuilder& b);
void build_grok1(RegistryBuilder& b);       // registry_inspect.cc
void build_bailing(RegistryBuilder& b);     // registry_inspect.cc
void build_qwen3_next(RegistryBuilder& b);  // registry_inspect.cc

}  // namespace moe::spec_detail
