// JSON form of `moe inspect`: integer parameter counts at the top level, then the spec,
// breakdown, cost, kv_cache, weights, decode_floor, ep and published objects.
#include <map>

#include "spec/report.h"
#include "util/error.h"
#include "util/json_out.h"

namespace moe {
namespace {

nlohmann::ordered_json spec_json(const ModelSpec& s) {
  nlohmann::ordered_json j;
  j["model_type"] = s.model_type;
  j["family"] = family_name(s.family);
  j["n_layer"] = s.n_layer;
  j["n_moe_layers"] = s.n_moe_layers();
  j["d_model"] = s.d_model;
  j["n_head"] = s.n_head;
  j["n_head_kv"] = s.n_head_kv;
  j["head_dim"] = s.head_dim;
  j["vocab"] = s.vocab;
  j["n_ff"] = s.n_ff;
  j["n_expert"] = s.n_expert;
  j["n_expert_used"] = s.n_expert_used;
  j["n_ff_expert"] = s.n_ff_expert;
  j["n_expert_shared"] = s.n_expert_shared;
  j["n_ff_shared"] = s.n_ff_shared;
  j["router_scoring"] = scoring_func_name(s.router.scoring);
  j["mla"] = s.is_mla;
  j["n_mtp_layers"] = s.n_mtp_layers;
  j["tie_word_embeddings"] = s.tie_word_embeddings;
  j["torch_dtype"] = s.torch_dtype;
  j["quantization"] = quant_method_name(s.quant.method);
  std::vector<std::string> kinds;
  for (const auto& l : s.layers)
    kinds.push_back(std::string(attention_kind_name(l.attention)) + (l.is_moe ? "+moe" : "+dense"));
  j["layers"] = kinds;
  j["unknown_keys"] = s.unknown_keys;
  j["notes"] = s.notes;
  return j;
}

nlohmann::ordered_json figures_json(const Cost& c, bool explain) {
  nlohmann::ordered_json j;
  for (const Figure& f : c.figures) {
    if (explain) {
      j[f.key] = {{"value", json_count(f.value)}, {"unit", f.unit}, {"formula", f.formula}};
    } else {
      j[f.key] = json_count(f.value);
    }
  }
  return j;
}

}  // namespace

int64_t counts_field(const ParamCounts& c, const std::string& convention) {
  static const std::map<std::string, int64_t ParamCounts::*> fields = {
      {"total_params", &ParamCounts::total_params},
      {"total_params_with_mtp", &ParamCounts::total_params_with_mtp},
      {"total_params_non_embedding", &ParamCounts::total_params_non_embedding},
      {"checkpoint_elements", &ParamCounts::checkpoint_elements},
      {"activated_params", &ParamCounts::activated_params},
      {"activated_params_no_embedding", &ParamCounts::activated_params_no_embedding},
      {"activated_params_non_embedding", &ParamCounts::activated_params_non_embedding},
  };
  auto it = fields.find(convention);
  if (it == fields.end()) fail("catalog", "unknown counting convention \"{}\"", convention);
  return c.*(it->second);
}

namespace {

// The parameter counts, at the top level of the report.
void put_counts(nlohmann::ordered_json& j, const ParamCounts& c) {
  j["total_params"] = c.total_params;
  j["total_params_with_mtp"] = c.total_params_with_mtp;
  j["total_params_non_embedding"] = c.total_params_non_embedding;
  j["activated_params"] = c.activated_params;
  j["activated_params_no_embedding"] = c.activated_params_no_embedding;
  j["activated_params_non_embedding"] = c.activated_params_non_embedding;
  j["mtp_params"] = c.mtp_params;
  j["mtp_activated_params"] = c.mtp_activated_params;
  j["checkpoint_elements"] = c.checkpoint_elements;
  j["n_tensors"] = c.n_tensors;
  j["activated_fraction"] = c.activated_fraction;
  j["sparsity_ratio"] = c.sparsity_ratio;
}

// What the workload costs: FLOPs, KV cache, weight bytes, the decode floor, expert-parallel traffic.
void put_cost(nlohmann::ordered_json& j, const Cost& k, const ParamCounts& c) {
  j["cost"] = {{"context", json_count(k.workload.context)},
               {"batch", json_count(k.workload.batch)},
               {"prompt", json_count(k.workload.prompt)},
               {"decode_flops_per_token", json_count(k.decode_flops_per_token)},
               {"decode_matmul_flops_per_token", json_count(k.decode_matmul_flops)},
               {"decode_attention_flops_per_token", json_count(k.decode_attention_flops)},
               {"prefill_flops", json_count(k.prefill_flops)},
               {"prefill_flops_per_token", json_count(k.prefill_flops_per_token)}};
  j["kv_cache"] = {{"bytes_per_elem", json_count(k.workload.kv_bytes_per_elem)},
                   {"bytes_per_token", json_count(k.kv.bytes_per_token)},
                   {"bytes_at_context", json_count(k.kv.bytes_at_context)},
                   {"bytes_at_batch", json_count(k.kv.bytes_at_batch)},
                   {"layout", k.kv.layout}};
  j["weights"] = {{"checkpoint_bytes", json_count(k.weights.checkpoint)},
                  {"checkpoint_bytes_with_mtp", json_count(c.bytes_with_mtp)},
                  {"quant_scale_bytes", json_count(c.quant_scale_bytes)},
                  {"bf16_bytes", json_count(k.weights.bf16)},
                  {"fp8_bytes", json_count(k.weights.fp8)},
                  {"int4_bytes", json_count(k.weights.int4)}};
  j["decode_floor"] = {{"expected_experts_per_layer", json_count(k.floor.expected_experts_per_layer)},
                       {"always_on_bytes", json_count(k.floor.always_on_bytes)},
                       {"expert_bytes", json_count(k.floor.expert_bytes)},
                       {"kv_bytes", json_count(k.floor.kv_bytes)},
                       {"bytes_per_step", json_count(k.floor.bytes_per_step)},
                       {"bytes_per_token", json_count(k.floor.bytes_per_token)}};
  j["ep"] = {{"ranks", json_count(k.ep.ranks)},
             {"remote_copies_per_token_layer", json_count(k.ep.remote_copies_per_token_layer)},
             {"remote_ranks_per_token_layer", json_count(k.ep.remote_ranks_per_token_layer)},
             {"dispatch_bf16_bytes_per_token_layer", json_count(k.ep.dispatch_bf16_bytes)},
             {"dispatch_fp8_bytes_per_token_layer", json_count(k.ep.dispatch_fp8_bytes)},
             {"combine_bf16_bytes_per_token_layer", json_count(k.ep.combine_bf16_bytes)},
             {"dispatch_bf16_bytes_dedup_per_token_layer", json_count(k.ep.dispatch_bf16_bytes_dedup)},
             {"bytes_per_token_all_layers", json_count(k.ep.per_token_all_layers_bytes)},
             {"bytes_per_step", json_count(k.ep.per_step_bytes)},
             {"weight_bytes_rank_max", json_count(k.ep.weight_bytes_rank_max)},
             {"weight_bytes_rank_min", json_count(k.ep.weight_bytes_rank_min)}};
}

// A catalog model's published counts and whether ours match them under its counting conventions.
nlohmann::ordered_json published_json(const CatalogEntry& e, const ParamCounts& c) {
  return {
      {"total", e.published_total},
      {"activated", e.published_activated},
      {"total_with_mtp", e.published_total_with_mtp},
      {"total_convention", e.total_convention},
      {"activated_convention", e.activated_convention},
      {"total_matches", e.total_includes_vision
                            ? false
                            : e.matches(static_cast<double>(counts_field(c, e.total_convention)), e.published_total)},
      {"activated_matches",
       !e.published_activated.empty() &&
           e.matches(static_cast<double>(counts_field(c, e.activated_convention)), e.published_activated)},
      {"match_tolerance", e.tolerance},
      {"total_includes_vision", e.total_includes_vision},
      {"source", e.source},
      {"notes", e.notes}};
}

}  // namespace

nlohmann::ordered_json report_json(const ModelReport& r, bool explain) {
  const ParamCounts& c = r.counts;
  nlohmann::ordered_json j;
  j["name"] = r.name;
  put_counts(j, c);
  j["spec"] = spec_json(r.spec);
  j["file_dtypes"] = nullptr;  // a model file's stored types (tensors of each), when they set the bytes
  if (!r.file_dtypes.empty()) {
    nlohmann::ordered_json d = nlohmann::ordered_json::object();
    for (const auto& [name, n] : r.file_dtypes) d[name] = n;
    j["file_dtypes"] = d;
  }
  nlohmann::ordered_json b;
  for (const RoleCount& rc : c.breakdown)
    b[role_name(rc.role)] = {
        {"tensors", rc.n_tensors}, {"params", rc.params}, {"activated", rc.activated}, {"bytes", rc.bytes}};
  j["breakdown"] = b;
  put_cost(j, r.cost, c);
  if (explain) j["explain"] = figures_json(r.cost, true);
  j["published"] = nullptr;  // a catalog model's published counts
  if (r.entry) j["published"] = published_json(*r.entry, c);
  return j;
}

nlohmann::ordered_json tensors_json(const ModelReport& r) {
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (const TensorEntry& e : r.registry.tensors) {
    arr.push_back({{"name", e.name},
                   {"shape", e.shape},
                   {"dtype", dtype_name(e.dtype)},
                   {"role", role_name(e.role)},
                   {"mtp", e.is_mtp},
                   {"layer", e.layer >= 0 ? nlohmann::ordered_json(e.layer) : nullptr},
                   {"expert", e.expert >= 0 ? nlohmann::ordered_json(e.expert) : nullptr},
                   {"params", e.n_params}});
  }
  return arr;
}

nlohmann::ordered_json catalog_json() {
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (const CatalogEntry& e : catalog()) {
    const ModelSpec s = parse_model_spec(e.config, e.name);
    const ParamCounts c = count_params(s, build_registry(s));
    arr.push_back({{"name", e.name},
                   {"model_type", s.model_type},
                   {"file", e.file},
                   {"published_total", e.published_total},
                   {"published_activated", e.published_activated},
                   {"total_convention", e.total_convention},
                   {"activated_convention", e.activated_convention},
                   {"total_params", c.total_params},
                   {"total_params_with_mtp", c.total_params_with_mtp},
                   {"activated_params", c.activated_params},
                   {"activated_params_no_embedding", c.activated_params_no_embedding},
                   {"activated_params_non_embedding", c.activated_params_non_embedding}});
  }
  return {{"catalog", arr}};
}

}  // namespace moe
