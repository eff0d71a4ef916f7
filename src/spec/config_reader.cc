// ConfigReader: typed JSON access with read-key tracking and field-naming errors.
#include "spec/config_reader.h"

#include <cmath>

#include "util/error.h"

namespace moe {
namespace {

std::string describe(const nlohmann::json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return fmt::format("{} {}", v.type_name(), s);
}

}  // namespace

ConfigReader::ConfigReader(const nlohmann::json& object, std::string source, std::string prefix)
    : obj_(object), source_(std::move(source)), prefix_(std::move(prefix)) {
  if (!obj_.is_object()) fail("spec", "{}: {}expected a JSON object, found {}", source_, prefix_, describe(obj_));
}

void ConfigReader::fail_field(std::string_view field, const std::string& what) const {
  fail("spec", "{}: field \"{}{}\": {}", source_, prefix_, field, what);
}

const nlohmann::json* ConfigReader::find(std::initializer_list<std::string_view> aliases) {
  const nlohmann::json* found = nullptr;
  for (auto key : aliases) {
    used_.emplace(key);
    auto it = obj_.find(std::string(key));
    if (!found && it != obj_.end() && !it->is_null()) found = &*it;
  }
  return found;
}

bool ConfigReader::has(std::initializer_list<std::string_view> aliases) { return find(aliases) != nullptr; }

bool ConfigReader::is_null(std::string_view key) {
  used_.emplace(key);
  auto it = obj_.find(std::string(key));
  return it != obj_.end() && it->is_null();
}

int64_t ConfigReader::to_int(std::string_view key, const nlohmann::json& v) const {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) fail_field(key, "integer too large");
      return static_cast<int64_t>(u);
    }
    const int64_t i = v.get<int64_t>();
    if (i < 0) fail_field(key, fmt::format("expected a non-negative integer, found {}", i));
    return i;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && d >= 0 && d < 9.0e18) return static_cast<int64_t>(d);
    if (d < 0) fail_field(key, fmt::format("expected a non-negative integer, found {}", d));
  }
  fail_field(key, fmt::format("expected a non-negative integer, found {}", describe(v)));
}

std::optional<int64_t> ConfigReader::opt_int(std::initializer_list<std::string_view> aliases) {
  const nlohmann::json* v = find(aliases);
  if (!v) return std::nullopt;
  // Report the alias that was actually present.
  for (auto key : aliases) {
    auto it = obj_.find(std::string(key));
    if (it != obj_.end() && &*it == v) return to_int(key, *v);
  }
  return to_int(*aliases.begin(), *v);
}

int64_t ConfigReader::req_int(std::initializer_list<std::string_view> aliases) {
  auto v = opt_int(aliases);
  if (!v) {
    std::string names;
    for (auto key : aliases) names += (names.empty() ? "\"" : " or \"") + prefix_ + std::string(key) + "\"";
    fail("spec", "{}: missing required field {} (an integer)", source_, names);
  }
  return *v;
}

int64_t ConfigReader::int_or(std::initializer_list<std::string_view> aliases, int64_t fallback) {
  auto v = opt_int(aliases);
  return v ? *v : fallback;
}

double ConfigReader::num_or(std::initializer_list<std::string_view> aliases, double fallback) {
  const nlohmann::json* v = find(aliases);
  if (!v) return fallback;
  if (!v->is_number()) fail_field(*aliases.begin(), fmt::format("expected a number, found {}", describe(*v)));
  const double d = v->get<double>();
  if (!std::isfinite(d)) fail_field(*aliases.begin(), "expected a finite number");
  return d;
}

bool ConfigReader::bool_or(std::initializer_list<std::string_view> aliases, bool fallback) {
  const nlohmann::json* v = find(aliases);
  if (!v) return fallback;
  if (!v->is_boolean()) fail_field(*aliases.begin(), fmt::format("expected true or false, found {}", describe(*v)));
  return v->get<bool>();
}

std::string ConfigReader::str_or(std::initializer_list<std::string_view> aliases, const std::string& fallback) {
  const nlohmann::json* v = find(aliases);
  if (!v) return fallback;
  if (!v->is_string()) fail_field(*aliases.begin(), fmt::format("expected a string, found {}", describe(*v)));
  return v->get<std::string>();
}

