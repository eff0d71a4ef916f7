// Expert offload (see offload.h): the per-layer block that asks the cache for its experts, the
// pre-gating prefetch, the budget arithmetic and routing profiles.
#include "model/offload.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace moe {

namespace {

class OffloadMoeBlock final : public MoeBlock {
 public:
  OffloadMoeBlock(int64_t layer, const MoeLayerConfig& config, const MoeLayerWeights& w,
                  std::vector<ExpertMatrices> blank, ExpertOffload& off, uint64_t uniform_seed)
      : layer_index_(layer), layer_(per_call(config), w), blank_(std::move(blank)), off_(off), uniform_(uniform_seed) {}

  void forward(const float* x, int64_t n_tokens, float* out, MoeTelemetry* telemetry) override {
    std::vector<int32_t> held;
    RunOptions o;
    if (uniform_.on())
      o.expert_ids = uniform_.draw(n_tokens, layer_.config().router.top_k, layer_.config().router.n_expert);
    o.prepare_experts = [&](const RouterOutput& r, std::vector<ExpertMatrices>& experts) {
      held.assign(r.expert_ids.begin(), r.expert_ids.end());
      std::sort(held.begin(), held.end());
      held.erase(std::unique(held.begin(), held.end()), held.end());
      experts = blank_;  // only this call's experts are valid (the others: biases only)
      off_.cache().acquire(layer_index_, held, experts);
      off_.score_prediction(layer_index_, held);
      off_.prefetch_after(layer_index_, x, n_tokens);  // the next layer's reads run while these compute
    };
    try {
      layer_.forward(x, n_tokens, out, o, telemetry);
    } catch (...) {
      off_.cache().release(layer_index_, held);
      throw;
    }
    off_.cache().release(layer_index_, held);
  }
  const RouterOutput& last_router_output() const override { return layer_.last_router_output(); }

 private:
  static MoeLayerConfig per_call(MoeLayerConfig c) {
    c.experts_per_call = true;
    return c;
  }
  int64_t layer_index_;
  MoeLayer layer_;
  std::vector<ExpertMatrices> blank_;
  ExpertOffload& off_;
  UniformRouting uniform_;
};

}  // namespace

std::vector<std::pair<int64_t, int32_t>> hottest_experts(const std::string& trace_path, int64_t n_layer) {
  std::ifstream in(trace_path);
  if (!in) fail("offload", "--expert-profile {}: cannot open", trace_path);
  std::map<std::pair<int64_t, int32_t>, int64_t> counts;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      fail("offload", "--expert-profile {}: line {}: not JSON ({})", trace_path, line_no, e.what());
    }
    if (!j.contains("experts") || !j["experts"].is_array())
      fail("offload", "--expert-profile {}: line {}: expected an \"experts\" array (moe run --trace lines)", trace_path,
           line_no);
    const auto& layers = j["experts"];
    if (static_cast<int64_t>(layers.size()) != n_layer)
      fail("offload", "--expert-profile {}: line {}: {} layers, the model has {}", trace_path, line_no, layers.size(),
           n_layer);
    for (size_t l = 0; l < layers.size(); ++l) {
      if (layers[l].is_null()) continue;
      if (!layers[l].is_array())
        fail("offload", "--expert-profile {}: line {}: layer {}: expected a list of expert ids", trace_path, line_no,
             l);
      for (const auto& e : layers[l]) {
        if (!e.is_number_integer())
          fail("offload", "--expert-profile {}: line {}: layer {}: expert ids must be integers", trace_path, line_no,
               l);
        counts[{int64_t(l), e.get<int32_t>()}]++;
      }
    }
  }
  std::vector<std::pair<std::pair<int64_t, int32_t>, int64_t>> v(counts.begin(), counts.end());
  std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::pair<int64_t, int32_t>> out;
  for (const auto& [key, n] : v) out.push_back(key);
  return out;
}

