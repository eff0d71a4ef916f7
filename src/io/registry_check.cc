// Registry vs safetensors headers: names, shapes, dtypes, and the header parameter count.
#include "io/registry_check.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "spec/accounting.h"
#include "util/error.h"

namespace moe {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void list(std::string& out, const char* title, const std::vector<std::string>& names, size_t max_listed) {
  if (names.empty()) return;
  out += fmt::format("  {} ({}):\n", title, names.size());
  for (size_t i = 0; i < names.size() && i < max_listed; ++i) out += fmt::format("    {}\n", names[i]);
  if (names.size() > max_listed) out += fmt::format("    ... and {} more\n", names.size() - max_listed);
}

void list(std::string& out, const char* title, const std::vector<TensorMismatch>& items, size_t max_listed) {
  if (items.empty()) return;
  out += fmt::format("  {} ({}):\n", title, items.size());
  for (size_t i = 0; i < items.size() && i < max_listed; ++i)
    out += fmt::format("    {}: expected {}, found {}\n", items[i].name, items[i].expected, items[i].found);
  if (items.size() > max_listed) out += fmt::format("    ... and {} more\n", items.size() - max_listed);
}

}  // namespace

bool is_scale_tensor_name(const std::string& n) {
  return ends_with(n, "weight_scale_inv") || ends_with(n, ".scale") || ends_with(n, "_scales") ||
         ends_with(n, "weight_scale") || ends_with(n, "input_scale") || ends_with(n, ".tid2eid");
}

RegistryCheck check_checkpoint(const TensorRegistry& reg, const Checkpoint& ckpt) {
  RegistryCheck c;
  c.path = ckpt.path();
  c.n_registry = reg.size();
  const std::vector<std::string> names = ckpt.tensor_names();
  c.n_file = names.size();
  const std::set<std::string> in_file(names.begin(), names.end());
  for (const TensorEntry& t : reg.tensors) {
    if (in_file.count(t.name)) {
      c.registry_params += t.n_params;
      continue;
    }
    (t.is_mtp ? c.missing_mtp : c.missing).push_back(t.name);
  }
  for (const std::string& n : names) {
    const TensorInfo& info = ckpt.info(n);
    const int64_t numel = info.numel();
    c.header_elements += numel;
    c.header_bytes += static_cast<int64_t>(info.nbytes());
    const TensorEntry* e = reg.find(n);
    const bool scale = e ? e->n_params == 0 : is_scale_tensor_name(n);
    if (scale) c.header_scale_bytes += static_cast<int64_t>(info.nbytes());
    if (!e) {
      c.unexpected.push_back(n);
      if (!scale) c.header_params += numel;
      continue;
    }
    if (info.shape != e->shape) c.wrong_shape.push_back({n, shape_str(e->shape), shape_str(info.shape)});
    if (info.dtype != e->dtype)
      c.wrong_dtype.push_back({n, std::string(dtype_name(e->dtype)), std::string(dtype_name(info.dtype))});
    // Packed formats (FP4 in I8, MXFP4 blocks) hold more logical parameters than stored elements.
    if (!scale) c.header_params += info.shape == e->shape && e->numel() > 0 ? numel / e->numel() * e->n_params : numel;
  }
  return c;
}

RegistryCheck check_checkpoint_dir(const ModelSpec& spec, const std::string& dir) {
  const Checkpoint ckpt = Checkpoint::open(dir, /*header_only=*/true);
  RegistryCheck best = check_checkpoint(build_registry(spec), ckpt);
  if (best.ok() && best.missing_mtp.empty()) return best;
  RegistryOptions dense{WeightFormat::kDense, dtype_from_torch_name(spec.torch_dtype), true};
  RegistryCheck alt = check_checkpoint(build_registry(spec, dense), ckpt);
  alt.format = WeightFormat::kDense;
  if (alt.n_problems() < best.n_problems()) best = std::move(alt);
  return best;
}

std::string render_check(const RegistryCheck& c, size_t max_listed) {
  std::string out =
      fmt::format("checkpoint {} ({} layout): {} tensors in the files, {} in the registry\n", c.path,
                  c.format == WeightFormat::kCheckpoint ? "quantized checkpoint" : "dense", c.n_file, c.n_registry);
  out += fmt::format("  parameters in the headers  {} ({})\n", format_count(static_cast<double>(c.header_params)),
                     c.header_params);
  out += fmt::format("  computed for those tensors {} ({})\n", format_count(static_cast<double>(c.registry_params)),
                     c.registry_params);
  out += fmt::format("  stored elements {} , bytes {}, of which scales/tables {}\n", c.header_elements,
                     format_bytes(static_cast<double>(c.header_bytes)),
                     format_bytes(static_cast<double>(c.header_scale_bytes)));
  list(out, "missing", c.missing, max_listed);
  list(out, "missing MTP tensors (checkpoints saved by transformers drop the MTP module)", c.missing_mtp, max_listed);
  list(out, "unexpected", c.unexpected, max_listed);
  list(out, "wrong shape", c.wrong_shape, max_listed);
  list(out, "wrong dtype", c.wrong_dtype, max_listed);
  out += c.ok() ? "  every tensor matches the registry\n" : fmt::format("  {} problems\n", c.n_problems());
  return out;
}

nlohmann::ordered_json check_json(const RegistryCheck& c) {
  auto mism = [](const std::vector<TensorMismatch>& v) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    for (const auto& m : v) a.push_back({{"name", m.name}, {"expected", m.expected}, {"found", m.found}});
    return a;
  };
  return {{"path", c.path},
          {"layout", c.format == WeightFormat::kCheckpoint ? "checkpoint" : "dense"},
          {"ok", c.ok()},
          {"n_file_tensors", c.n_file},
          {"n_registry_tensors", c.n_registry},
          {"header_params", c.header_params},
          {"registry_params", c.registry_params},
          {"header_elements", c.header_elements},
          {"header_bytes", c.header_bytes},
          {"header_scale_bytes", c.header_scale_bytes},
          {"missing", c.missing},
          {"missing_mtp", c.missing_mtp},
          {"unexpected", c.unexpected},
          {"wrong_shape", mism(c.wrong_shape)},
          {"wrong_dtype", mism(c.wrong_dtype)}};
}

}  // namespace moe
