// Text and Markdown rendering of `moe inspect`: one model, models side by side, the catalog.
#include "spec/report.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "util/error.h"

namespace moe {
namespace {

std::string cnt(int64_t n) { return format_count(static_cast<double>(n)); }

std::string pct(double f) { return fmt::format("{:.1f}%", 100.0 * f); }

std::string format_flops(double f) {
  if (f >= 1e15) return fmt::format("{:.2f} PFLOP", f / 1e15);
  if (f >= 1e12) return fmt::format("{:.2f} TFLOP", f / 1e12);
  if (f >= 1e9) return fmt::format("{:.2f} GFLOP", f / 1e9);
  return fmt::format("{:.2f} MFLOP", f / 1e6);
}

std::string escape_md(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '|') out += '\\';
    out += ch;
  }
  return out;
}

std::string attention_summary(const ModelSpec& s) {
  if (s.is_mla)
    return fmt::format("MLA {} heads, q_lora {}, kv_lora {}, nope {} + rope {}, v {}", s.n_head, s.mla.q_lora_rank,
                       s.mla.kv_lora_rank, s.mla.qk_nope_head_dim, s.mla.qk_rope_head_dim, s.mla.v_head_dim);
  if (s.family == Family::kDeepseekV4) {
    int csa = 0, hca = 0, hca_ratio = 0;
    for (const auto& l : s.layers) {
      csa += l.compress_ratio == 4;
      hca += l.compress_ratio > 0 && l.compress_ratio != 4;
      if (l.compress_ratio > 0 && l.compress_ratio != 4) hca_ratio = l.compress_ratio;
    }
    return fmt::format(
        "{} heads x {} sharing one K=V head; window {}, {} CSA (ratio 4 + indexer) / {} HCA (ratio {}) "
        "layers; mHC x{}; grouped low-rank output {} x {}",
        s.n_head, s.head_dim, s.sliding_window, csa, hca, hca_ratio == 0 ? 128 : hca_ratio, s.dsv4.hc_mult,
        s.dsv4.o_groups, s.dsv4.o_lora_rank);
  }
  const auto windowed =
      std::count_if(s.layers.begin(), s.layers.end(), [](const LayerSpec& l) { return l.window > 0; });
  std::string extra;
  if (windowed > 0)
    extra += fmt::format(", {} of {} layers {} {}", windowed, s.n_layer,
                         s.attention_chunk_size ? "chunked" : "sliding window",
                         s.layers[0].window ? s.layers[0].window : s.sliding_window);
  if (s.qk_norm != QkNorm::kNone) extra += ", QK-norm";
  if (s.attention_bias) extra += ", qkv bias";
  if (s.attention_sinks) extra += ", sinks";
  if (s.clip_qkv > 0) extra += fmt::format(", clip_qkv {}", s.clip_qkv);
  return fmt::format("{} {} heads / {} kv x {}{}", s.n_head == s.n_head_kv ? "MHA" : "GQA", s.n_head, s.n_head_kv,
                     s.head_dim, extra);
}

std::string expert_summary(const ModelSpec& s) {
  if (s.n_expert == 0) return fmt::format("dense, FFN width {}", s.n_ff);
  std::string shared = s.n_ff_shared > 0 ? fmt::format(", shared {} (width {}){}", s.n_expert_shared, s.n_ff_shared,
                                                       s.shared_expert_gate ? " with sigmoid gate" : "")
                                         : "";
  const std::string router = s.family == Family::kPhiMoe ? fmt::format("sparsemixer (eps {})", s.router.jitter_eps)
                                                         : scoring_func_name(s.router.scoring);
  return fmt::format("{} routed, top-{}, width {}{}; {} MoE / {} layers; router {}{}", s.n_expert, s.n_expert_used,
                     s.n_ff_expert, shared, s.n_moe_layers(), s.n_layer, router,
                     s.router.has_score_bias ? " + correction bias" : "");
}

std::string published_for(const ModelReport& r, const std::string& convention, const std::string& published) {
  if (!r.entry || published.empty()) return "";
  const double computed = static_cast<double>(counts_field(r.counts, convention));
  const bool ok = r.entry->matches(computed, published);
  if (r.entry->tolerance > 0 || parse_published(published).approximate) {
    const double off = 100.0 * (computed / parse_published(published).value - 1.0);
    return fmt::format("{} ({} 1%: {:+.2f}%)", published, ok ? "within" : "outside", off);
  }
  return fmt::format("{} {}", published, ok ? "(matches)" : "(differs)");
}