OffloadPrediction predict_offload(const ModelSpec& spec, double always_on_bytes, double expert_bytes,
                                  uint64_t mem_budget, const std::string& trace_path) {
  OffloadPrediction p;
  p.mem_budget = mem_budget;
  p.always_on_bytes = always_on_bytes;
  p.expert_bytes = expert_bytes;
  p.experts_per_layer = spec.n_expert;
  p.top_k = spec.n_expert_used;
  for (const LayerSpec& l : spec.layers) p.moe_layers += l.is_moe;
  p.experts_total = p.moe_layers * spec.n_expert;
  p.min_budget = always_on_bytes + double(spec.n_expert) * expert_bytes;
  p.fits = p.experts_total > 0 && double(mem_budget) >= p.min_budget;
  if (!p.fits) return p;
  p.slots = std::min<int64_t>(p.experts_total, int64_t((double(mem_budget) - always_on_bytes) / expert_bytes));
  p.fraction_cached = double(p.slots) / double(p.experts_total);
  p.uniform_hit_rate = p.fraction_cached;
  p.uniform_bytes_per_token = (1 - p.uniform_hit_rate) * double(p.top_k * p.moe_layers) * expert_bytes;
  if (trace_path.empty()) return p;
  // Replay: per token and MoE layer one call of k experts, the cache's rule (counts halved every `slots`
  // uses, evict the lowest count, the least recent among equals; the call's own experts are pinned).
  std::map<std::pair<int64_t, int32_t>, ExpertUse> resident;
  uint64_t tick = 0, since_decay = 0;
  int64_t requests = 0, hits = 0;
  std::ifstream in(trace_path);
  if (!in) fail("offload", "--trace {}: cannot open", trace_path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("experts") || !j["experts"].is_array())
      fail("offload", "--trace {}: expected `moe run --trace` JSON lines with an \"experts\" array", trace_path);
    p.trace_tokens++;
    for (size_t l = 0; l < j["experts"].size(); ++l) {
      const auto& ids = j["experts"][l];
      if (!ids.is_array()) continue;
      std::set<int32_t> call;
      for (const auto& e : ids) call.insert(e.get<int32_t>());
      for (int32_t e : call) {
        ++requests;
        auto it = resident.find({int64_t(l), e});
        if (it == resident.end()) {
          if (static_cast<int64_t>(resident.size()) >= p.slots) {
            auto victim = resident.end();
            for (auto r = resident.begin(); r != resident.end(); ++r) {
              if (r->first.first == int64_t(l) && call.count(r->first.second)) continue;
              if (victim == resident.end() || colder(r->second, victim->second)) victim = r;
            }
            if (victim != resident.end()) resident.erase(victim);
          }
          it = resident.emplace(std::make_pair(int64_t(l), e), ExpertUse{}).first;
        } else {
          ++hits;
        }
        it->second.count += 1;
        it->second.last = ++tick;
        if (++since_decay >= uint64_t(p.slots)) {
          since_decay = 0;
          for (auto& [key, entry] : resident) entry.count *= 0.5;
        }
      }
    }
  }
  if (p.trace_tokens > 0 && requests > 0) {
    p.trace_hit_rate = double(hits) / double(requests);
    p.trace_bytes_per_token = double(requests - hits) * expert_bytes / double(p.trace_tokens);
  }
  return p;
}

ExpertOffload::ExpertOffload(const ModelSpec& spec, OffloadOptions options)
    : spec_(spec), options_(std::move(options)), layers_(static_cast<size_t>(spec.n_layer)) {}

ExpertOffload::~ExpertOffload() = default;

int ExpertOffload::file_index(const std::string& path) {
  for (size_t i = 0; i < files_.size(); ++i)
    if (files_[i] == path) return static_cast<int>(i);
  files_.push_back(path);
  return static_cast<int>(files_.size() - 1);
}

void ExpertOffload::add_layer(int64_t layer, std::vector<ExpertSource> sources, const MoeLayerConfig& config,
                              const RouterWeights& router) {
  LayerInfo& l = layers_[size_t(layer)];
  l.sources = std::move(sources);
  l.config = config;
  l.router = router;
}

