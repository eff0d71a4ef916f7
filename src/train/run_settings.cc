// Resume checks that name flags (see run_settings.h).
#include "train/run_settings.h"

#include <algorithm>
#include <map>
#include <vector>

#include "train/trainer.h"
#include "util/error.h"

namespace moe::train {
namespace {

// trainer_state.json "run" key -> the `moe train` flag that sets it.
const std::map<std::string, std::string>& run_flags() {
  static const std::map<std::string, std::string> m{{"batch", "--batch"},
                                                    {"seq", "--seq"},
                                                    {"seed", "--seed"},
                                                    {"init", "--init"},
                                                    {"aux_coef", "--aux-loss"},
                                                    {"seq_aux_coef", "--seq-aux-loss"},
                                                    {"z_coef", "--z-loss"},
                                                    {"bias_rate", "--bias-update"},
                                                    {"capacity_factor", "--capacity-factor"},
                                                    {"drop_policy", "--drop-policy"},
                                                    {"lr", "--lr"},
                                                    {"min_lr_ratio", "--min-lr-ratio"},
                                                    {"warmup", "--warmup"},
                                                    {"weight_decay", "--weight-decay"},
                                                    {"grad_clip", "--grad-clip"},
                                                    {"steps", "--steps"}};
  return m;
}

// config.json field -> the flag that sets it (the field is also named: --config sets it too).
const std::map<std::string, std::string>& config_flags(Family family) {
  static const std::map<std::string, std::string> common{{"model_type", "--arch"},
                                                         {"hidden_size", "--d-model"},
                                                         {"num_hidden_layers", "--layers"},
                                                         {"num_attention_heads", "--heads"},
                                                         {"num_key_value_heads", "--kv-heads"},
                                                         {"head_dim", "--head-dim"},
                                                         {"num_experts", "--experts"},
                                                         {"n_routed_experts", "--experts"},
                                                         {"num_local_experts", "--experts"},
                                                         {"num_experts_per_tok", "--experts-per-token"},
                                                         {"moe_intermediate_size", "--d-ff"},
                                                         {"max_position_embeddings", "--max-seq"},
                                                         {"rope_theta", "--rope-theta"},
                                                         {"norm_topk_prob", "--no-norm-topk"},
                                                         {"q_lora_rank", "--q-lora-rank"},
                                                         {"kv_lora_rank", "--kv-lora-rank"},
                                                         {"qk_nope_head_dim", "--qk-nope-dim"},
                                                         {"qk_rope_head_dim", "--qk-rope-dim"},
                                                         {"v_head_dim", "--v-head-dim"},
                                                         {"n_shared_experts", "--shared-experts"},
                                                         {"first_k_dense_replace", "--dense-layers"},
                                                         {"routed_scaling_factor", "--routed-scaling"}};
  static const std::map<std::string, std::string> qwen3 = [] {
    auto m = common;
    m["intermediate_size"] = "--d-ff";  // Qwen3-MoE: mirrors moe_intermediate_size; OLMoE, Mixtral: the experts
    return m;
  }();
  static const std::map<std::string, std::string> deepseek = [] {
    auto m = common;
    m["intermediate_size"] = "--d-ff-dense";
    return m;
  }();
  return family == Family::kDeepseekV3 ? deepseek : qwen3;
}

std::string shown(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// One "FLAG: the run used A, this asks B" per differing key of `saved`, each flag once.
std::string diff(const nlohmann::json& saved, const nlohmann::json& asked,
                 const std::map<std::string, std::string>& flags, const std::string& skip, bool name_field) {
  std::vector<std::string> parts, named;
  for (const auto& [key, value] : saved.items()) {
    if (key == skip || !asked.contains(key) || asked.at(key) == value) continue;
    const auto f = flags.find(key);
    const std::string flag = f != flags.end() ? f->second : "config.json " + key;
    if (std::find(named.begin(), named.end(), flag) != named.end()) continue;
    named.push_back(flag);
    const std::string field = name_field && f != flags.end() ? " (" + key + ")" : "";
    parts.push_back(
        fmt::format("{}{}: the run used {}, this asks {}", flag, field, shown(value), shown(asked.at(key))));
  }
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

}  // namespace

nlohmann::json run_fingerprint(const TrainOptions& o) {
  nlohmann::json j;
  j["batch"] = o.batch;
  j["seq"] = o.seq;
  j["seed"] = o.seed;
  if (!o.init_dir.empty()) j["init"] = o.init_dir;
  j["aux_coef"] = o.balance.aux_coef;
  j["seq_aux_coef"] = o.balance.seq_aux_coef;
  j["z_coef"] = o.balance.z_coef;
  j["bias_rate"] = o.balance.bias_rate;
  j["capacity_factor"] = o.balance.capacity_factor;
  j["drop_policy"] = o.balance.drop_policy == DropPolicy::kPosition ? "position" : "probability";
  j["lr"] = o.adamw.lr;
  j["min_lr_ratio"] = o.adamw.min_lr_ratio;
  j["warmup"] = o.adamw.warmup_steps;
  j["weight_decay"] = o.adamw.weight_decay;
  j["grad_clip"] = o.adamw.grad_clip;
  j["steps"] = o.steps;
  return j;
}

std::string run_settings_diff(const nlohmann::json& saved, const nlohmann::json& asked, const std::string& skip) {
  return diff(saved, asked, run_flags(), skip, false);
}

std::string model_config_diff(const ModelConfig& saved, const ModelConfig& asked) {
  const nlohmann::json s = saved.to_hf_json(), a = asked.to_hf_json();
  if (saved.family != asked.family) {  // every other field differs with it
    return fmt::format("--arch: the run used {}, this asks {}", shown(s.at("model_type")), shown(a.at("model_type")));
  }
  std::string out = diff(s, a, config_flags(saved.family), "", true);
  return out.empty() && !(saved == asked) ? "a setting config.json does not record differs" : out;
}

int64_t check_resume_settings(const nlohmann::json& saved, int64_t step, const TrainOptions& o,
                              const std::string& dir) {
  const std::string changed = run_settings_diff(saved, run_fingerprint(o), "steps");
  if (!changed.empty()) {
    fail_usage("train",
               "--resume: {} was trained with other settings: {}; resume with the run's settings, or start a new run "
               "(another --out, or --overwrite)",
               dir, changed);
  }
  const int64_t run_steps = saved.value("steps", o.steps);
  if (o.steps < run_steps) {
    fail_usage("train",
               "--steps: the run used {}, this asks {}; a resumed run keeps or extends its --steps (the cosine "
               "schedule spans them); to stop early use --stop-after {}",
               run_steps, o.steps, o.steps);
  }
  if (step > o.steps) {
    fail("checkpoint", "{}/trainer_state.json: step: expected 0 to --steps {}, found {}", dir, o.steps, step);
  }
  return run_steps;
}

}  // namespace moe::train
