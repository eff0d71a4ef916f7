// ModelSpec: the architecture of a model, normalized across Hugging Face config.json dialects.
// One alias table per family (spec/config_families.cc) fills it; every config key is either
// read, acknowledged as irrelevant to the architecture, or listed in unknown_keys.
// Runtime settings (threads, batch, sampling) never go here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace moe {

// Which tensor-naming dialect and block structure the model uses.
enum class Family {
  kLlama,
  kMistral,
  kQwen2,
  kQwen3,
  kMixtral,
  kPhiMoe,
  kQwen2Moe,
  kQwen3Moe,
  kOlmoe,
  kDeepseek,    // DeepSeekMoE (v1): MHA + shared experts
  kDeepseekV2,  // MLA + shared experts, group-limited routing
  kDeepseekV3,  // also kimi_k2: MLA, sigmoid router with score-correction bias, MTP
  kDeepseekV4,  // mHC, compressed attention, grouped low-rank output, hash layers
  kGlm4Moe,
  kDots1,       // dots.llm1: Qwen3 attention + the DeepSeek-V3 MoE block
  kErnie45Moe,  // ERNIE-4.5-MoE: softmax router with a selection bias (moe_statics), interleaved RoPE
  kGraniteMoe,  // Granite-MoE (and granitemoeshared): multipliers, fused input_linear / output_linear experts
  kJetMoe,      // JetMoE: mixture of attention heads (routed q / o projections, shared kv_proj) + fused MoE MLP
  kMiniMax,     // MiniMax-Text-01: lightning (linear) attention layers between softmax ones, alpha/beta residuals
  // Read by moe inspect only (counted, not run):
  kGrok1,       // Grok-1: four norms per layer, attn / moe_block names
  kMiniMaxM2,   // MiniMax-M2 / M2.5: full-width QK-norm, partial rotary, sigmoid router with bias
  kQwen3Next,   // Qwen3-Next: Gated DeltaNet and gated attention layers, 512 experts + gated shared expert
  kHunyuanMoe,  // Hunyuan-A13B (hunyuan_v1_moe): per-layer lists, QK-norm, shared MLP
  kBailingMoe,  // Ling / Bailing-MoE: fused query_key_value, shared experts
  kGptOss,
  kDbrx,
  kLlama4,
};

enum class AttentionKind {
  kFull,        // softmax attention over the whole context
  kSliding,     // window of sliding_window tokens
  kChunked,     // Llama 4: attention within chunks of attention_chunk_size tokens
  kMla,         // DeepSeek-V2/V3 multi-head latent attention (full context)
  kCompressed,  // DeepSeek-V4: sliding window + compressed KV (ratio 4 with indexer, or 128)
  kLinear,      // Qwen3-Next Gated DeltaNet: a fixed-size recurrent state instead of a KV cache
  kLightning,   // MiniMax lightning attention: linear attention with a per-head decay, state [H, Dh, Dh]
};

enum class ScoringFunc { kSoftmax, kSigmoid, kSqrtSoftplus };
enum class TopkMethod { kGreedy, kGroupLimited, kNoAuxTc };
enum class Activation { kSilu, kGelu, kGeluTanh, kSwigluClamped };
enum class RopeType { kNone, kDefault, kLinear, kDynamic, kYarn, kLlama3, kLongrope };
enum class QkNorm { kNone, kPerHead, kFullWidth, kL2 };  // [Dh] weights / [H*Dh] weights (OLMoE) / no weights
enum class QuantMethod { kNone, kFp8, kMxfp4 };
enum class NormKind { kRms, kLayerNormNoBias, kLayerNorm };

struct LayerSpec {
  bool is_moe = false;
  AttentionKind attention = AttentionKind::kFull;
  int64_t window = 0;        // tokens visible to a query; 0: unlimited
  int compress_ratio = 0;    // DeepSeek-V4: 0 sliding only, 4 CSA (+indexer), 128 HCA
  bool hash_routed = false;  // DeepSeek-V4: experts chosen by a token-id table
  bool use_rope = true;      // Llama 4 NoPE layers: false
};

