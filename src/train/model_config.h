// Architecture of the MoE language model the trainer builds: a compact, validated view of a
// ModelSpec (spec/model_spec.h) for one of the families the trainer runs: Qwen3-MoE (per-head QK-norm),
// OLMoE (full-width QK-norm), Mixtral (no QK-norm; block_sparse_moe names) and DeepSeek-V3 (MLA,
// sigmoid router with e_score_correction_bias, shared experts, optional dense first layers). The spec
// layer reads and writes config.json (parse_model_spec, write_hf_config); the router options come
// from moe/ (moe_layer_config); the parameter layout from the TensorRegistry (build_registry): one
// reader, one writer, one tensor list, one routing rule for training and inference.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/router.h"
#include "spec/model_spec.h"

namespace moe::train {

// Upper bounds on a training config's sizes (validate() and the `moe train` flag ranges). What
// fits in memory is checked separately (train_memory.h).
inline constexpr int kMaxTrainCount = 1 << 16;   // layers, heads, head dims, experts
inline constexpr int kMaxTrainWidth = 1 << 20;   // hidden size, expert widths, latent ranks
inline constexpr int kMaxTrainTokens = 1 << 24;  // vocabulary, max_position_embeddings

struct ModelConfig {
  Family family = Family::kQwen3Moe;  // kQwen3Moe, kOlmoe, kMixtral or kDeepseekV3
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
  bool norm_topk_prob = true;  // Mixtral: always (its softmax over the chosen logits is the same)
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
  int n_group = 1, topk_group = 1;  // group-limited selection (noaux_tc's top-2-sum group score)

  bool is_mla() const { return family == Family::kDeepseekV3; }
  // Fixed by the family: per head (Qwen3-MoE), over the whole projection (OLMoE), none (Mixtral, MLA).
  QkNorm qk_norm() const {
    return family == Family::kQwen3Moe ? QkNorm::kPerHead
           : family == Family::kOlmoe  ? QkNorm::kFullWidth
                                       : QkNorm::kNone;
  }
  bool is_moe_layer(int l) const { return !is_mla() || l >= first_dense; }
  int n_moe_layers() const { return is_mla() ? n_layer - std::min(first_dense, n_layer) : n_layer; }

  void validate() const;  // throws moe::Error("train", ...) naming the field
  // The ModelSpec of this architecture (source "train"): what the registry, the router options and
  // the config writer take.
  ModelSpec to_spec() const;
  // The family's routing rule from moe/ (scoring, selection, bias, group limit, renormalization, scale).
  RouterOptions router() const;
  // Hugging Face config.json (spec/config_writer.h).
  nlohmann::json to_hf_json() const;
  // The trainer's view of a spec; a feature the trainer does not build is an error naming the config
  // field (spec.source) and what it supports. Notes (what is dropped, such as MTP layers) go to notes.
  static ModelConfig from_spec(const ModelSpec& spec, std::vector<std::string>* notes = nullptr);
  // parse_model_spec + from_spec; `path` names the file in errors.
  static ModelConfig from_hf_json(const nlohmann::json& j, const std::string& path,
                                  std::vector<std::string>* notes = nullptr);
  bool operator==(const ModelConfig&) const = default;

 private:
  void validate_v3() const;
};

// The family a `moe train --arch` value names (qwen3-moe, olmoe, mixtral, deepseek-v3); usage error otherwise.
Family train_family_from_arch(const std::string& arch);
const char* train_arch_name(Family f);

// One parameter tensor inside the flat parameter array.
struct ParamTensor {
  std::string name;            // Hugging Face name, e.g. model.layers.0.mlp.experts.3.up_proj.weight
  std::vector<int64_t> shape;  // PyTorch order
  int64_t offset = 0, numel = 0;
  bool decay = false;  // AdamW weight decay: every role but norms (TensorRegistry role), matrices and vectors
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

  // From build_registry(c.to_spec()) (dense f32, no MTP): the registry's names, shapes and order,
  // except that each routed expert's tensors are laid out gate, up, down (adjacent gate and up: one
  // [2F, D] product), and the selection-only e_score_correction_bias stays out (TrainModel::router_bias).
  static ParamLayout build(const ModelConfig& c);
  const ParamTensor* find(const std::string& name) const;  // null when absent
};

// Parameters touched per token (embedding row, attention, router, K experts, head): for FLOPs.
int64_t active_params_per_token(const ModelConfig& c);

}  // namespace moe::train
