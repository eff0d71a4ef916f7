// Rotary position embeddings: inverse-frequency tables for the Hugging Face rope_scaling kinds
// (default, linear, llama3, YaRN in the HF and DeepSeek forms) and their application to heads,
// half-split (Llama, Qwen, Mistral, gpt-oss: dims i and i + d/2 rotate together) or interleaved
// (DeepSeek MLA, GPT-J: dims 2i and 2i+1). Partial rotary rotates only the first rot_dim dims.
#pragma once

#include <cstdint>
#include <vector>

#include "spec/model_spec.h"

namespace moe {

enum class RopeScaling { kNone, kLinear, kLlama3, kYarn, kLongrope };
enum class RopeStyle { kHalfSplit, kInterleaved };

struct RopeConfig {
  int64_t rot_dim = 0;  // rotated dims per head (head_dim x partial_rotary_factor); even
  double theta = 10000.0;
  RopeScaling scaling = RopeScaling::kNone;
  double factor = 1.0;                        // linear, llama3, YaRN
  double low_freq_factor = 1.0;               // llama3
  double high_freq_factor = 4.0;              // llama3
  int64_t original_max_position = 0;          // llama3 and YaRN (original_max_position_embeddings)
  double beta_fast = 32.0, beta_slow = 1.0;   // YaRN correction range, in rotations
  double mscale = 0.0, mscale_all_dim = 0.0;  // YaRN (DeepSeek); 0 = absent
  double attention_factor = 0.0;              // YaRN; 0 = derived from factor / mscale
  bool truncate = true;             // YaRN: floor/ceil the correction range (HF default, DeepSeek); gpt-oss: false
  std::vector<double> ext_factors;  // LongRoPE: divisors of each frequency [rot_dim / 2]
  double longrope_mscale = 0.0;     // LongRoPE: cos/sin multiplier; 0 = the HF formula from factor
};

struct RopeTable {
  int64_t rot_dim = 0;
  std::vector<float> inv_freq;     // [rot_dim / 2], rounded to f32 as HF stores it
  float attention_scaling = 1.0f;  // multiplies cos and sin (the YaRN attention factor)
};

// 0.1 * mscale * ln(scale) + 1 for scale > 1, else 1 (YaRN's magnitude correction).
double yarn_get_mscale(double scale, double mscale = 1.0);

// Validates the config (throws moe::Error "[rope] ...") and computes the table.
RopeTable make_rope_table(const RopeConfig& config);

// The RoPE of a model (head_dim: the per-head dims RoPE applies to, before partial_rotary_factor;
// for MLA the qk_rope_head_dim). Throws moe::Error "[rope] ..." for rope types not implemented.
// LongRoPE has two tables: long_factors picks the one for sequences longer than
// original_max_position (see longrope_uses_long).
RopeConfig rope_config_from_spec(const RopeSpec& spec, int64_t head_dim, bool long_factors = false);
// LongRoPE as transformers runs it: a sequence of `length` tokens uses the long factors for every
// position once length > original_max_position_embeddings.
inline bool longrope_uses_long(const RopeSpec& spec, int64_t length) {
  return spec.type == RopeType::kLongrope && length > spec.original_max_position;
}
RopeStyle rope_style_from_spec(const RopeSpec& spec);

// Where the heads of T tokens live: x[t * token_stride + h * head_stride + i], i < rot_dim.
struct RopeLayout {
  int64_t n_heads = 1;
  int64_t head_stride = 0;
  int64_t token_stride = 0;
  RopeStyle style = RopeStyle::kHalfSplit;
};

// Rotates, in place, T tokens at positions pos0 .. pos0 + T - 1.
void apply_rope(float* x, int64_t n_tokens, int64_t pos0, const RopeLayout& layout, const RopeTable& table);

}  // namespace moe
