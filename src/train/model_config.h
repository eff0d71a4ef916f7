// Architecture of the MoE language model the trainer builds, and its Hugging Face config.json
// (Qwen3-MoE: model_type "qwen3_moe"), plus the parameter layout: every tensor with its HF
// name and shape, all parameters in one allocation (llm.c), gradients in another.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moe::train {

struct ModelConfig {
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

  void validate() const;  // throws moe::Error("train", ...) naming the field
  // Hugging Face Qwen3-MoE config.json (every field a loader needs; decoder_sparse_step 1).
  nlohmann::json to_hf_json() const;
  // Reads a qwen3_moe config.json; `path` names the file in errors.
  static ModelConfig from_hf_json(const nlohmann::json& j, const std::string& path);
  bool operator==(const ModelConfig&) const = default;
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
