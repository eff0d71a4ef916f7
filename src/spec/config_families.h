// Internal to spec/: the per-family config.json dialect parsers and the helpers they share.
#pragma once

#include <string>
#include <vector>

#include "spec/config_reader.h"
#include "spec/model_spec.h"

namespace moe::spec_detail {

using FamilyParser = void (*)(ConfigReader&, ModelSpec&);

struct FamilyEntry {
  const char* model_type;
  Family family;
  FamilyParser parse;
};

// Every accepted model_type with its family and dialect parser.
const std::vector<FamilyEntry>& family_table();

// What an absent key shared by the Llama-style dialects means for a family: the default of its
// transformers configuration class (save_pretrained writes these keys, so this matters for
// hand-written and trimmed configs, and for keys a newer transformers moved elsewhere).
struct CommonDefaults {
  double norm_eps = 1e-6;
  double rope_theta = 10000.0;
  double partial_rotary_factor = 1.0;
  int64_t head_dim = 0;  // 0: hidden_size / num_attention_heads
  bool tie_word_embeddings = false;
};
CommonDefaults common_defaults(Family family);

// Dialects counted by `moe inspect` only (config_families_inspect.cc).
void parse_grok1(ConfigReader& r, ModelSpec& s);
void parse_minimax_m2(ConfigReader& r, ModelSpec& s);
void parse_qwen3_next(ConfigReader& r, ModelSpec& s);
void parse_hunyuan_moe(ConfigReader& r, ModelSpec& s);
void parse_bailing_moe(ConfigReader& r, ModelSpec& s);
// MiniMax-Text-01 (config_families_minimax.cc): lightning and softmax attention layers, Mixtral MoE.
void parse_minimax(ConfigReader& r, ModelSpec& s);
// DeepSeek-V4 (config_families_deepseek_v4.cc), in DeepSeek's and transformers' dialects.
void parse_deepseek_v4(ConfigReader& r, ModelSpec& s);
// scoring_func / topk_method values; anything else fails naming the field.
ScoringFunc parse_scoring(ConfigReader& r, const std::string& s);
TopkMethod parse_topk_method(ConfigReader& r, const std::string& s);
// Shared by them: top-k from the usual aliases (num_experts_per_tok, experts_per_token, moe_top_k).
void read_topk(ConfigReader& r, ModelSpec& s, std::initializer_list<std::string_view> expert_keys);
// Qwen-style MoE placement (decoder_sparse_step, mlp_only_layers); sets s.layers.
void read_qwen_moe_layers(ConfigReader& r, ModelSpec& s);

// Shared pieces of the Llama-style dialect.
void read_core_dims(ConfigReader& r, ModelSpec& s);  // layers, hidden, heads, kv heads, head_dim, vocab
void read_common(ConfigReader& r, ModelSpec& s);     // eps, tie, max pos, dtype, activation, rope, quantization
void read_rope(ConfigReader& r, ModelSpec& s);
// The fields of one rope_scaling / rope_parameters object (type, factor, YaRN / llama3 / longrope
// parameters, and its own rope_theta / partial_rotary_factor when it has them) into s.rope.
void read_rope_fields(ConfigReader& q, ModelSpec& s);
void read_quantization(ConfigReader& r, ModelSpec& s);
// Fills s.layers: attention from layer_types / sliding_window; is_moe from is_moe(i).
void set_layers_all(ModelSpec& s, bool is_moe);
void read_layer_types(ConfigReader& r, ModelSpec& s);

}  // namespace moe::spec_detail