std::vector<int64_t> ConfigReader::int_list(std::initializer_list<std::string_view> aliases) {
  const nlohmann::json* v = find(aliases);
  std::vector<int64_t> out;
  if (!v) return out;
  if (!v->is_array()) fail_field(*aliases.begin(), fmt::format("expected a list of integers, found {}", describe(*v)));
  for (size_t i = 0; i < v->size(); ++i) out.push_back(to_int(fmt::format("{}[{}]", *aliases.begin(), i), (*v)[i]));
  return out;
}

std::vector<double> ConfigReader::num_list(std::initializer_list<std::string_view> aliases) {
  const nlohmann::json* v = find(aliases);
  std::vector<double> out;
  if (!v) return out;
  if (!v->is_array()) fail_field(*aliases.begin(), fmt::format("expected a list of numbers, found {}", describe(*v)));
  for (size_t i = 0; i < v->size(); ++i) {
    const nlohmann::json& e = (*v)[i];
    if (!e.is_number() || !std::isfinite(e.get<double>()))
      fail_field(fmt::format("{}[{}]", *aliases.begin(), i),
                 fmt::format("expected a finite number, found {}", describe(e)));
    out.push_back(e.get<double>());
  }
  return out;
}

std::vector<std::string> ConfigReader::str_list(std::initializer_list<std::string_view> aliases) {
  const nlohmann::json* v = find(aliases);
  std::vector<std::string> out;
  if (!v) return out;
  if (!v->is_array()) fail_field(*aliases.begin(), fmt::format("expected a list of strings, found {}", describe(*v)));
  for (size_t i = 0; i < v->size(); ++i) {
    if (!(*v)[i].is_string())
      fail_field(fmt::format("{}[{}]", *aliases.begin(), i),
                 fmt::format("expected a string, found {}", describe((*v)[i])));
    out.push_back((*v)[i].get<std::string>());
  }
  return out;
}

const nlohmann::json* ConfigReader::object(std::initializer_list<std::string_view> aliases) {
  const nlohmann::json* v = find(aliases);
  if (v && !v->is_object()) fail_field(*aliases.begin(), fmt::format("expected an object, found {}", describe(*v)));
  return v;
}

void ConfigReader::acknowledge(std::initializer_list<std::string_view> keys) {
  for (auto k : keys) used_.emplace(k);
}

void ConfigReader::acknowledge_common() {
  // Training, tokenizer and framework keys: no effect on weights or per-token cost.
  acknowledge({"architectures",
               "auto_map",
               "bos_token_id",
               "eos_token_id",
               "pad_token_id",
               "initializer_range",
               "transformers_version",
               "use_cache",
               "attention_dropout",
               "hidden_dropout",
               "dropout",
               "output_router_logits",
               "router_aux_loss_coef",
               "aux_loss_alpha",
               "seq_aux",
               "_name_or_path",
               "tokenizer_class",
               "pretraining_tp",
               "emb_pdrop",
               "resid_pdrop",
               "ep_size",
               "id2label",
               "label2id",
               "return_dict",
               "output_attentions",
               "output_hidden_states",
               "torchscript",
               "is_encoder_decoder",
               "router_z_loss_coef",
               "router_jitter_noise",
               "input_jitter_noise",
               "embedding_dropout",
               "attention_probs_dropout_prob",
               "hidden_dropout_prob",
               "mlp_bias_dropout",
               "moe_aux_loss_coeff",
               "use_return_dict",
               "chunk_size_feed_forward",
               "problem_type",
               "model_max_length",
               "name_or_path",
               "do_sample",
               "temperature",
               "top_p",
               "top_k",
               "use_flash_attention",
               "_attn_implementation",
               "cache_implementation",
               "quantization",
               "router_dtype"});
}

std::vector<std::string> ConfigReader::unused_keys() const {
  std::vector<std::string> out;
  for (auto it = obj_.begin(); it != obj_.end(); ++it)
    if (!used_.count(it.key())) out.push_back(prefix_ + it.key());
  return out;
}

}  // namespace moe
