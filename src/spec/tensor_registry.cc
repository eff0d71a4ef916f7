// TensorRegistry: the builder shared by the family layouts, lookup, and role names.
#include "spec/tensor_registry.h"

#include "spec/registry_builder.h"
#include "util/check.h"
#include "util/error.h"

namespace moe {

int64_t TensorEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t TensorEntry::nbytes() const {
  if (!dtype_is_block(dtype)) return numel() * static_cast<int64_t>(dtype_size(dtype));
  const int64_t cols = shape.empty() ? 1 : shape.back();
  return cols == 0 ? 0 : numel() / cols * dtype_row_bytes(dtype, cols);
}

const TensorEntry* TensorRegistry::find(const std::string& name) const {
  auto it = index.find(name);
  return it == index.end() ? nullptr : &tensors[it->second];
}

const char* role_name(Role r) {
  switch (r) {
    case Role::kEmbedding:
      return "embedding";
    case Role::kAttention:
      return "attention";
    case Role::kNorm:
      return "norm";
    case Role::kRouter:
      return "router";
    case Role::kSharedExpert:
      return "shared_expert";
    case Role::kRoutedExpert:
      return "routed_expert";
    case Role::kDenseFfn:
      return "dense_ffn";
    case Role::kLmHead:
      return "lm_head";
    case Role::kMtp:
      return "mtp";
    case Role::kHyperConnection:
      return "hyper_connection";
    case Role::kQuantScale:
      return "quant_scale";
    case Role::kIndexTable:
      return "index_table";
  }
  return "?";
}

DType dtype_from_torch_name(const std::string& t) {
  if (t == "float32" || t == "float") return DType::kF32;
  if (t == "float16" || t == "half") return DType::kF16;
  return DType::kBF16;
}

namespace spec_detail {
namespace {

// Glob match where '*' matches any run of characters (modules_to_not_convert patterns).
bool glob_match(const char* p, const char* s) {
  if (*p == '\0') return *s == '\0';
  if (*p == '*') return glob_match(p + 1, s) || (*s != '\0' && glob_match(p, s + 1));
  return *s != '\0' && *p == *s && glob_match(p + 1, s + 1);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

RegistryBuilder::RegistryBuilder(const ModelSpec& spec, const RegistryOptions& options, TensorRegistry& out)
    : spec_(spec), opt_(options), out_(out) {
  dtype_ = options.format == WeightFormat::kDense ? options.dense_dtype : dtype_from_torch_name(spec.torch_dtype);
}

TensorEntry& RegistryBuilder::push(const std::string& name, std::vector<int64_t> shape, DType dtype, Role role) {
  if (out_.index.count(name)) fail("spec", "{}: tensor name {} laid out twice (registry bug)", spec_.source, name);
  for (int64_t d : shape)
    if (d <= 0)
      fail("spec", "{}: tensor {} would have a dimension of {} (check the config sizes)", spec_.source, name, d);
  out_.index[name] = out_.tensors.size();
  TensorEntry& e = out_.tensors.emplace_back();
  e.name = name;
  e.shape = std::move(shape);
  e.dtype = dtype;
  e.role = role;
  e.layer = layer_;
  e.expert = expert_;
  e.is_mtp = mtp_;
  e.n_params = e.numel();
  return e;
}

void RegistryBuilder::add(const std::string& name, std::vector<int64_t> shape, Role role) {
  push(name, std::move(shape), dtype_, role);
}

void RegistryBuilder::add(const std::string& name, std::vector<int64_t> shape, Role role, DType dtype) {
  if (!checkpoint() && dtype_is_float(dtype)) dtype = opt_.dense_dtype;
  push(name, std::move(shape), dtype, role);
}

bool RegistryBuilder::not_converted(const std::string& base) const {
  for (const auto& pattern : spec_.quant.modules_to_not_convert) {
    const std::string p = pattern + "*";
    if (glob_match(p.c_str(), base.c_str())) return true;
  }
  return false;
}

void RegistryBuilder::scale(const std::string& name, std::vector<int64_t> shape, DType dtype,
                            const std::string& weight) {
  TensorEntry& e = push(name, std::move(shape), dtype, Role::kQuantScale);
  e.n_params = 0;
  e.scale_of = weight;
}

void RegistryBuilder::linear(const std::string& base, int64_t out, int64_t in, Role role, bool quantizable) {
  const std::string w = base + ".weight";
  if (!(fp8() && quantizable && !not_converted(base))) {
    push(w, {out, in}, dtype_, role);
    return;
  }
  push(w, {out, in}, DType::kF8E4M3, role);
  const bool v4 = spec_.family == Family::kDeepseekV4;
  const DType sd = spec_.quant.scale_fmt == "ue8m0" ? DType::kF8E8M0 : DType::kF32;
  scale(v4 ? base + ".scale" : base + ".weight_scale_inv",
        {ceil_div(out, spec_.quant.block_rows), ceil_div(in, spec_.quant.block_cols)}, sd, w);
}

void RegistryBuilder::routed(const std::string& name, std::vector<int64_t> shape, int64_t n_experts_packed) {
  TensorEntry& e = push(name, std::move(shape), dtype_, Role::kRoutedExpert);
  e.n_experts_packed = n_experts_packed;
}

void RegistryBuilder::routed_linear(const std::string& base, int64_t out, int64_t in) {
  const size_t first = out_.tensors.size();
  linear(base, out, in, Role::kRoutedExpert);
  out_.tensors[first].n_experts_packed = 1;
}

void RegistryBuilder::packed(const std::string& name, std::vector<int64_t> shape, DType dtype, Role role,
                             int64_t n_params, int64_t n_experts_packed) {
  TensorEntry& e = push(name, std::move(shape), dtype, role);
  e.n_params = n_params;
  e.n_experts_packed = n_experts_packed;
}

}  // namespace spec_detail

TensorRegistry build_registry(const ModelSpec& spec, const RegistryOptions& options) {
  TensorRegistry reg;
  spec_detail::RegistryBuilder b(spec, options, reg);
  switch (spec.family) {
    case Family::kDbrx:
      spec_detail::build_dbrx(b);
      break;
    case Family::kDeepseekV4:
      spec_detail::build_deepseek_v4(b);
      break;
    case Family::kGrok1:
      spec_detail::build_grok1(b);
      break;
    case Family::kBailingMoe:
      spec_detail::build_bailing(b);
      break;
    case Family::kQwen3Next:
      spec_detail::build_qwen3_next(b);
      break;
    default:
      spec_detail::build_llama_style(b);
      break;
  }
  return reg;
}

}  // namespace moe
