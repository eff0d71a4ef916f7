// GGUF metadata -> config.json (see gguf_config.h). Keys as llama.cpp's converters write them
// (gguf-py's Keys.LLM / Keys.Attention / Keys.Rope), read with the file's typed getters so a key of the
// wrong type is an error naming it.
#include "io/gguf_config.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <span>
#include <vector>

#include <fmt/format.h>

#include "util/error.h"

namespace moe {
namespace {

struct ArchInfo {
  const char* gguf;        // general.architecture
  const char* model_type;  // Hugging Face model_type (Mixtral when the llama architecture has experts)
};
constexpr ArchInfo kArchs[] = {
    {"llama", "llama"},           {"qwen2moe", "qwen2_moe"},    {"qwen3moe", "qwen3_moe"},
    {"olmoe", "olmoe"},           {"deepseek2", "deepseek_v2"}, {"gpt-oss", "gpt_oss"},
    {"glm4moe", "glm4_moe"},      {"dots1", "dots1"},           {"ernie4_5-moe", "ernie4_5_moe"},
    {"granitemoe", "granitemoe"}, {"phimoe", "phimoe"},         {"dbrx", "dbrx"},
    {"llama4", "llama4_text"},
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

// What the checkpoint was stored as, from the attention output matrix of the first layer: float32 /
// float16 for an F32 / F16 file (an F32 file keeps an f32 KV cache by default), bfloat16 otherwise.
std::string storage_dtype(const Meta& m) {
  const GgufTensor* t = m.file().find_tensor("blk.0.attn_output.weight");
  if (t != nullptr && t->ggml_type == ggml_type_of(DType::kF32)) return "float32";
  if (t != nullptr && t->ggml_type == ggml_type_of(DType::kF16)) return "float16";
  return "bfloat16";
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
  c["torch_dtype"] = storage_dtype(m);
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

// The DeepSeek MoE keys (deepseek2, glm4moe, dots1): routed and shared experts, dense lead, scale, norm, groups.
void put_deepseek_moe(const Meta& m, nlohmann::json& c) {
  c["n_routed_experts"] = m.req("expert_count");
  c.erase("num_experts");
  c["moe_intermediate_size"] = m.req("expert_feed_forward_length");
  c["n_shared_experts"] = m.opt("expert_shared_count").value_or(0);
  c["first_k_dense_replace"] = m.opt("leading_dense_block_count").value_or(0);
  c["routed_scaling_factor"] = m.num("expert_weights_scale").value_or(1.0);
  c["norm_topk_prob"] = m.flag("expert_weights_norm").value_or(false);
  c["n_group"] = m.opt("expert_group_count").value_or(1);
  c["topk_group"] = m.opt("expert_group_used_count").value_or(1);
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
  put_deepseek_moe(m, c);
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

bool has_tensor(const Meta& m, const std::string& name) { return m.file().find_tensor(name) != nullptr; }

// A small F32 vector tensor (rotary factors) as numbers.
std::vector<double> f32_vector(const Meta& m, const std::string& name) {
  const GgufTensor* t = m.file().find_tensor(name);
  if (!t) return {};
  if (t->ggml_type != 0 || t->shape().size() != 1)
    fail("gguf", "{}: tensor {}: expected a 1-D F32 vector", m.file().path(), name);
  const std::span<const uint8_t> b = m.file().bytes(*t);
  std::vector<double> v(b.size() / 4);
  for (size_t i = 0; i < v.size(); ++i) {
    float f;
    std::memcpy(&f, b.data() + 4 * i, 4);
    v[i] = f;
  }
  return v;
}

// The DeepSeek-V3 style MoE keys (GLM-4.5, dots.llm1): sigmoid scores, correction bias, groups, shared experts.
void put_v3_style_moe(const Meta& m, nlohmann::json& c) {
  put_deepseek_moe(m, c);
  if (auto g = m.opt("expert_gating_func"); g && *g != 2)
    m.bad("expert_gating_func", fmt::format("{} (this family always routes with sigmoid scores, 2)", *g));
  const int64_t dense = c["first_k_dense_replace"].get<int64_t>();
  if (dense < c["num_hidden_layers"].get<int64_t>() && !has_tensor(m, fmt::format("blk.{}.exp_probs_b.bias", dense)))
    m.bad("expert_gating_func", "sigmoid routing without exp_probs_b tensors (the correction bias is required)");
  c["attention_bias"] = has_tensor(m, "blk.0.attn_q.bias");
}

// GLM-4.5: block_count counts the MTP (nextn) layers; partial rotary from rope.dimension_count.
void put_glm4moe(const Meta& m, nlohmann::json& c) {
  const int64_t nextn = m.opt("nextn_predict_layers").value_or(0);
  const int64_t blocks = c["num_hidden_layers"].get<int64_t>();
  if (nextn < 0 || nextn >= blocks) m.bad("nextn_predict_layers", fmt::format("{} of {} blocks", nextn, blocks));
  c["num_hidden_layers"] = blocks - nextn;
  c["num_nextn_predict_layers"] = nextn;
  put_v3_style_moe(m, c);
  const int64_t head_dim =
      c.value("head_dim", c["hidden_size"].get<int64_t>() / c["num_attention_heads"].get<int64_t>());
  c["head_dim"] = head_dim;
  c["partial_rotary_factor"] = double(m.opt("rope.dimension_count").value_or(head_dim / 2)) / double(head_dim);
  c["use_qk_norm"] = has_tensor(m, "blk.0.attn_q_norm.weight");
}

// ERNIE-4.5-MoE: MoE layers from leading_dense_block_count on, every interleave_moe_layer_step-th.
void put_ernie(const Meta& m, nlohmann::json& c) {
  c["moe_num_experts"] = m.req("expert_count");
  c["moe_k"] = m.req("expert_used_count");
  c.erase("num_experts");
  c.erase("num_experts_per_tok");
  const int64_t f = m.req("expert_feed_forward_length");
  c["moe_intermediate_size"] = f;
  c["moe_layer_interval"] = m.req("interleave_moe_layer_step");
  c["moe_layer_start_index"] = m.opt("leading_dense_block_count").value_or(0);
  c["moe_layer_end_index"] = -1;
  int64_t shared = m.opt("expert_shared_count").value_or(0);
  if (const GgufTensor* t = m.file().find_tensor("blk.1.ffn_gate_shexp.weight"); t && !m.opt("expert_shared_count"))
    shared = t->shape()[0] / f;  // the tensor's width (the converter's expert_shared_feed_forward_length is not it)
  c["moe_num_shared_experts"] = shared;
  c["use_bias"] = has_tensor(m, "blk.0.attn_q.bias");
}

// Granite-MoE: the multipliers; a shared MLP makes it granitemoeshared. llama.cpp scales attention by
// 1/sqrt(head_dim) when attention.scale is absent (the converter writes it only when the config has one).
void put_granitemoe(const Meta& m, nlohmann::json& c) {
  c["num_local_experts"] = m.req("expert_count");
  c.erase("num_experts");
  c["intermediate_size"] = m.opt("expert_feed_forward_length").value_or(m.req("feed_forward_length"));
  const int64_t head_dim =
      c.value("head_dim", c["hidden_size"].get<int64_t>() / c["num_attention_heads"].get<int64_t>());
  c["attention_multiplier"] = m.num("attention.scale").value_or(1.0 / std::sqrt(double(head_dim)));
  c["embedding_multiplier"] = m.num("embedding_scale").value_or(1.0);
  c["residual_multiplier"] = m.num("residual_scale").value_or(1.0);
  c["logits_scaling"] = m.num("logit_scale").value_or(1.0);
  c["attention_bias"] = has_tensor(m, "blk.0.attn_q.bias");
  if (auto sh = m.opt("expert_shared_feed_forward_length"); sh && *sh > 0) {
    c["model_type"] = "granitemoeshared";
    c["shared_intermediate_size"] = *sh;
  }
}

// Phi-3.5-MoE: LayerNorm with biases, a biased head, LongRoPE factors as tensors and one attention factor
// (llama.cpp's converter keeps one for both factor sets). The sparsemixer's mask width is not in llama.cpp's
// files: moe writes it as phimoe.sparsemixer_jitter_eps, else the PhimoeConfig default (0.01, Phi-3.5-MoE's).
void put_phimoe(const Meta& m, nlohmann::json& c) {
  c["num_local_experts"] = m.req("expert_count");
  c.erase("num_experts");
  c["attention_bias"] = has_tensor(m, "blk.0.attn_q.bias");
  c["lm_head_bias"] = has_tensor(m, "output.bias");
  c["router_jitter_noise"] = m.num("sparsemixer_jitter_eps").value_or(0.01);  // written by moe quantize only
  const std::vector<double> lf = f32_vector(m, "rope_factors_long.weight"),
                            sf = f32_vector(m, "rope_factors_short.weight");
  if (lf.empty() != sf.empty()) m.bad("rope.scaling", "rope_factors_long and rope_factors_short must come together");
  if (!lf.empty()) {
    nlohmann::json rs;
    rs["rope_type"] = "longrope";
    rs["long_factor"] = lf;
    rs["short_factor"] = sf;
    const double mscale = m.num("rope.scaling.attn_factor").value_or(1.0);
    rs["long_mscale"] = mscale;
    rs["short_mscale"] = mscale;
    const int64_t orig = m.opt("rope.scaling.original_context_length").value_or(0);
    if (orig <= 0) m.bad("rope.scaling.original_context_length", "required with LongRoPE factors");
    rs["original_max_position_embeddings"] = orig;
    c["original_max_position_embeddings"] = orig;
    c["rope_scaling"] = rs;
  }
}

// DBRX: its own config shape (attn_config / ffn_config); top-k weights normalised as llama.cpp does.
nlohmann::json dbrx_config(const Meta& m, const nlohmann::json& common) {
  nlohmann::json c;
  c["model_type"] = "dbrx";
  c["n_layers"] = common["num_hidden_layers"];
  c["d_model"] = common["hidden_size"];
  c["n_heads"] = common["num_attention_heads"];
  c["vocab_size"] = common["vocab_size"];
  if (common.contains("max_position_embeddings")) c["max_seq_len"] = common["max_position_embeddings"];
  c["torch_dtype"] = common["torch_dtype"];
  if (common["tie_word_embeddings"].get<bool>()) m.bad("output.weight", "DBRX needs a separate output.weight");
  c["attn_config"] = {
      {"kv_n_heads", common["num_key_value_heads"]},
      {"clip_qkv", m.num("attention.clamp_kqv").has_value() ? nlohmann::json(*m.num("attention.clamp_kqv"))
                                                            : nlohmann::json(nullptr)},
      {"rope_theta", common["rope_theta"]}};
  c["ffn_config"] = {{"ffn_hidden_size", m.req("feed_forward_length")},
                     {"moe_num_experts", m.req("expert_count")},
                     {"moe_top_k", m.req("expert_used_count")},
                     {"moe_normalize_expert_weights", 1}};
  return c;
}

// Llama 4 text: llama.cpp fixes the chunk (8192), the NoPE step (4), the temperature tuning (floor 8192,
// scale 0.1) and QK-norm (all but the 128-expert model); attention.sliding_window = 0 turns chunks, NoPE
// layers and temperature off (MobileLLM-style all-full configs).
void put_llama4(const Meta& m, nlohmann::json& c) {
  c["num_local_experts"] = m.req("expert_count");
  c.erase("num_experts");
  c["intermediate_size"] = m.req("expert_feed_forward_length");
  c["intermediate_size_mlp"] = m.req("feed_forward_length");
  c["interleave_moe_layer_step"] = m.req("interleave_moe_layer_step");
  const auto swa = m.opt("attention.sliding_window");
  if (swa && *swa == 0) {
    c["attention_chunk_size"] = nullptr;
    c["no_rope_layer_interval"] = 0;
    c["attn_temperature_tuning"] = false;
  } else {
    c["attention_chunk_size"] = 8192;
    c["no_rope_layer_interval"] = 4;
    c["attn_temperature_tuning"] = true;
    c["floor_scale"] = 8192;
    c["attn_scale"] = 0.1;
  }
  c["use_qk_norm"] = c["num_local_experts"].get<int64_t>() != 128;
  c["attention_bias"] = false;
}

// rope_freqs (Llama 3 / Llama 4 rope scaling, stored as its per-frequency divisors): LongRoPE with one
// factor set and no attention factor computes the same rotation.
void put_rope_freqs(const Meta& m, nlohmann::json& c) {
  const std::vector<double> f = f32_vector(m, "rope_freqs.weight");
  if (f.empty()) return;
  if (c.contains("rope_scaling")) m.bad("rope.scaling.type", "rope scaling given twice (key and rope_freqs)");
  nlohmann::json rs;
  rs["rope_type"] = "longrope";
  rs["long_factor"] = f;
  rs["short_factor"] = f;
  rs["long_mscale"] = 1.0;
  rs["short_mscale"] = 1.0;
  rs["original_max_position_embeddings"] = c.value("max_position_embeddings", int64_t{1} << 20);
  c["rope_scaling"] = rs;
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
  } else if (a == "glm4moe") {
    put_glm4moe(m, c);
  } else if (a == "dots1") {
    put_v3_style_moe(m, c);
  } else if (a == "ernie4_5-moe") {
    put_ernie(m, c);
  } else if (a == "granitemoe") {
    put_granitemoe(m, c);
  } else if (a == "phimoe") {
    put_phimoe(m, c);
  } else if (a == "dbrx") {
    return dbrx_config(m, c);
  } else if (a == "llama4") {
    put_llama4(m, c);
  }
  if (a == "llama" || a == "llama4") put_rope_freqs(m, c);
  return c;
}

ModelSpec gguf_model_spec(const GgufFile& f) {
  ModelSpec s = parse_model_spec(gguf_hf_config(f), f.path());
  // The converter reordered q and k rows so that llama.cpp's pairs (2j, 2j+1) rotate: moe rotates those.
  const std::string arch = *f.opt_str("general.architecture");
  if (arch == "llama" || arch == "granitemoe") s.rope.interleaved = true;
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