struct RouterSpec {
  ScoringFunc scoring = ScoringFunc::kSoftmax;
  TopkMethod topk_method = TopkMethod::kGreedy;
  int64_t n_group = 1, topk_group = 1;  // group-limited routing
  bool norm_topk_prob = true;           // renormalize the K selected weights
  double routed_scaling_factor = 1.0;
  bool has_score_bias = false;   // e_score_correction_bias (selection only)
  bool has_router_bias = false;  // gpt-oss router Linear bias
  double jitter_eps = 0;         // PhiMoE sparsemixer: router_jitter_noise sets the relative mask width
};

struct RopeSpec {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  double factor = 1.0;
  int64_t original_max_position = 0;
  double beta_fast = 32, beta_slow = 1, mscale = 1, mscale_all_dim = 0;
  double low_freq_factor = 1, high_freq_factor = 4;
  bool truncate = true;
  double partial_rotary_factor = 1.0;
  bool interleaved = false;  // pairs (2i, 2i+1) instead of halves (i, i + d/2)
  // LongRoPE (Phi-3 / Phi-3.5-MoE): per-frequency divisors [rot_dim / 2] used while the sequence is at
  // most original_max_position tokens long (short) and once it is longer (long), with the cos/sin
  // multiplier of each (short_mscale / long_mscale; 0: the attention factor of the HF formula).
  std::vector<double> short_factor, long_factor;
  double short_mscale = 0, long_mscale = 0;
  double attention_factor = 0;  // rope_scaling.attention_factor; 0: absent
};

struct MlaSpec {
  int64_t q_lora_rank = 0;  // 0: plain q_proj
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
};

struct QuantSpec {
  QuantMethod method = QuantMethod::kNone;
  int64_t block_rows = 128, block_cols = 128;  // fp8 weight block
  std::string fmt;                             // "e4m3"
  std::string scale_fmt;                       // "ue8m0" (DeepSeek-V4) or "" (f32 scales)
  bool experts_fp4 = false;                    // DeepSeek-V4 expert_dtype: fp4
  std::vector<std::string> modules_to_not_convert;
};

// Qwen3-Next's Gated DeltaNet layers (AttentionKind::kLinear).
struct LinearAttnSpec {
  int64_t n_key_heads = 0, n_value_heads = 0;
  int64_t key_head_dim = 0, value_head_dim = 0;
  int64_t conv_kernel = 0;
};

// DeepSeek-V4 only.
struct Dsv4Spec {
  int64_t hc_mult = 0;
  int64_t hc_sinkhorn_iters = 0;
  double hc_eps = 0;
  int64_t index_n_heads = 0, index_head_dim = 0, index_topk = 0;
  int64_t o_groups = 0, o_lora_rank = 0;
  int64_t num_hash_layers = 0;
  double compress_rope_theta = 0;
  std::vector<int> compress_ratios;  // n_layer + n_mtp_layers entries
  // Tensors named as transformers' port (model.embed_tokens, model.layers.N.self_attn.q_a_proj, fused
  // experts) instead of the official checkpoint's (embed, layers.N.attn.wq_a): the loader sets it from
  // the file, as config.json is the same for both.
  bool hf_layout = false;
};

// Granite's scalings (1 everywhere else): embeddings x embedding, each residual branch x residual,
// attention scores x attention (instead of head_dim^-0.5 when set), logits / logits_divisor.
struct MultiplierSpec {
  double embedding = 1.0;
  double residual = 1.0;
  double attention = 0.0;  // 0: head_dim^-0.5
  double logits_divisor = 1.0;
};

// MiniMax's residuals (normed): a block adds nothing to the stream, it replaces it with
// alpha x norm(h) + beta x f(norm(h)), with the factors of the layer's attention kind, then of the MLP.
struct ResidualSpec {
  bool normed = false;
  double full_alpha = 1, full_beta = 1;      // softmax attention layers
  double linear_alpha = 1, linear_beta = 1;  // lightning attention layers
  double mlp_alpha = 1, mlp_beta = 1;
};

struct ModelSpec {
  std::string source;      // file or catalog name it came from
  std::string model_type;  // as written in the config
  Family family = Family::kLlama;