void ExpertOffload::start(uint64_t resident_bytes) {
  resident_ = resident_bytes;
  std::vector<std::vector<ExpertSource>> sources;
  size_t slot = 0;
  int64_t widest = 0, total = 0;
  for (const LayerInfo& l : layers_) {
    sources.push_back(l.sources);
    for (const ExpertSource& s : l.sources) slot = std::max(slot, ExpertCache::slot_bytes_for(s));
    widest = std::max(widest, static_cast<int64_t>(l.sources.size()));
    total += static_cast<int64_t>(l.sources.size());
  }
  if (total == 0) fail("offload", "{}: --mem-budget: the model has no routed experts to keep on disk", spec_.source);
  // One MoE layer's experts must fit at once (a long prompt can route to all of them).
  const uint64_t need = resident_bytes + uint64_t(widest) * slot;
  if (options_.mem_budget < need) {
    fail("offload",
         "--mem-budget {:.3f} GB is too small: the always-on weights take {:.3f} GB (resident after loading) and "
         "one MoE layer's {} experts {:.3f} GB; give at least {:.3f} GB",
         double(options_.mem_budget) * 1e-9, double(resident_bytes) * 1e-9, widest, double(widest * slot) * 1e-9,
         double(need) * 1e-9);
  }
  int64_t slots = std::min<int64_t>(total, int64_t((options_.mem_budget - resident_bytes) / slot));
  if (options_.slots > 0) {
    if (options_.slots < widest)
      fail("offload", "{} expert slots cannot hold one MoE layer's {} experts", options_.slots, widest);
    slots = std::min<int64_t>(total, options_.slots);
  }
  ExpertCache::Options o;
  o.slots = slots;
  o.io_threads = options_.io_threads;
  o.direct_io = options_.direct_io;
  cache_ = std::make_unique<ExpertCache>(files_, std::move(sources), o);
  if (!options_.expert_profile.empty()) {
    const auto hot = hottest_experts(options_.expert_profile, spec_.n_layer);
    pinned_ = cache_->pin_forever(hot, std::max<int64_t>(widest, slots / 2));  // half the pool stays adaptive
    cache_->reset_stats();
  }
}

std::unique_ptr<MoeBlock> ExpertOffload::make_block(int64_t layer, const MoeLayerConfig& config,
                                                    const MoeLayerWeights& w) {
  std::vector<ExpertMatrices> blank;
  for (const ExpertSource& s : layers_[size_t(layer)].sources) {
    ExpertMatrices m;
    m.gate_bias = s.bias[0];
    m.up_bias = s.bias[1];
    m.down_bias = s.bias[2];
    blank.push_back(m);
  }
  return std::make_unique<OffloadMoeBlock>(layer, config, w, std::move(blank), *this,
                                           options_.uniform_routing_seed ? options_.uniform_routing_seed + layer : 0);
}

void ExpertOffload::prefetch_after(int64_t layer, const float* x, int64_t n_tokens) {
  if (!options_.prefetch || !cache_) return;
  int64_t next = layer + 1;
  while (next < static_cast<int64_t>(layers_.size()) && layers_[size_t(next)].sources.empty()) ++next;
  if (next >= static_cast<int64_t>(layers_.size())) return;
  LayerInfo& n = layers_[size_t(next)];
  route_tokens(n.config.router, n.router, x, n_tokens, n.config.d_model, 0, &predicted_);
  std::vector<int32_t>& ids = n.predicted;
  ids.assign(predicted_.expert_ids.begin(), predicted_.expert_ids.end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  if (n.precision >= kMinPrecision) {
    cache_->prefetch(next, ids);
  } else {
    ++n.stats.withheld;
  }
}

void ExpertOffload::score_prediction(int64_t layer, const std::vector<int32_t>& used) {
  LayerInfo& l = layers_[size_t(layer)];
  if (l.predicted.empty()) return;
  std::vector<int32_t> both;
  std::set_intersection(l.predicted.begin(), l.predicted.end(), used.begin(), used.end(), std::back_inserter(both));
  const double precision = double(both.size()) / double(l.predicted.size());
  l.precision = (1.0 - kPrecisionWeight) * l.precision + kPrecisionWeight * precision;
  ++l.stats.predictions;
  l.stats.predicted += static_cast<int64_t>(l.predicted.size());
  l.stats.predicted_used += static_cast<int64_t>(both.size());
  l.predicted.clear();
}

void ExpertOffload::reset_stats() {
  if (cache_) cache_->reset_stats();
  for (LayerInfo& l : layers_) l.stats = {};
}

OffloadReport ExpertOffload::report() const {
  OffloadReport r;
  r.mem_budget = options_.mem_budget;
  r.resident_bytes = resident_;
  for (const LayerInfo& l : layers_) r.experts_total += static_cast<int64_t>(l.sources.size());
  if (cache_) {
    r.slot_bytes = cache_->slot_bytes();
    r.slots = cache_->n_slots();
    r.stats = cache_->stats();
  }
  r.pinned = pinned_;
  for (const LayerInfo& l : layers_) r.prefetch.push_back(l.stats);
  return r;
}

}  // namespace moe
