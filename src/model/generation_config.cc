// Generation defaults from config.json, generation_config.json, the tokenizer and GGUF metadata.
#include "model/generation_config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/gguf.h"
#include "io/gguf_config.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("generation", "cannot open {}", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  try {
    json j = json::parse(ss.str());
    if (!j.is_object()) fail("generation", "{}: expected a JSON object", path.string());
    return j;
  } catch (const json::exception& e) {
    fail("generation", "{}: malformed JSON: {}", path.string(), e.what());
  }
}

// eos_token_id: null, an id, or a list of ids.
void add_ids(const json& j, const char* key, const fs::path& file, std::vector<int32_t>& out) {
  if (!j.contains(key) || j[key].is_null()) return;
  const json& v = j[key];
  auto one = [&](const json& x) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
      fail("generation", "{}: {} must be a token id or a list of token ids, found {}", file.string(), key, v.dump());
    out.push_back(static_cast<int32_t>(x.get<int64_t>()));
  };
  if (v.is_array()) {
    for (const json& x : v) one(x);
  } else {
    one(v);
  }
}

template <typename T>
bool read_number(const json& j, const char* key, const fs::path& file, T& out, double lo, double hi) {
  if (!j.contains(key) || j[key].is_null()) return false;
  const json& v = j[key];
  if (!v.is_number() || !(v.get<double>() >= lo && v.get<double>() <= hi))
    fail("generation", "{}: {} must be a number from {} to {}, found {}", file.string(), key, lo, hi, v.dump());
  if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) fail("generation", "{}: {} must be an integer, found {}", file.string(), key, v.dump());
  }
  out = v.get<T>();
  return true;
}

void read_sampling(const json& g, const fs::path& file, SamplerOptions& s) {
  bool do_sample = false;
  if (g.contains("do_sample") && !g["do_sample"].is_null()) {
    if (!g["do_sample"].is_boolean())
      fail("generation", "{}: do_sample must be true or false, found {}", file.string(), g["do_sample"].dump());
    do_sample = g["do_sample"].get<bool>();
  }
  read_number(g, "repetition_penalty", file, s.repetition_penalty, 1e-6, 1e6);
  if (!do_sample) return;  // Hugging Face: greedy unless do_sample, whatever the temperature
  s.temperature = 1.0f;
  s.top_k = 50;  // transformers' GenerationConfig defaults
  s.top_p = 1.0f;
  read_number(g, "temperature", file, s.temperature, 0.0, 1e6);
  read_number(g, "top_k", file, s.top_k, 0.0, 2147483647.0);
  read_number(g, "top_p", file, s.top_p, 1e-9, 1.0);
  read_number(g, "min_p", file, s.min_p, 0.0, 1.0);
}

}  // namespace

GenerationDefaults read_generation_defaults(const std::string& model_path, const Tokenizer* tok) {
  GenerationDefaults d;
  if (is_gguf_path(model_path)) {
    const GgufFile f = GgufFile::open(model_path);
    for (const char* key :
         {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
      if (auto id = f.opt_int(key); id && *id >= 0 && *id <= INT32_MAX) d.eos_ids.push_back(static_cast<int32_t>(*id));
    }
    d.files.push_back(model_path);
  } else {
    const fs::path dir(model_path);
    for (const char* name : {"config.json", "generation_config.json"}) {
      const fs::path file = dir / name;
      if (!fs::exists(file)) continue;
      const json j = read_json(file);
      add_ids(j, "eos_token_id", file, d.eos_ids);
      if (std::string(name) == "generation_config.json") read_sampling(j, file, d.sampler);
      d.files.push_back(file.string());
    }
  }
  if (tok != nullptr && tok->eos_id()) d.eos_ids.push_back(*tok->eos_id());
  std::sort(d.eos_ids.begin(), d.eos_ids.end());
  d.eos_ids.erase(std::unique(d.eos_ids.begin(), d.eos_ids.end()), d.eos_ids.end());
  return d;
}

}  // namespace moe
