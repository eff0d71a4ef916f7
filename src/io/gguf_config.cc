// GGUF metadata -> config.json (see gguf_config.h). Keys as llama.cpp's converters write them
// (gguf-py's Keys.LLM / Keys.Attention / Keys.Rope), read with the file's typed getters so a key of the
// wrong type is an error naming it.
#include "io/gguf_config.h"

#include <filesystem>

#include <fmt/format.h>

#include "util/error.h"

namespace moe {
namespace {

struct ArchInfo {
  const char* gguf;        // general.architecture
  const char* model_type;  // Hugging Face model_type (Mixtral when the llama architecture has experts)
};
constexpr ArchInfo kArchs[] = {
    {"llama", "llama"}, {"qwen2moe", "qwen2_moe"},    {"qwen3moe", "qwen3_moe"},
    {"olmoe", "olmoe"}, {"deepseek2", "deepseek_v2"}, {"gpt-oss", "gpt_oss"},
};

class Meta {
 public:
  Meta(const GgufFile& f, std::string arch) : f_(f), a_(std::move(arch)) {}
  std::string key(const std::string& k) const { return a_ + "." + k; }
  int64_t req(const std::string& k) const { return f_.req_int(key(k)); }
  std::optional<int64_t> opt(const std::string& k) const { return f_.opt_int(key(k)); }
  std::optional<double> num(const std::string& k) const { return f_.opt_float(key(k)); }
  std::optional<bool> flag(const std::string& k) const { return f_.opt_bool(key(k)); }
  std::optional<std::string> str(const std::string& k) const { return f_.opt_str(key(k)); }
  [[noreturn]] void bad(const std::string& k, const std::string& what) const {
    fail("gguf", "{}: key {}: {}", f_.path(), key(k), what);
  }
  const GgufFile& file() const { return f_; }
  const std::string& arch() const { return a_; }