Table param_table(const ModelReport& r) {
  const ParamCounts& c = r.counts;
  const CatalogEntry* e = r.entry;
  auto card = [&](const std::string& conv, const std::string& pub, const std::string& field) {
    return (e && conv == field) ? published_for(r, conv, pub) : std::string();
  };
  Table t{{"parameters", "count", "exact", "published"}, {}, {}};
  auto row = [&](const std::string& label, int64_t v, const std::string& pub) {
    t.rows.push_back({label, cnt(v), with_commas(v), pub});
  };
  const std::string pt = e ? e->published_total : "", pa = e ? e->published_activated : "";
  const std::string tc = e ? e->total_convention : "", ac = e ? e->activated_convention : "";
  row("total (main model)", c.total_params,
      e && e->total_includes_vision ? pt + " (incl. vision tower)" : card(tc, pt, "total_params"));
  row("total with MTP", c.total_params_with_mtp,
      e ? published_for(r, e->total_with_mtp_convention, e->published_total_with_mtp) : "");
  row("total non-embedding", c.total_params_non_embedding,
      e && !e->published_total_non_embedding.empty()
          ? published_for(r, "total_params_non_embedding", e->published_total_non_embedding)
          : card(tc, pt, "total_params_non_embedding"));
  row("activated_params", c.activated_params, card(ac, pa, "activated_params"));
  row("activated_params_no_embedding", c.activated_params_no_embedding, card(ac, pa, "activated_params_no_embedding"));
  row("activated_params_non_embedding", c.activated_params_non_embedding,
      card(ac, pa, "activated_params_non_embedding"));
  if (c.mtp_params > 0) row("MTP module (activated)", c.mtp_activated_params, "");
  if (e && !e->published_total_checkpoint.empty())
    row("stored in checkpoint (params)", c.total_params_with_mtp,
        published_for(r, "total_params_with_mtp", e->published_total_checkpoint));
  row("stored elements (Hub size)", c.checkpoint_elements, "");
  t.rows.push_back(
      {"sparsity", fmt::format("{:.2f}x", c.sparsity_ratio), pct(c.activated_fraction) + " per token", ""});
  return t;
}

Table breakdown_table(const ModelReport& r) {
  Table t{{"role (main model)", "tensors", "params", "per token", "bytes"}, {}, {}};
  for (const RoleCount& rc : r.counts.breakdown) {
    std::string per_token = cnt(rc.activated);
    if (rc.role == Role::kRoutedExpert) per_token += fmt::format(" ({} of {})", r.spec.n_expert_used, r.spec.n_expert);
    if (rc.role == Role::kQuantScale || rc.role == Role::kIndexTable) per_token = "(not params)";
    t.rows.push_back({role_name(rc.role), std::to_string(rc.n_tensors), cnt(rc.params), per_token,
                      format_bytes(static_cast<double>(rc.bytes))});
  }
  t.rows.push_back({"total", std::to_string(r.counts.n_tensors), cnt(r.counts.total_params),
                    cnt(r.counts.activated_params), format_bytes(static_cast<double>(r.counts.bytes))});
  return t;
}

Table cost_table(const ModelReport& r, bool explain) {
  const Cost& c = r.cost;
  Table t{{"cost", "value", explain ? "formula" : ""}, {}, {false, true, false}};
  if (!explain) t.header.pop_back();
  for (const Figure& f : c.figures) {
    std::string v = f.unit == "FLOP" ? format_flops(f.value)
                    : f.unit == "B"  ? format_bytes(f.value)
                                     : fmt::format("{:.2f} {}", f.value, f.unit);
    std::vector<std::string> row{f.key, v};
    if (explain) row.push_back(f.formula);
    t.rows.push_back(row);
  }
  return t;
}

}  // namespace

