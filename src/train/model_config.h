// Architecture of the MoE language model the trainer builds, and its Hugging Face config.json
// (Qwen3-MoE: model_type "qwen3_moe"; or DeepSeek-V3: "deepseek_v3", MLA + sigmoid router with
// e_score_correction_bias + shared experts + optional dense first layers), plus the parameter
// layout: every tensor with its HF name and shape, all parameters in one allocation (llm.c).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moe::train {

enum class Arch { kQwen3Moe, kDeepseekV3 };

// Upper bounds on a training config's sizes (validate() and the `moe train` flag ranges). What
// fits in memory is checked separately (train_memory.h).
inline constexpr int kMaxTrainCount = 1 << 16;   // layers, heads, head dims, experts
inline constexpr int kMaxTrainWidth = 1 << 20;   // hidden size, expert widths, latent ranks
inline constexpr int kMaxTrainTokens = 1 << 24;  // vocabulary, max_position_embeddings

struct ModelConfig {
  Arch arch = Arch::kQwen3Moe;
  int n_layer = 2;
  int d_model = 64;       // D (hidden_size)
  int n_head = 4;         // H
  int n_kv_head = 4;      // Hkv (num_key_value_heads)
  int head_dim = 16;      // Dh
  int n_expert = 8;       // E
  int top_k = 2;          // K (num_experts_per_tok)
  int d_ff_expert = 128;  // F (moe_intermediate_size)
  int vocab = 256;        // V: byte level
  int max_seq = 128;      // max_position_embeddings
  double rope_theta = 10000.0;
  double rms_eps = 1e-6;
  bool norm_topk_prob = true;
  // DeepSeek-V3 only (n_kv_head and head_dim are unused there: MLA has per-head K and V).
  int q_lora_rank = 0;    // 0: q_proj; else q_a_proj -> q_a_layernorm -> q_b_proj
  int kv_lora_rank = 32;  // latent c_kv width
  int qk_nope_dim = 16;   // qk_nope_head_dim
  int qk_rope_dim = 8;    // qk_rope_head_dim (decoupled RoPE, interleaved pairs)
  int v_head_dim = 16;
  int n_shared_expert = 1;  // n_shared_experts: one SwiGLU of width n_shared * F
  int first_dense = 0;      // first_k_dense_replace: dense SwiGLU layers before the MoE ones
  int d_ff_dense = 128;     // intermediate_size of the dense layers
  double routed_scaling_factor = 1.0;

  bool is_v3() const { return arch == Arch::kDeepseekV3; }
  bool is_moe_layer(int l) const { return !is_v3() || l >= first_dense; }
  int n_moe_layers() const { return is_v3() ? n_layer - std::min(first_dense, n_layer) : n_layer; }

  void validate() const;  // throws moe::Error("train", ...) naming the field
  // Hugging Face config.json (every field a loader needs): Qwen3-MoE or DeepSeek-V3.
  nlohmann::json to_hf_json() const;
  // Reads a qwen3_moe or deepseek_v3 config.json; `path` names the file in errors.
  static ModelConfig from_hf_json(const nlohmann::json& j, const std::string& path);
  bool operator==(const ModelConfig&) const = default;

 private:
  void validate_v3() const;
  static ModelConfig from_qwen3_json(const nlohmann::json& j, const std::string& path);
  static ModelConfig from_deepseek_v3_json(const nlohmann::json& j, const std::string& path);
};

// One parameter tensor inside the flat parameter array.
struct ParamTensor {
  std::string name;            // Hugging Face name, e.g. model.layers.0.mlp.experts.3.up_proj.weight
  std::vector<int64_t> shape;  // PyTorch order
  int64_t offset = 0, numel = 0;
  bool decay = false;  // AdamW weight decay (matrices yes, norm weights no)
};

// Offsets of one layer's tensors in the flat array.
struct LayerOffsets {
  int64_t ln1 = 0, q = 0, k = 0, v = 0, o = 0, q_norm = 0, k_norm = 0, ln2 = 0, gate = 0;
  std::vector<int64_t> expert_gate, expert_up, expert_down;  // [E] each
  // DeepSeek-V3: MLA (q is q_proj, or q_a / q_a_norm / q_b with q-LoRA), shared experts, dense MLP.
  int64_t q_a = 0, q_a_norm = 0, q_b = 0, kv_a = 0, kv_a_norm = 0, kv_b = 0;
  int64_t shared_gate = 0, shared_up = 0, shared_down = 0;  // when n_shared_expert > 0
  int64_t dense_gate = 0, dense_up = 0, dense_down = 0;     // dense layers (no router)
  bool moe = true;
};

struct ParamLayout {
  std::vector<ParamTensor> tensors;  // checkpoint order
  int64_t total = 0;
  int64_t wte = 0, final_norm = 0, lm_head = 0;
  std::vector<LayerOffsets> layers;

  static ParamLayout build(const ModelConfig& c);
  const ParamTensor* find(const std::string& name) const;  // null when absent
};

// Parameters touched per token (embedding row, attention, router, K experts, head): for FLOPs.
int64_t active_params_per_token(const ModelConfig& c);

}  // namespace moe::train