 private:
  const GgufFile& f_;
  std::string a_;
};

// Vocabulary size: {arch}.vocab_size, else the token list, else the embedding's rows.
int64_t vocab_size(const Meta& m) {
  if (auto v = m.opt("vocab_size")) return *v;
  if (const GgufValue* t = m.file().find("tokenizer.ggml.tokens")) {
    if (t->array_size() > 0) return static_cast<int64_t>(t->array_size());
  }
  if (const GgufTensor* e = m.file().find_tensor("token_embd.weight"); e && e->ne.size() == 2) return e->ne[1];
  fail("gguf", "{}: no vocabulary size: none of {}, tokenizer.ggml.tokens, token_embd.weight", m.file().path(),
       m.key("vocab_size"));
}

void put_common(const Meta& m, nlohmann::json& c) {
  c["num_hidden_layers"] = m.req("block_count");
  c["hidden_size"] = m.req("embedding_length");
  c["num_attention_heads"] = m.req("attention.head_count");
  c["num_key_value_heads"] = m.opt("attention.head_count_kv").value_or(c["num_attention_heads"].get<int64_t>());
  c["vocab_size"] = vocab_size(m);
  c["rms_norm_eps"] = m.num("attention.layer_norm_rms_epsilon").value_or(1e-6);
  c["rope_theta"] = m.num("rope.freq_base").value_or(10000.0);
  if (auto ctx = m.opt("context_length")) c["max_position_embeddings"] = *ctx;
  if (auto ff = m.opt("feed_forward_length")) c["intermediate_size"] = *ff;
  c["tie_word_embeddings"] = m.file().find_tensor("output.weight") == nullptr;
  c["torch_dtype"] = "bfloat16";
  c["hidden_act"] = "silu";
  const auto key_len = m.opt("attention.key_length");
  const auto value_len = m.opt("attention.value_length");
  if (key_len && m.arch() != "deepseek2") {
    if (value_len && *value_len != *key_len) m.bad("attention.value_length", "differs from key_length (unsupported)");
    c["head_dim"] = *key_len;
  }
  if (auto n = m.opt("expert_count")) c["num_experts"] = *n;
  if (auto k = m.opt("expert_used_count")) c["num_experts_per_tok"] = *k;
  if (auto type = m.str("rope.scaling.type"); type && *type != "none") {
    nlohmann::json rs;
    if (*type != "yarn" && *type != "linear") m.bad("rope.scaling.type", fmt::format("\"{}\" is not supported", *type));
    rs["rope_type"] = *type;
    rs["factor"] = m.num("rope.scaling.factor").value_or(1.0);
    if (auto orig = m.opt("rope.scaling.original_context_length")) rs["original_max_position_embeddings"] = *orig;
    if (auto bf = m.num("rope.scaling.yarn_beta_fast")) rs["beta_fast"] = *bf;
    if (auto bs = m.num("rope.scaling.yarn_beta_slow")) rs["beta_slow"] = *bs;
    c["rope_scaling"] = rs;
  }
}

// gpt-oss: every other layer slides (layers 0, 2, ...), as llama.cpp's swa pattern 2 and the HF config's
// layer_types say; gate/up/down of size expert_feed_forward_length.
void put_gpt_oss(const Meta& m, nlohmann::json& c) {
  c["model_type"] = "gpt_oss";
  c["num_local_experts"] = m.req("expert_count");
  c.erase("num_experts");
  c["intermediate_size"] = m.req("expert_feed_forward_length");
  c["sliding_window"] = m.req("attention.sliding_window");
  std::vector<std::string> types;
  for (int64_t i = 0; i < c["num_hidden_layers"].get<int64_t>(); ++i)
    types.push_back(i % 2 == 0 ? "sliding_attention" : "full_attention");
  c["layer_types"] = types;
  c["attention_bias"] = true;
  if (c.contains("rope_scaling")) c["rope_scaling"]["truncate"] = false;  // gpt-oss's YaRN does not truncate
}

void put_deepseek2(const Meta& m, nlohmann::json& c) {
  const int64_t rope = m.req("rope.dimension_count");
  const int64_t kv_lora = m.req("attention.kv_lora_rank");
  int64_t qk_head, v_head;
  if (auto k_mla = m.opt("attention.key_length_mla")) {  // converters that split kv_b into k_b / v_b
    qk_head = *k_mla;
    v_head = m.req("attention.value_length_mla");
  } else {
    qk_head = m.req("attention.key_length");
    v_head = m.req("attention.value_length");
  }
  if (qk_head <= rope) m.bad("attention.key_length", fmt::format("{} is not above the rope width {}", qk_head, rope));
  c["qk_rope_head_dim"] = rope;
  c["qk_nope_head_dim"] = qk_head - rope;
  c["v_head_dim"] = v_head;
  c["kv_lora_rank"] = kv_lora;
  c["q_lora_rank"] = m.opt("attention.q_lora_rank").has_value() ? nlohmann::json(*m.opt("attention.q_lora_rank"))
                                                                : nlohmann::json(nullptr);
  c["n_routed_experts"] = m.req("expert_count");
  c.erase("num_experts");
  c["moe_intermediate_size"] = m.req("expert_feed_forward_length");
  c["n_shared_experts"] = m.opt("expert_shared_count").value_or(0);
  c["first_k_dense_replace"] = m.opt("leading_dense_block_count").value_or(0);
  c["routed_scaling_factor"] = m.num("expert_weights_scale").value_or(1.0);
  c["norm_topk_prob"] = m.flag("expert_weights_norm").value_or(false);
  c["n_group"] = m.opt("expert_group_count").value_or(1);
  c["topk_group"] = m.opt("expert_group_used_count").value_or(1);
  const int64_t gating = m.opt("expert_gating_func").value_or(1);
  if (gating != 1 && gating != 2)
    m.bad("expert_gating_func", fmt::format("{} (expected 1 softmax or 2 sigmoid)", gating));
  // Sigmoid gating with a score-correction bias is DeepSeek-V3 (and Kimi-K2); softmax is DeepSeek-V2.
  bool has_bias = false;
  for (const GgufTensor& t : m.file().tensors()) has_bias = has_bias || t.name.find("exp_probs_b") != std::string::npos;
  const bool v3 = gating == 2;
  c["model_type"] = v3 ? "deepseek_v3" : "deepseek_v2";
  c["scoring_func"] = v3 ? "sigmoid" : "softmax";
  c["topk_method"] = v3 ? "noaux_tc" : (c["n_group"].get<int64_t>() > 1 ? "group_limited_greedy" : "greedy");
  if (v3 && !has_bias)
    m.bad("expert_gating_func", "sigmoid gating without exp_probs_b tensors (DeepSeek-V3 needs them)");
  if (c.contains("rope_scaling")) {
    // The converter stores 0.1 * mscale_all_dim as yarn_log_multiplier and drops mscale; like llama.cpp,
    // take mscale = mscale_all_dim (what DeepSeek-V2's configs say; V3's are both 1).
    const double all = m.num("rope.scaling.yarn_log_multiplier").value_or(0.0) / 0.1;
    c["rope_scaling"]["mscale_all_dim"] = all;
    c["rope_scaling"]["mscale"] = all != 0.0 ? all : 1.0;
  }
  c["rope_interleave"] = true;
}

}  // namespace

std::string gguf_supported_architectures() {
  std::string s;
  for (const ArchInfo& a : kArchs) s += (s.empty() ? "" : ", ") + std::string(a.gguf);
  return s;
}

nlohmann::json gguf_hf_config(const GgufFile& f) {
  const auto arch = f.opt_str("general.architecture");
  if (!arch) fail("gguf", "{}: missing key general.architecture", f.path());
  const ArchInfo* info = nullptr;
  for (const ArchInfo& a : kArchs)
    if (*arch == a.gguf) info = &a;
  if (!info) {
    fail("gguf", "{}: key general.architecture: \"{}\" is not supported (supported: {})", f.path(), *arch,
         gguf_supported_architectures());
  }
  const Meta m(f, *arch);
  nlohmann::json c;
  put_common(m, c);
  c["model_type"] = info->model_type;
  const std::string a = *arch;
  if (a == "llama") {
    if (m.opt("expert_count").value_or(0) > 0) {
      c["model_type"] = "mixtral";
      c["num_local_experts"] = c["num_experts"];
      c.erase("num_experts");
    }
  } else if (a == "qwen2moe" || a == "qwen3moe") {
    c["moe_intermediate_size"] = m.req("expert_feed_forward_length");
    if (auto sh = m.opt("expert_shared_feed_forward_length")) c["shared_expert_intermediate_size"] = *sh;
    c["norm_topk_prob"] = a == "qwen3moe";  // what llama.cpp's graphs do
  } else if (a == "olmoe") {
    c["intermediate_size"] = m.opt("expert_feed_forward_length").value_or(c.value("intermediate_size", int64_t{0}));
    c["norm_topk_prob"] = false;
  } else if (a == "deepseek2") {
    put_deepseek2(m, c);
  } else if (a == "gpt-oss") {
    put_gpt_oss(m, c);
  }
  return c;
}

ModelSpec gguf_model_spec(const GgufFile& f) {
  ModelSpec s = parse_model_spec(gguf_hf_config(f), f.path());
  if (*f.opt_str("general.architecture") == "llama") s.rope.interleaved = true;
  return s;
}

bool is_gguf_path(const std::string& path) {
  namespace fs = std::filesystem;
  return fs::is_regular_file(path) && fs::path(path).extension() == ".gguf";
}

ModelSpec load_model_spec_any(const std::string& path) {
  if (is_gguf_path(path)) return gguf_model_spec(GgufFile::open(path));
  return load_model_spec(path);
}

}  // namespace moe
