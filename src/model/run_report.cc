// RunRecorder: aggregates per-layer MoE telemetry into the activation report.
#include "model/run_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

namespace moe {

RunRecorder::RunRecorder(const ModelSpec& spec, const TensorRegistry& registry, double always_on_weight_bytes)
    : spec_(spec), counts_(count_params(spec, registry)), always_on_bytes_(always_on_weight_bytes) {
  params_per_expert_.assign(spec.n_layer, 0);
  for (const TensorEntry& t : registry.tensors) {
    if (t.role != Role::kRoutedExpert || t.is_mtp || t.layer < 0 || t.layer >= spec.n_layer) continue;
    params_per_expert_[t.layer] += t.n_params;
  }
  for (int64_t& p : params_per_expert_) p /= std::max<int64_t>(1, spec.n_expert);
  always_on_params_ = counts_.activated_params - counts_.routed_activated;
  load_.assign(spec.n_layer, std::vector<int64_t>(std::max<int64_t>(1, spec.n_expert), 0));
  acc_.total_params = counts_.total_params;
  acc_.activated_params_analytic = counts_.activated_params;
  acc_.activated_params_measured_min = std::numeric_limits<int64_t>::max();
  acc_.distinct_experts_min = std::numeric_limits<int64_t>::max();
}

void RunRecorder::record(const ForwardStats& stats, int64_t n_tokens, double seconds, bool prefill,
                         uint64_t kv_bytes_before) {
  if (n_tokens <= 0) return;
  int64_t routed_params = 0, distinct = 0, expert_bytes = 0;
  for (size_t l = 0; l < stats.moe_layers.size() && l < load_.size(); ++l) {
    const MoeTelemetry& t = stats.moe_layers[l];
    int64_t rows = 0;
    for (size_t e = 0; e < t.tokens_per_expert.size() && e < load_[l].size(); ++e) {
      load_[l][e] += t.tokens_per_expert[e];
      rows += t.tokens_per_expert[e];
    }
    routed_params += rows * params_per_expert_[l];
    distinct += t.experts_touched;
    expert_bytes += t.expert_bytes_streamed;
  }
  // Per token of this call: always-on parameters plus the routed experts its rows really used.
  const double per_token = static_cast<double>(always_on_params_) + static_cast<double>(routed_params) / n_tokens;
  activated_sum_ += per_token * n_tokens;
  activated_tokens_ += n_tokens;
  acc_.activated_params_measured_min = std::min(acc_.activated_params_measured_min, static_cast<int64_t>(per_token));
  acc_.activated_params_measured_max = std::max(acc_.activated_params_measured_max, static_cast<int64_t>(per_token));
  if (prefill) {
    acc_.prompt_tokens += n_tokens;
    acc_.prefill_seconds += seconds;
    return;
  }
  acc_.generated_tokens += n_tokens;
  acc_.decode_seconds += seconds;
  ++decode_steps_;
  distinct_sum_ += static_cast<double>(distinct);
  acc_.distinct_experts_min = std::min(acc_.distinct_experts_min, distinct);
  acc_.distinct_experts_max = std::max(acc_.distinct_experts_max, distinct);
  weight_bytes_sum_ += always_on_bytes_ + static_cast<double>(expert_bytes);
  kv_bytes_sum_ += static_cast<double>(kv_bytes_before);
}

RunReport RunRecorder::finish(double read_gbps_ceiling, uint64_t kv_cache_bytes) const {
  RunReport r = acc_;
  if (activated_tokens_ == 0) r.activated_params_measured_min = r.activated_params_measured_max = 0;
  if (decode_steps_ == 0) r.distinct_experts_min = r.distinct_experts_max = 0;
  r.activated_params_measured = activated_tokens_ ? activated_sum_ / activated_tokens_ : 0;
  r.prefill_tokens_per_s = r.prefill_seconds > 0 ? r.prompt_tokens / r.prefill_seconds : 0;
  r.decode_tokens_per_s = r.decode_seconds > 0 ? r.generated_tokens / r.decode_seconds : 0;
  if (decode_steps_ > 0) {
    r.distinct_experts_per_decode_step = distinct_sum_ / decode_steps_;
    r.weight_bytes_per_decode_token = weight_bytes_sum_ / decode_steps_;
    r.kv_bytes_read_per_decode_token = kv_bytes_sum_ / decode_steps_;
    r.decode_bytes_per_s = (weight_bytes_sum_ + kv_bytes_sum_) / r.decode_seconds;
  }
  r.read_gbps_ceiling = read_gbps_ceiling;
  if (decode_steps_ > 0 && read_gbps_ceiling > 0) {
    r.roofline = read_ceiling_fraction(r.decode_bytes_per_s, read_gbps_ceiling * 1e9,
                                       r.weight_bytes_per_decode_token + r.kv_bytes_read_per_decode_token,
                                       last_level_cache_bytes());
  } else {
    r.roofline.note = decode_steps_ > 0 ? "no read ceiling measured" : "no decode step";
  }
  r.kv_cache_bytes = kv_cache_bytes;
  for (size_t l = 0; l < load_.size(); ++l) {
    if (!spec_.layers.empty() && !spec_.layers[l].is_moe) continue;
    LayerLoad ll;
    ll.layer = static_cast<int>(l);
    ll.tokens_per_expert = load_[l];
    int64_t sum = 0, mx = 0;
    for (int64_t c : ll.tokens_per_expert) {
      sum += c;
      mx = std::max(mx, c);
      ll.experts_never_used += c == 0;
    }
    const double mean = static_cast<double>(sum) / ll.tokens_per_expert.size();
    ll.max_over_mean = mean > 0 ? mx / mean : 0;
    r.expert_load.push_back(std::move(ll));
  }
  return r;
}

std::string format_run_report(const RunReport& r) {
  std::string s;
  auto line = [&s](const std::string& k, const std::string& v) { s += fmt::format("  {:<34} {}\n", k, v); };
  s += "activation report\n";
  line("prefill", fmt::format("{} tokens, {:.1f} tokens/s", r.prompt_tokens, r.prefill_tokens_per_s));
  line("decode", fmt::format("{} tokens generated, {:.1f} tokens/s", r.generated_tokens, r.decode_tokens_per_s));
  line("total parameters", format_count(static_cast<double>(r.total_params)));
  line("activated per token (analytic)", format_count(static_cast<double>(r.activated_params_analytic)));
  line("activated per token (measured)",
       fmt::format("{} mean, {} min, {} max", format_count(r.activated_params_measured),
                   format_count(static_cast<double>(r.activated_params_measured_min)),
                   format_count(static_cast<double>(r.activated_params_measured_max))));
  if (r.total_params > 0) {
    line("activated / total", fmt::format("{:.2f}%", 100.0 * r.activated_params_measured / r.total_params));
  }
  line("distinct experts per decode step",
       fmt::format("{:.1f} mean ({} min, {} max, all MoE layers)", r.distinct_experts_per_decode_step,
                   r.distinct_experts_min, r.distinct_experts_max));
  line("bytes per decode token", fmt::format("{} weights + {} KV", format_bytes(r.weight_bytes_per_decode_token),
                                             format_bytes(r.kv_bytes_read_per_decode_token)));
  if (r.roofline.fraction) {
    line("decode bandwidth",
         fmt::format("{:.2f} GB/s = {:.1f}% of the measured read ceiling {:.1f} GB/s{}", r.decode_bytes_per_s * 1e-9,
                     100 * *r.roofline.fraction, r.read_gbps_ceiling, ceiling_fraction_text(r.roofline)));
  } else if (r.read_gbps_ceiling > 0 && r.decode_bytes_per_s > 0) {
    line("decode bandwidth",
         fmt::format("{:.2f} GB/s{}", r.decode_bytes_per_s * 1e-9, ceiling_fraction_text(r.roofline)));
  }
  line("KV cache",
       r.kv_cache_type.empty()
           ? format_bytes(static_cast<double>(r.kv_cache_bytes))
           : fmt::format("{} ({} rows)", format_bytes(static_cast<double>(r.kv_cache_bytes)), r.kv_cache_type));
  s += "  expert load per MoE layer (tokens per expert; max/mean; never used):\n";
  for (const LayerLoad& l : r.expert_load) {
    std::string counts;
    for (size_t e = 0; e < l.tokens_per_expert.size() && e < 32; ++e) {
      counts += fmt::format("{}{}", e ? " " : "", l.tokens_per_expert[e]);
    }
    if (l.tokens_per_expert.size() > 32) counts += " ...";
    s += fmt::format("    layer {:>3}: max/mean {:.2f}, never used {:>3}  [{}]\n", l.layer, l.max_over_mean,
                     l.experts_never_used, counts);
  }
  return s;
}

std::string run_report_json(const RunReport& r, int indent) {
  nlohmann::ordered_json j;
  const bool decoded = r.generated_tokens > 0 && r.decode_seconds > 0;
  j["prompt_tokens"] = r.prompt_tokens;
  j["generated_tokens"] = r.generated_tokens;
  j["prefill_tokens_per_s"] = json_measured(r.prefill_tokens_per_s, r.prompt_tokens > 0 && r.prefill_seconds > 0);
  j["decode_tokens_per_s"] = json_measured(r.decode_tokens_per_s, decoded);
  j["total_params"] = r.total_params;
  j["activated_params_analytic"] = r.activated_params_analytic;
  j["activated_params_measured"] = json_count(r.activated_params_measured);
  j["activated_params_measured_min"] = r.activated_params_measured_min;
  j["activated_params_measured_max"] = r.activated_params_measured_max;
  j["distinct_experts_per_decode_step"] = json_measured(r.distinct_experts_per_decode_step, decoded);
  j["weight_bytes_per_decode_token"] = decoded ? json_count(r.weight_bytes_per_decode_token) : nullptr;
  j["kv_bytes_read_per_decode_token"] = decoded ? json_count(r.kv_bytes_read_per_decode_token) : nullptr;
  j["decode_bytes_per_s"] = json_measured(r.decode_bytes_per_s, decoded);
  j["read_ceiling_gb_per_s"] = json_measured(r.read_gbps_ceiling, r.read_gbps_ceiling > 0);
  put_ceiling_fraction(j, "roofline_fraction", r.roofline);
  j["kv_cache_bytes"] = r.kv_cache_bytes;
  j["kv_cache_type"] =
      r.kv_cache_type.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.kv_cache_type);
  nlohmann::ordered_json load = nlohmann::ordered_json::array();
  for (const LayerLoad& l : r.expert_load) {
    load.push_back({{"layer", l.layer},
                    {"tokens_per_expert", l.tokens_per_expert},
                    {"max_over_mean", l.max_over_mean},
                    {"experts_never_used", l.experts_never_used}});
  }
  j["expert_load"] = load;
  return j.dump(indent);
}

}  // namespace moe
