// ModelConfig validation, its ModelSpec both ways, and the parameter layout from the TensorRegistry.
#include "train/model_config.h"

#include <map>

#include "moe/layer_config.h"
#include "spec/config_writer.h"
#include "spec/tensor_registry.h"
#include "util/error.h"

namespace moe::train {

void ModelConfig::validate() const {
  auto within = [](const char* field, int v, int hi) {
    if (v <= 0 || v > hi) fail("train", "model config: {} must be from 1 to {}, got {}", field, hi, v);
  };
  within("num_hidden_layers", n_layer, kMaxTrainCount);
  within("hidden_size", d_model, kMaxTrainWidth);
  within("num_attention_heads", n_head, kMaxTrainCount);
  within("num_key_value_heads", n_kv_head, kMaxTrainCount);
  within("head_dim", head_dim, kMaxTrainCount);
  within("num_experts", n_expert, kMaxTrainCount);
  within("num_experts_per_tok", top_k, kMaxTrainCount);
  within("moe_intermediate_size", d_ff_expert, kMaxTrainWidth);
  within("vocab_size", vocab, kMaxTrainTokens);
  within("max_position_embeddings", max_seq, kMaxTrainTokens);
  if (top_k > n_expert) fail("train", "model config: num_experts_per_tok {} > num_experts {}", top_k, n_expert);
  if (family != Family::kQwen3Moe && family != Family::kOlmoe && family != Family::kMixtral &&
      family != Family::kDeepseekV3)
    fail("train", "model config: the trainer builds qwen3_moe, olmoe, mixtral and deepseek_v3 models, not {}",
         family_name(family));
  if (is_mla()) return validate_v3();
  if (n_head % n_kv_head != 0)
    fail("train", "model config: num_attention_heads {} is not a multiple of num_key_value_heads {}", n_head,
         n_kv_head);
  if (head_dim % 2 != 0) fail("train", "model config: head_dim must be even for RoPE, got {}", head_dim);
  if (!(rms_eps > 0)) fail("train", "model config: rms_norm_eps must be > 0, got {}", rms_eps);
  if (!(rope_theta > 0)) fail("train", "model config: rope_theta must be > 0, got {}", rope_theta);
}

void ModelConfig::validate_v3() const {
  auto within = [](const char* field, int v, int lo, int hi) {
    if (v < lo || v > hi) fail("train", "model config: {} must be from {} to {}, got {}", field, lo, hi, v);
  };
  within("kv_lora_rank", kv_lora_rank, 1, kMaxTrainWidth);
  within("qk_nope_head_dim", qk_nope_dim, 1, kMaxTrainCount);
  within("qk_rope_head_dim", qk_rope_dim, 1, kMaxTrainCount);
  within("v_head_dim", v_head_dim, 1, kMaxTrainCount);
  within("q_lora_rank (0: q_proj)", q_lora_rank, 0, kMaxTrainWidth);
  within("n_shared_experts", n_shared_expert, 0, kMaxTrainCount);
  within("intermediate_size", d_ff_dense, first_dense > 0 ? 1 : 0, kMaxTrainWidth);
  if (first_dense < 0 || first_dense > n_layer)
    fail("train", "model config: first_k_dense_replace must be in [0, num_hidden_layers {}], got {}", n_layer,
         first_dense);
  if (qk_rope_dim % 2 != 0) fail("train", "model config: qk_rope_head_dim must be even for RoPE, got {}", qk_rope_dim);
  if (!(rms_eps > 0)) fail("train", "model config: rms_norm_eps must be > 0, got {}", rms_eps);
  if (!(rope_theta > 0)) fail("train", "model config: rope_theta must be > 0, got {}", rope_theta);
  if (!(routed_scaling_factor > 0))
    fail("train", "model config: routed_scaling_factor must be > 0, got {}", routed_scaling_factor);
  if (n_group < 1 || topk_group < 1 || topk_group > n_group || n_expert % n_group != 0 ||
      top_k > topk_group * (n_expert / n_group))
    fail("train", "model config: n_group {} / topk_group {} do not fit {} experts with top-{}", n_group, topk_group,
         n_expert, top_k);
}

namespace {

int64_t active_params_v3(const ModelConfig& c) {
  const int64_t D = c.d_model, H = c.n_head, r = c.kv_lora_rank, qk = c.qk_nope_dim + c.qk_rope_dim;
  const int64_t q = c.q_lora_rank > 0 ? c.q_lora_rank * (D + H * qk) : H * qk * D;
  const int64_t attn = q + (r + c.qk_rope_dim) * D + r * H * (c.qk_nope_dim + c.v_head_dim) + D * H * c.v_head_dim;
  const int64_t moe =
      static_cast<int64_t>(c.n_expert) * D + static_cast<int64_t>(c.top_k + c.n_shared_expert) * 3 * D * c.d_ff_expert;
  const int64_t dense = 3 * D * static_cast<int64_t>(c.d_ff_dense);
  return c.n_layer * attn + c.n_moe_layers() * moe + (c.n_layer - c.n_moe_layers()) * dense +
         static_cast<int64_t>(c.vocab) * D;
}

}  // namespace

namespace {

// The families the trainer builds: their config.json model_type and their `--arch` name.
struct TrainFamily {
  Family family;
  const char* model_type;
  const char* arch;
};
constexpr TrainFamily kTrainFamilies[] = {{Family::kQwen3Moe, "qwen3_moe", "qwen3-moe"},
                                          {Family::kOlmoe, "olmoe", "olmoe"},
                                          {Family::kMixtral, "mixtral", "mixtral"},
                                          {Family::kDeepseekV3, "deepseek_v3", "deepseek-v3"}};

const TrainFamily& train_family(Family f) {
  for (const TrainFamily& t : kTrainFamilies)
    if (t.family == f) return t;
  return kTrainFamilies[0];
}

const char* model_type_of(Family f) { return train_family(f).model_type; }

}  // namespace

ModelSpec ModelConfig::to_spec() const {
  validate();
  ModelSpec s;
  s.source = "train";
  s.family = family;
  s.model_type = model_type_of(family);
  s.n_layer = n_layer;
  s.d_model = d_model;
  s.n_head = n_head;
  s.n_head_kv = is_mla() ? n_head : n_kv_head;
  s.head_dim = is_mla() ? qk_nope_dim + qk_rope_dim : head_dim;
  s.vocab = vocab;
  s.n_ff = is_mla() ? d_ff_dense : 0;
  s.n_expert = n_expert;
  s.n_expert_used = top_k;
  s.n_ff_expert = d_ff_expert;
  s.n_expert_shared = is_mla() ? n_shared_expert : 0;
  s.n_ff_shared = s.n_expert_shared * d_ff_expert;
  s.layers.assign(static_cast<size_t>(n_layer), LayerSpec{});
  for (int l = 0; l < n_layer; ++l) {
    s.layers[l].is_moe = is_moe_layer(l);
    s.layers[l].attention = is_mla() ? AttentionKind::kMla : AttentionKind::kFull;
  }
  s.router.norm_topk_prob = norm_topk_prob;
  if (is_mla()) {
    s.router.scoring = ScoringFunc::kSigmoid;
    s.router.topk_method = TopkMethod::kNoAuxTc;
    s.router.n_group = n_group;
    s.router.topk_group = topk_group;
    s.router.routed_scaling_factor = routed_scaling_factor;
    s.router.has_score_bias = true;
    s.is_mla = true;
    s.mla = {q_lora_rank, kv_lora_rank, qk_nope_dim, qk_rope_dim, v_head_dim};
    s.rope.interleaved = true;
  }
  s.qk_norm = qk_norm();
  s.rope.theta = rope_theta;
  s.norm_eps = rms_eps;
  s.max_position = max_seq;
  s.torch_dtype = "float32";
  return s;
}

RouterOptions ModelConfig::router() const { return moe_layer_config(to_spec()).router; }

nlohmann::json ModelConfig::to_hf_json() const { return write_hf_config(to_spec()); }

namespace {

// A spec size as the trainer's int, range-checked (validate() checks the limits after).
int as_int(const ModelSpec& s, const char* field, int64_t v) {
  if (v < 0 || v > kMaxTrainTokens * int64_t{64})
    fail("train", "{}: {} = {} is outside what the trainer builds", s.source, field, v);
  return static_cast<int>(v);
}

// What the spec holds that the trainer does not build: an error naming the config field.
void check_trainable(const ModelSpec& s) {
  auto no = [&](const char* field, const std::string& what) {
    fail("train", "{}: {}: {} (the trainer builds plain qwen3_moe, olmoe, mixtral and deepseek_v3 models)", s.source,
         field, what);
  };
  const bool known = s.family == Family::kQwen3Moe || s.family == Family::kOlmoe || s.family == Family::kMixtral ||
                     (s.family == Family::kDeepseekV3 && s.model_type == "deepseek_v3");
  if (!known) no("model_type", fmt::format("\"{}\" is not a family the trainer builds", s.model_type));
  if (s.quant.method != QuantMethod::kNone) no("quantization_config", "quantized weights cannot be trained");
  if (s.attention_bias || s.o_bias) no("attention_bias", "q/k/v/o biases are not built");
  if (s.clip_qkv != 0) no("clip_qkv", "clipping q/k/v is not built");
  if (s.tie_word_embeddings) no("tie_word_embeddings", "tied embeddings are not built");
  if (s.activation != Activation::kSilu) no("hidden_act", "only silu experts are built");
  if (s.norm != NormKind::kRms) no("norm", "only RMSNorm is built");
  if (s.rope.type != RopeType::kDefault) no("rope_scaling", "RoPE scaling (YaRN, linear, ...) is not built");
  if (s.rope.partial_rotary_factor != 1.0) no("partial_rotary_factor", "partial rotary is not built");
  for (const LayerSpec& l : s.layers)
    if (l.window != 0 || l.attention == AttentionKind::kSliding)
      no("sliding_window", "sliding-window attention is not built");
  if (s.is_mla) {
    if (s.router.topk_method != TopkMethod::kNoAuxTc) no("topk_method", "DeepSeek-V3 layers route with noaux_tc");
    int64_t first = 0;
    while (first < s.n_layer && !s.layers[first].is_moe) ++first;
    for (int64_t i = first; i < s.n_layer; ++i)
      if (!s.layers[i].is_moe) no("moe_layer_freq", "dense layers only as the first_k_dense_replace first layers");
  } else {
    for (const LayerSpec& l : s.layers)
      if (!l.is_moe) no("mlp_only_layers", "dense layers are built only for deepseek_v3 (first_k_dense_replace)");
  }
}

}  // namespace

ModelConfig ModelConfig::from_spec(const ModelSpec& s, std::vector<std::string>* notes) {
  check_trainable(s);
  ModelConfig c;
  c.family = s.family;
  c.n_layer = as_int(s, "num_hidden_layers", s.n_layer);
  c.d_model = as_int(s, "hidden_size", s.d_model);
  c.n_head = as_int(s, "num_attention_heads", s.n_head);
  c.n_kv_head = as_int(s, "num_key_value_heads", s.n_head_kv);
  c.head_dim = as_int(s, "head_dim", s.head_dim);
  c.n_expert = as_int(s, "num_experts", s.n_expert);
  c.top_k = as_int(s, "num_experts_per_tok", s.n_expert_used);
  c.d_ff_expert = as_int(s, "moe_intermediate_size", s.n_ff_expert);
  c.vocab = as_int(s, "vocab_size", s.vocab);
  c.max_seq = as_int(s, "max_position_embeddings", s.max_position);
  c.rope_theta = s.rope.theta;
  c.rms_eps = s.norm_eps;
  c.norm_topk_prob = s.family == Family::kMixtral || s.router.norm_topk_prob;
  if (s.is_mla) {
    c.q_lora_rank = as_int(s, "q_lora_rank", s.mla.q_lora_rank);
    c.kv_lora_rank = as_int(s, "kv_lora_rank", s.mla.kv_lora_rank);
    c.qk_nope_dim = as_int(s, "qk_nope_head_dim", s.mla.qk_nope_head_dim);
    c.qk_rope_dim = as_int(s, "qk_rope_head_dim", s.mla.qk_rope_head_dim);
    c.v_head_dim = as_int(s, "v_head_dim", s.mla.v_head_dim);
    c.n_shared_expert = as_int(s, "n_shared_experts", s.n_expert_shared);
    c.first_dense = 0;
    while (c.first_dense < c.n_layer && !s.layers[c.first_dense].is_moe) ++c.first_dense;
    c.d_ff_dense = as_int(s, "intermediate_size", s.n_ff);
    c.routed_scaling_factor = s.router.routed_scaling_factor;
    c.n_group = as_int(s, "n_group", s.router.n_group);
    c.topk_group = as_int(s, "topk_group", s.router.topk_group);
    if (s.n_mtp_layers > 0 && notes)
      notes->push_back(
          fmt::format("num_nextn_predict_layers {}: the multi-token-prediction layers are not trained "
                      "and not written",
                      s.n_mtp_layers));
  }
  if (notes)
    for (const std::string& k : s.unknown_keys)
      notes->push_back(fmt::format("{}: unknown key {} ignored", s.source, k));
  try {
    c.validate();
  } catch (const Error& e) {
    fail("train", "{}: {}", s.source, e.what());
  }
  return c;
}

ModelConfig ModelConfig::from_hf_json(const nlohmann::json& j, const std::string& path,
                                      std::vector<std::string>* notes) {
  return from_spec(parse_model_spec(j, path), notes);
}

Family train_family_from_arch(const std::string& arch) {
  for (const TrainFamily& t : kTrainFamilies)
    if (arch == t.arch) return t.family;
  fail_usage("train", "--arch must be qwen3-moe, olmoe, mixtral or deepseek-v3, got {}", arch);
}

const char* train_arch_name(Family f) { return train_family(f).arch; }

namespace {

// Where each tensor of a layer goes in LayerOffsets, by its name after "model.layers.<l>.".
int64_t* layer_slot(LayerOffsets& o, const std::string& suffix) {
  static const std::map<std::string, int64_t LayerOffsets::*> slots = {
      {"input_layernorm.weight", &LayerOffsets::ln1},
      {"post_attention_layernorm.weight", &LayerOffsets::ln2},
      {"self_attn.q_proj.weight", &LayerOffsets::q},
      {"self_attn.k_proj.weight", &LayerOffsets::k},
      {"self_attn.v_proj.weight", &LayerOffsets::v},
      {"self_attn.o_proj.weight", &LayerOffsets::o},
      {"self_attn.q_norm.weight", &LayerOffsets::q_norm},
      {"self_attn.k_norm.weight", &LayerOffsets::k_norm},
      {"self_attn.q_a_proj.weight", &LayerOffsets::q_a},
      {"self_attn.q_a_layernorm.weight", &LayerOffsets::q_a_norm},
      {"self_attn.q_b_proj.weight", &LayerOffsets::q_b},
      {"self_attn.kv_a_proj_with_mqa.weight", &LayerOffsets::kv_a},
      {"self_attn.kv_a_layernorm.weight", &LayerOffsets::kv_a_norm},
      {"self_attn.kv_b_proj.weight", &LayerOffsets::kv_b},
      {"mlp.gate.weight", &LayerOffsets::gate},
      {"block_sparse_moe.gate.weight", &LayerOffsets::gate},
      {"mlp.shared_experts.gate_proj.weight", &LayerOffsets::shared_gate},
      {"mlp.shared_experts.up_proj.weight", &LayerOffsets::shared_up},
      {"mlp.shared_experts.down_proj.weight", &LayerOffsets::shared_down},
      {"mlp.gate_proj.weight", &LayerOffsets::dense_gate},
      {"mlp.up_proj.weight", &LayerOffsets::dense_up},
      {"mlp.down_proj.weight", &LayerOffsets::dense_down},
  };
  const auto it = slots.find(suffix);
  return it == slots.end() ? nullptr : &(o.*(it->second));
}

// A routed expert's tensor: 0 gate (gate_proj, Mixtral w1), 1 up (up_proj, w3), 2 down (down_proj, w2).
int expert_slot(const std::string& name) {
  auto ends = [&](const char* s) {
    const std::string t(s);
    return name.size() >= t.size() && name.compare(name.size() - t.size(), t.size(), t) == 0;
  };
  if (ends(".gate_proj.weight") || ends(".w1.weight")) return 0;
  if (ends(".up_proj.weight") || ends(".w3.weight")) return 1;
  if (ends(".down_proj.weight") || ends(".w2.weight")) return 2;
  return -1;
}

}  // namespace

ParamLayout ParamLayout::build(const ModelConfig& c) {
  const ModelSpec spec = c.to_spec();
  const TensorRegistry reg = build_registry(spec, {WeightFormat::kDense, DType::kF32, false});
  std::vector<const TensorEntry*> order;
  for (const TensorEntry& t : reg.tensors)
    if (!(t.role == Role::kRouter && t.shape.size() == 1)) order.push_back(&t);  // the selection bias is state
  // Each routed expert's tensors gate, up, down (Mixtral stores w1, w2, w3).
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && order[j]->role == Role::kRoutedExpert && order[j]->expert == order[i]->expert &&
           order[j]->layer == order[i]->layer)
      ++j;
    std::stable_sort(order.begin() + i, order.begin() + j, [](const TensorEntry* a, const TensorEntry* b) {
      return expert_slot(a->name) < expert_slot(b->name);
    });
    i = std::max(j, i + 1);
  }
  ParamLayout p;
  p.layers.resize(static_cast<size_t>(c.n_layer));
  for (int l = 0; l < c.n_layer; ++l) {
    p.layers[l].moe = c.is_moe_layer(l);
    if (p.layers[l].moe)
      for (auto* v : {&p.layers[l].expert_gate, &p.layers[l].expert_up, &p.layers[l].expert_down})
        v->assign(static_cast<size_t>(c.n_expert), -1);
  }
  for (const TensorEntry* t : order) {
    ParamTensor pt{t->name, t->shape, p.total, t->numel(), t->role != Role::kNorm};
    p.total += pt.numel;
    p.tensors.push_back(pt);
    int64_t* slot = nullptr;
    if (t->layer < 0) {
      slot = t->role == Role::kEmbedding ? &p.wte : t->role == Role::kLmHead ? &p.lm_head : &p.final_norm;
    } else if (t->role == Role::kRoutedExpert && expert_slot(t->name) >= 0) {
      LayerOffsets& o = p.layers[t->layer];
      auto& v = expert_slot(t->name) == 0 ? o.expert_gate : expert_slot(t->name) == 1 ? o.expert_up : o.expert_down;
      slot = &v[t->expert];
    } else {
      slot = layer_slot(p.layers[t->layer], t->name.substr(fmt::format("model.layers.{}.", t->layer).size()));
    }
    if (!slot) fail("train", "{} model: the trainer has no place for tensor {}", spec.model_type, t->name);
    *slot = pt.offset;
  }
  return p;
}

const ParamTensor* ParamLayout::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

int64_t active_params_per_token(const ModelConfig& c) {
  if (c.is_mla()) return active_params_v3(c);
  const int64_t D = c.d_model, Dh = c.head_dim;
  const int64_t attn = D * (c.n_head * Dh) * 2 + D * (c.n_kv_head * Dh) * 2;
  const int64_t moe = static_cast<int64_t>(c.n_expert) * D + static_cast<int64_t>(c.top_k) * 3 * D * c.d_ff_expert;
  return c.n_layer * (attn + moe) + static_cast<int64_t>(c.vocab) * D;
}

}  // namespace moe::train
