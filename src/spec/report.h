// Reports of `moe inspect`: one model (parameters, breakdown, cost), several models side by side,
// and the catalog list, as an aligned terminal table, Markdown, or JSON.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "spec/accounting.h"
#include "spec/catalog.h"
#include "spec/model_spec.h"
#include "spec/tensor_registry.h"

namespace moe {

struct ModelReport {
  std::string name;                     // catalog name or path
  const CatalogEntry* entry = nullptr;  // when the model is in the catalog
  ModelSpec spec;
  TensorRegistry registry;  // checkpoint format, or a file's own tensors (make_report's registry)
  ParamCounts counts;
  Cost cost;
  // The stored types of a model file whose tensors set the registry's dtypes (a GGUF: "Q4_K", "Q6_K", ...),
  // with the count of tensors of each; empty when the spec's dtype applies.
  std::vector<std::pair<std::string, int64_t>> file_dtypes;
};

// file_registry (optional): a model file's tensors as it stores them (a GGUF's), used instead of the spec's
// registry, so the bytes, the decode floor and the storage line are the file's.
ModelReport make_report(ModelSpec spec, std::string name, const CatalogEntry* entry, const Workload& workload,
                        std::optional<TensorRegistry> file_registry = std::nullopt);

enum class ReportFormat { kText, kMarkdown };

// A small table: rendered with aligned columns (text) or as a Markdown table.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> right_align;  // per column; default: first column left, others right
  std::string render(ReportFormat format) const;
};

std::string render_report(const ModelReport& r, ReportFormat format, bool explain);
std::string render_comparison(const std::vector<ModelReport>& reports, ReportFormat format);
std::string render_catalog(ReportFormat format);
// Every tensor of the registry: name, shape, dtype, role, layer, expert, params.
std::string render_tensors(const ModelReport& r, ReportFormat format);

// The JSON object of one model: total_params, total_params_with_mtp, activated_params,
// activated_params_no_embedding, activated_params_non_embedding (integers), and the objects
// spec, breakdown, cost, kv_cache, weights, decode_floor, ep, published (catalog models).
nlohmann::ordered_json report_json(const ModelReport& r, bool explain);
// `moe inspect --list --json`: {"catalog": [one object per catalog model]}.
nlohmann::ordered_json catalog_json();
// Every registry tensor as {name, shape, dtype, role, mtp, layer, expert, params} (layer and expert
// null where they do not apply): `moe inspect --tensors --json`.
nlohmann::ordered_json tensors_json(const ModelReport& r);

// The ParamCounts field a convention names ("activated_params_no_embedding"); throws if unknown.
int64_t counts_field(const ParamCounts& c, const std::string& convention);

// 46,702,792,704
std::string with_commas(int64_t n);

}  // namespace moe