std::string with_commas(int64_t n) {
  std::string d = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i > 0 && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string Table::render(ReportFormat format) const {
  const size_t n = header.size();
  auto right = [&](size_t c) { return c < right_align.size() ? right_align[c] : c > 0; };
  std::string out;
  if (format == ReportFormat::kMarkdown) {
    auto line = [&](const std::vector<std::string>& cells) {
      out += '|';
      for (size_t c = 0; c < n; ++c) {
        out += ' ';
        out += escape_md(c < cells.size() ? cells[c] : std::string());
        out += " |";
      }
      out += '\n';
    };
    line(header);
    out += "|";
    for (size_t c = 0; c < n; ++c) out += right(c) ? "---:|" : "---|";
    out += "\n";
    for (const auto& r : rows) line(r);
    return out;
  }
  std::vector<size_t> w(n, 0);
  for (size_t c = 0; c < n; ++c) w[c] = header[c].size();
  for (const auto& r : rows)
    for (size_t c = 0; c < n && c < r.size(); ++c) w[c] = std::max(w[c], r[c].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t c = 0; c < n; ++c) {
      const std::string& v = c < cells.size() ? cells[c] : "";
      const std::string pad(w[c] - v.size(), ' ');
      l += (c ? "  " : "") + (right(c) ? pad + v : v + (c + 1 < n ? pad : ""));
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
  return out;
}

ModelReport make_report(ModelSpec spec, std::string name, const CatalogEntry* entry, const Workload& workload,
                        std::optional<TensorRegistry> file_registry) {
  ModelReport r;
  r.name = std::move(name);
  r.entry = entry;
  r.spec = std::move(spec);
  if (file_registry) {
    r.registry = std::move(*file_registry);
    std::map<std::string, int64_t> kinds;
    for (const TensorEntry& t : r.registry.tensors) ++kinds[std::string(dtype_name(t.dtype))];
    r.file_dtypes.assign(kinds.begin(), kinds.end());
    std::sort(r.file_dtypes.begin(), r.file_dtypes.end(),
              [](const auto& a, const auto& b) { return a.second > b.second; });
  } else {
    r.registry = build_registry(r.spec);
  }
  r.counts = count_params(r.spec, r.registry);
  r.cost = compute_cost(r.spec, r.registry, workload);
  return r;
}

std::string render_report(const ModelReport& r, ReportFormat format, bool explain) {
  const ModelSpec& s = r.spec;
  const bool md = format == ReportFormat::kMarkdown;
  std::string out = md ? fmt::format("## {}\n\n", r.name) : fmt::format("{}\n", r.name);
  Table arch{{"architecture", ""}, {}, {false, false}};
  arch.rows.push_back({"family", fmt::format("{} ({})", s.model_type, family_name(s.family))});
  arch.rows.push_back({"layers", fmt::format("{} x d_model {}, vocab {}{}", s.n_layer, s.d_model, s.vocab,
                                             s.tie_word_embeddings ? ", tied embeddings" : "")});
  arch.rows.push_back({"attention", attention_summary(s)});
  arch.rows.push_back({"experts", expert_summary(s)});
  if (s.n_mtp_layers)
    arch.rows.push_back({"MTP", fmt::format("{} layer(s), excluded from the main total", s.n_mtp_layers)});
  if (r.file_dtypes.empty()) {
    arch.rows.push_back(
        {"storage", fmt::format("{}, quantization {}", s.torch_dtype, quant_method_name(s.quant.method))});
  } else {
    std::string kinds;
    for (const auto& [name, n] : r.file_dtypes) kinds += fmt::format("{}{} x {}", kinds.empty() ? "" : ", ", n, name);
    arch.rows.push_back({"storage", fmt::format("as the file stores it: {} tensors", kinds)});
  }
  if (r.entry) {
    arch.rows.push_back({"card convention", fmt::format("total: {}; activated: {}", r.entry->total_convention,
                                                        r.entry->activated_convention)});
    if (!r.entry->notes.empty()) arch.rows.push_back({"card notes", r.entry->notes});
  }
  for (const auto& n : s.notes) arch.rows.push_back({"note", n});
  if (!s.unknown_keys.empty()) {
    std::string keys;
    for (const auto& k : s.unknown_keys) keys += (keys.empty() ? "" : ", ") + k;
    arch.rows.push_back({"unknown keys", keys + " (not read: check they do not change the architecture)"});
  }
  const Workload& w = r.cost.workload;
  out += arch.render(format) + "\n" + param_table(r).render(format) + "\n" + breakdown_table(r).render(format) + "\n";
  out += md ? fmt::format("Cost at context L={}, batch B={}, prompt N={}, EP ranks R={}, KV {} B/elem:\n\n", w.context,
                          w.batch, w.prompt, w.ep_ranks, w.kv_bytes_per_elem)
            : fmt::format("cost at context L={}, batch B={}, prompt N={}, EP ranks R={}, KV {} B/elem\n", w.context,
                          w.batch, w.prompt, w.ep_ranks, w.kv_bytes_per_elem);
  out += cost_table(r, explain).render(format);
  return out;
}

std::string render_comparison(const std::vector<ModelReport>& reports, ReportFormat format) {
  Table t;
  t.header.push_back("");
  for (const auto& r : reports) t.header.push_back(r.name);
  auto row = [&](const std::string& label, auto&& fn) {
    std::vector<std::string> cells{label};
    for (const auto& r : reports) cells.push_back(fn(r));
    t.rows.push_back(cells);
  };
  row("family", [](const ModelReport& r) { return r.spec.model_type; });
  row("layers (MoE)",
      [](const ModelReport& r) { return fmt::format("{} ({})", r.spec.n_layer, r.spec.n_moe_layers()); });
  row("d_model", [](const ModelReport& r) { return std::to_string(r.spec.d_model); });
  row("heads / kv", [](const ModelReport& r) {
    return r.spec.is_mla ? fmt::format("{} MLA", r.spec.n_head)
                         : fmt::format("{} / {}", r.spec.n_head, r.spec.n_head_kv);
  });
  row("experts (top-k)", [](const ModelReport& r) {
    return r.spec.n_expert ? fmt::format("{} ({})", r.spec.n_expert, r.spec.n_expert_used) : std::string("dense");
  });
  row("shared experts", [](const ModelReport& r) { return std::to_string(r.spec.n_expert_shared); });
  row("expert width", [](const ModelReport& r) { return std::to_string(r.spec.n_ff_expert); });
  row("total params", [](const ModelReport& r) { return cnt(r.counts.total_params); });
  row("total with MTP", [](const ModelReport& r) { return cnt(r.counts.total_params_with_mtp); });
  row("activated", [](const ModelReport& r) { return cnt(r.counts.activated_params); });
  row("activated, no embedding", [](const ModelReport& r) { return cnt(r.counts.activated_params_no_embedding); });
  row("activated, non-embedding", [](const ModelReport& r) { return cnt(r.counts.activated_params_non_embedding); });
  row("sparsity (total/activated)",
      [](const ModelReport& r) { return fmt::format("{:.1f}x", r.counts.sparsity_ratio); });
  row("published total / activated", [](const ModelReport& r) {
    return r.entry ? r.entry->published_total + " / " + r.entry->published_activated : std::string("-");
  });
  row("KV cache per token", [](const ModelReport& r) { return format_bytes(r.cost.kv.bytes_per_token); });
  row(fmt::format("KV cache at L={}", reports.front().cost.workload.context),
      [](const ModelReport& r) { return format_bytes(r.cost.kv.bytes_at_context); });
  row("decode GFLOP/token",
      [](const ModelReport& r) { return fmt::format("{:.1f}", r.cost.decode_flops_per_token / 1e9); });
  row("weights (checkpoint)", [](const ModelReport& r) { return format_bytes(r.cost.weights.checkpoint); });
  row("weights bf16", [](const ModelReport& r) { return format_bytes(r.cost.weights.bf16); });
  return t.render(format);
}

std::string render_catalog(ReportFormat format) {
  Table t{{"model", "family", "published total", "computed", "published activated", "computed", "activated convention"},
          {},
          {false, false, true, true, true, true, false}};
  for (const CatalogEntry& e : catalog()) {
    const ModelSpec s = parse_model_spec(e.config, e.name);
    const ParamCounts c = count_params(s, build_registry(s));
    const std::string total = cnt(counts_field(c, e.total_convention)) +
                              (e.total_convention != "total_params" ? " (" + e.total_convention + ")" : "") +
                              (e.total_includes_vision ? " (text only)" : "");
    t.rows.push_back({e.name, s.model_type, e.published_total, total, e.published_activated,
                      cnt(counts_field(c, e.activated_convention)), e.activated_convention});
  }
  return t.render(format);
}

std::string render_tensors(const ModelReport& r, ReportFormat format) {
  Table t{{"name", "shape", "dtype", "role", "layer", "expert", "params"},
          {},
          {false, false, false, false, true, true, true}};
  for (const TensorEntry& e : r.registry.tensors) {
    std::string shape = "[";
    for (size_t i = 0; i < e.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(e.shape[i]);
    shape += "]";
    t.rows.push_back({e.name, shape, std::string(dtype_name(e.dtype)),
                      std::string(role_name(e.role)) + (e.is_mtp ? " (mtp)" : ""),
                      e.layer >= 0 ? std::to_string(e.layer) : "", e.expert >= 0 ? std::to_string(e.expert) : "",
                      std::to_string(e.n_params)});
  }
  return t.render(format);
}

}  // namespace moe