  int64_t n_layer = 0;
  int64_t d_model = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t vocab = 0;
  int64_t n_ff = 0;  // dense FFN width (dense layers)

  int64_t n_expert = 0;       // routed experts (0: dense model)
  int64_t n_expert_used = 0;  // top-k
  int64_t n_ff_expert = 0;
  int64_t n_expert_shared = 0;  // shared experts (count as the config states it)
  int64_t n_ff_shared = 0;  // total shared width (n_expert_shared x width, or Qwen2 shared_expert_intermediate_size)
  bool shared_expert_gate = false;  // Qwen2-MoE: sigmoid(Linear(D, 1)) scales the shared expert
  std::vector<LayerSpec> layers;    // n_layer entries

  RouterSpec router;
  Activation activation = Activation::kSilu;
  double swiglu_limit = 0;    // gpt-oss 7.0, DeepSeek-V4 10.0; 0: no clamp
  double swiglu_alpha = 0;    // gpt-oss 1.702
  bool expert_bias = false;   // gpt-oss expert Linear biases
  bool mlp_bias = false;      // biases on every gate/up/down Linear: dense, shared, routed (ERNIE use_bias, Llama)
  bool lm_head_bias = false;  // lm_head.bias [V] (PhiMoE lm_head_bias, ERNIE use_bias), also with tied weights

  bool attention_bias = false;  // q/k/v biases
  bool o_bias = false;
  QkNorm qk_norm = QkNorm::kNone;
  bool attention_sinks = false;
  double clip_qkv = 0;
  int64_t sliding_window = 0;
  int64_t attention_chunk_size = 0;
  // Llama 4 attention temperature tuning on its NoPE layers: q x (log(floor((pos + 1) / floor) + 1)
  // x scale + 1), pos the absolute position; floor 0: off.
  double attn_temperature_floor = 0, attn_temperature_scale = 0;
  bool is_mla = false;
  MlaSpec mla;
  RopeSpec rope;
  MultiplierSpec multipliers;
  ResidualSpec residual;
  int64_t lightning_block_size = 0;  // MiniMax block_size: the tile of the block form (results do not depend on it)

  NormKind norm = NormKind::kRms;
  double norm_eps = 1e-6;
  // The blocks' norms (input / post-attention) when they do not read norm_eps: JetMoE builds them with
  // RMSNorm's default 1e-6 and only model.norm with rms_norm_eps. 0: norm_eps.
  double block_norm_eps = 0;
  bool tie_word_embeddings = false;
  int64_t n_mtp_layers = 0;
  int64_t max_position = 0;
  std::string torch_dtype = "bfloat16";
  QuantSpec quant;
  Dsv4Spec dsv4;
  LinearAttnSpec linear_attn;

  // Llama 4 configs wrap the text model (text_config) and a vision tower we do not count.
  bool multimodal_wrapper = false;
  std::string tensor_prefix;  // "language_model." for the Llama 4 wrapper

  std::vector<std::string> unknown_keys;  // keys neither read nor known to be irrelevant
  std::vector<std::string> notes;         // caveats to show the user (vision tower, assumptions)

  int64_t n_moe_layers() const;
  bool is_moe_model() const { return n_expert > 0; }
};

// Parses a Hugging Face config.json object. source_name is used in error messages.
// Throws moe::Error("spec", ...) for unknown model_type (listing the supported ones), a
// missing required field (named), wrong JSON types, or impossible values.
ModelSpec parse_model_spec(const nlohmann::json& config, const std::string& source_name);
// The text of a config.json: JSON nesting deeper than kMaxJsonDepth and invalid JSON are errors naming
// source_name, then parse_model_spec.
ModelSpec parse_model_spec_text(std::string_view text, const std::string& source_name);
// Reads config.json (a file, or a directory containing one) and parses it.
ModelSpec load_model_spec(const std::string& path);

// The model_type values parse_model_spec accepts, sorted.
std::vector<std::string> supported_model_types();

const char* family_name(Family f);
const char* attention_kind_name(AttentionKind k);
const char* scoring_func_name(ScoringFunc s);
const char* activation_name(Activation a);
const char* quant_method_name(QuantMethod q);

}  // namespace moe
