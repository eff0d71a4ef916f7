// parse_model_spec: dispatch on model_type to the family's dialect parser, the shared
// Llama-style readers (dims, rope, quantization, layer types), and the sanity checks.
#include "spec/model_spec.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "spec/config_families.h"
#include "spec/spec_limits.h"
#include "util/error.h"
#include "util/input_file.h"
#include "util/json_depth.h"

namespace moe {
namespace spec_detail {

void read_core_dims(ConfigReader& r, ModelSpec& s) {
  s.n_layer = r.req_int({"num_hidden_layers", "n_layers", "num_layers"});
  s.d_model = r.req_int({"hidden_size", "d_model"});
  s.n_head = r.req_int({"num_attention_heads", "n_heads"});
  if (s.n_head == 0) r.fail_field("num_attention_heads", "must be at least 1");
  s.n_head_kv = r.int_or({"num_key_value_heads"}, s.n_head);
  if (s.n_head_kv == 0) r.fail_field("num_key_value_heads", "must be at least 1");
  if (auto hd = r.opt_int({"head_dim"})) {
    s.head_dim = *hd;
  } else if (const int64_t d = common_defaults(s.family).head_dim; d > 0) {
    s.head_dim = d;
  } else {
    if (s.d_model % s.n_head != 0)
      fail("spec",
           "{}: inconsistent head dims: hidden_size {} is not a multiple of num_attention_heads {} and no head_dim is "
           "given",
           r.source(), s.d_model, s.n_head);
    s.head_dim = s.d_model / s.n_head;
  }
  s.vocab = r.req_int({"vocab_size"});
}

namespace {

Activation parse_activation(ConfigReader& r, const std::string& name) {
  if (name == "silu" || name == "swish") return Activation::kSilu;
  if (name == "gelu") return Activation::kGelu;
  if (name == "gelu_pytorch_tanh" || name == "gelu_new" || name == "gelu_fast") return Activation::kGeluTanh;
  r.fail_field("hidden_act",
               fmt::format("unsupported activation \"{}\" (expected silu, swish, gelu, gelu_pytorch_tanh)", name));
}

RopeType parse_rope_type(ConfigReader& r, const std::string& t) {
  if (t == "default") return RopeType::kDefault;
  if (t == "linear") return RopeType::kLinear;
  if (t == "dynamic") return RopeType::kDynamic;
  if (t == "yarn" || t == "deepseek_yarn") return RopeType::kYarn;
  if (t == "llama3") return RopeType::kLlama3;
  if (t == "longrope" || t == "su") return RopeType::kLongrope;
  r.fail_field(
      "type",
      fmt::format("unsupported rope scaling type \"{}\" (expected default, linear, dynamic, yarn, llama3, longrope)",
                  t));
}

}  // namespace

namespace {

void check_partial_rotary(ConfigReader& r, double f) {
  if (f <= 0 || f > 1) r.fail_field("partial_rotary_factor", fmt::format("must be in (0, 1], found {}", f));
}

}  // namespace

void read_rope(ConfigReader& r, ModelSpec& s) {
  const CommonDefaults d = common_defaults(s.family);
  s.rope.theta = r.num_or({"rope_theta", "rotary_emb_base"}, d.rope_theta);
  s.rope.partial_rotary_factor = r.num_or({"partial_rotary_factor"}, d.partial_rotary_factor);
  check_partial_rotary(r, s.rope.partial_rotary_factor);
  // transformers 5 writes rope_parameters (rope_theta and partial_rotary_factor inside, rope_type
  // "default" when unscaled); 4.x writes rope_scaling beside a top-level rope_theta.
  const char* key = r.has({"rope_scaling"}) ? "rope_scaling" : "rope_parameters";
  const nlohmann::json* rs = r.object({"rope_scaling", "rope_parameters"});
  if (!rs) return;
  // DeepSeek-V4's transformers config nests two sets ("main", "compress"): its family parser reads them.
  if (s.family == Family::kDeepseekV4 && rs->contains("main") && rs->contains("compress")) return;
  ConfigReader q(*rs, r.source(), r.prefix() + key + ".");
  read_rope_fields(q, s);
}

void read_rope_fields(ConfigReader& q, ModelSpec& s) {
  if (q.has({"partial_rotary_factor"})) {
    s.rope.partial_rotary_factor = q.num_or({"partial_rotary_factor"}, s.rope.partial_rotary_factor);
    check_partial_rotary(q, s.rope.partial_rotary_factor);
  }
  s.rope.type = parse_rope_type(q, q.str_or({"type", "rope_type"}, "default"));
  s.rope.factor = q.num_or({"factor"}, 1.0);
  s.rope.original_max_position = q.int_or({"original_max_position_embeddings"}, 0);
  s.rope.beta_fast = q.num_or({"beta_fast"}, 32.0);
  s.rope.beta_slow = q.num_or({"beta_slow"}, 1.0);
  s.rope.mscale = q.num_or({"mscale"}, 1.0);
  s.rope.mscale_all_dim = q.num_or({"mscale_all_dim"}, 0.0);
  s.rope.low_freq_factor = q.num_or({"low_freq_factor"}, 1.0);
  s.rope.high_freq_factor = q.num_or({"high_freq_factor"}, 4.0);
  s.rope.truncate = q.bool_or({"truncate"}, true);
  if (q.has({"rope_theta"})) s.rope.theta = q.num_or({"rope_theta"}, s.rope.theta);
  s.rope.attention_factor = q.num_or({"attention_factor"}, 0.0);
  q.acknowledge({"alpha"});  // Hunyuan's NTK-alpha for dynamic scaling (dynamic is not run by the decoder)
  if (s.rope.type == RopeType::kLongrope) {
    // transformers' longrope attention factor uses max_position_embeddings / original_max_position_embeddings
    if (s.max_position > 0 && s.rope.original_max_position > 0)
      s.rope.factor = static_cast<double>(s.max_position) / static_cast<double>(s.rope.original_max_position);
    s.rope.short_factor = q.num_list({"short_factor"});
    s.rope.long_factor = q.num_list({"long_factor"});
    s.rope.short_mscale = q.num_or({"short_mscale"}, 0.0);
    s.rope.long_mscale = q.num_or({"long_mscale"}, 0.0);
    const size_t half = static_cast<size_t>(static_cast<double>(s.head_dim) * s.rope.partial_rotary_factor) / 2;
    for (const auto& [key, f] :
         {std::pair{"short_factor", &s.rope.short_factor}, {"long_factor", &s.rope.long_factor}}) {
      if (f->size() != half)
        q.fail_field(key, fmt::format("has {} entries, expected rotary dims / 2 = {}", f->size(), half));
      for (double v : *f)
        if (!(v > 0)) q.fail_field(key, fmt::format("entries must be positive, found {}", v));
    }
    if (s.rope.original_max_position == 0)
      q.fail_field("original_max_position_embeddings", "longrope needs the pretraining length");
  } else {
    q.acknowledge({"short_factor", "long_factor", "short_mscale", "long_mscale"});
  }
  for (auto& k : q.unused_keys()) s.unknown_keys.push_back(k);
}

void read_quantization(ConfigReader& r, ModelSpec& s) {
  const nlohmann::json* qc = r.object({"quantization_config"});
  if (!qc) return;
  ConfigReader q(*qc, r.source(), "quantization_config.");
  const std::string method = q.str_or({"quant_method"}, "");
  if (method == "fp8") {
    s.quant.method = QuantMethod::kFp8;
    auto block = q.int_list({"weight_block_size"});
    if (!block.empty()) {
      if (block.size() != 2 || block[0] == 0 || block[1] == 0)
        q.fail_field("weight_block_size", "expected two positive integers [rows, cols]");
      s.quant.block_rows = block[0];
      s.quant.block_cols = block[1];
    }
    s.quant.fmt = q.str_or({"fmt"}, "e4m3");
    s.quant.scale_fmt = q.str_or({"scale_fmt"}, "");
    q.acknowledge({"activation_scheme"});
  } else if (method == "mxfp4") {
    s.quant.method = QuantMethod::kMxfp4;
  } else {
    s.notes.push_back(fmt::format(
        "quantization_config.quant_method \"{}\" is not modelled: the registry lists the unquantized weights", method));
    q.acknowledge({"bits",
                   "group_size",
                   "desc_act",
                   "sym",
                   "zero_point",
                   "version",
                   "activation_scheme",
                   "weight_block_size",
                   "fmt",
                   "modules_to_not_convert",
                   "config_groups",
                   "format",
                   "ignore",
                   "kv_cache_scheme",
                   "quantization_status",
                   "global_compression_ratio",
                   "checkpoint_format",
                   "damp_percent",
                   "static_groups",
                   "true_sequential",
                   "model_name_or_path",
                   "model_file_base_name",
                   "backend",
                   "exllama_config",
                   "use_exllama",
                   "dataset",
                   "pad_token_id",
                   "tokenizer",
                   "batch_size"});
  }
  s.quant.modules_to_not_convert = q.str_list({"modules_to_not_convert"});
  for (auto& k : q.unused_keys()) s.unknown_keys.push_back(k);
}

void read_common(ConfigReader& r, ModelSpec& s) {
  r.acknowledge_common();
  const CommonDefaults d = common_defaults(s.family);
  s.norm_eps = r.num_or({"rms_norm_eps", "layer_norm_eps", "norm_eps", "layer_norm_epsilon"}, d.norm_eps);
  s.tie_word_embeddings = r.bool_or({"tie_word_embeddings"}, d.tie_word_embeddings);
  s.max_position = r.int_or({"max_position_embeddings", "max_seq_len"}, 0);
  s.torch_dtype = r.str_or({"torch_dtype", "dtype"}, "bfloat16");
  s.activation = parse_activation(r, r.str_or({"hidden_act", "hidden_activation"}, "silu"));
  read_rope(r, s);
  read_quantization(r, s);
}

void set_layers_all(ModelSpec& s, bool is_moe) {
  check_spec_field(s.source, "num_hidden_layers", s.n_layer, kMaxSpecLayers);  // before the table is sized
  s.layers.assign(static_cast<size_t>(s.n_layer), LayerSpec{});
  for (auto& l : s.layers) l.is_moe = is_moe;
}

void read_layer_types(ConfigReader& r, ModelSpec& s) {
  const std::vector<std::string> types = r.str_list({"layer_types"});
  if (types.empty()) return;
  if (static_cast<int64_t>(types.size()) != s.n_layer)
    r.fail_field("layer_types",
                 fmt::format("has {} entries, expected num_hidden_layers = {}", types.size(), s.n_layer));
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] == "full_attention") {
      s.layers[i].attention = AttentionKind::kFull;
      s.layers[i].window = 0;
    } else if (types[i] == "sliding_attention") {
      if (s.sliding_window == 0)
        r.fail_field("sliding_window", "layer_types has sliding_attention but no sliding_window is set");
      s.layers[i].attention = AttentionKind::kSliding;
      s.layers[i].window = s.sliding_window;
    } else {
      r.fail_field(fmt::format("layer_types[{}]", i),
                   fmt::format("unsupported \"{}\" (expected full_attention or sliding_attention)", types[i]));
    }
  }
}

}  // namespace spec_detail

namespace {

void validate(const ModelSpec& s) {
  check_spec_limits(s);
  auto bad = [&](const std::string& what) { fail("spec", "{}: impossible config: {}", s.source, what); };
  if (s.n_layer == 0) bad("num_hidden_layers is 0");
  if (s.d_model == 0) bad("hidden_size is 0");
  if (s.n_head == 0 || s.n_head_kv == 0) bad("zero attention heads");
  if (s.head_dim == 0 && !s.is_mla) bad("head_dim is 0");
  if (s.vocab == 0) bad("vocab_size is 0");
  if (s.n_head % s.n_head_kv != 0)
    bad(fmt::format("num_attention_heads {} is not a multiple of num_key_value_heads {}", s.n_head, s.n_head_kv));
  if (static_cast<int64_t>(s.layers.size()) != s.n_layer) bad("per-layer table does not match num_hidden_layers");
  const bool any_moe = std::any_of(s.layers.begin(), s.layers.end(), [](const LayerSpec& l) { return l.is_moe; });
  if (any_moe) {
    if (s.n_expert == 0) bad("MoE layers but 0 experts");
    if (s.n_expert_used == 0) bad("num_experts_per_tok (top-k) is 0");
    if (s.n_expert_used > s.n_expert)
      bad(fmt::format("top-k {} is larger than the number of experts {}", s.n_expert_used, s.n_expert));
    if (s.n_ff_expert == 0) bad("expert intermediate size is 0");
    if (s.router.topk_method != TopkMethod::kGreedy) {
      if (s.router.n_group == 0 || s.n_expert % s.router.n_group != 0)
        bad(fmt::format("n_expert {} is not divisible by n_group {}", s.n_expert, s.router.n_group));
      if (s.router.topk_group > s.router.n_group)
        bad(fmt::format("topk_group {} is larger than n_group {}", s.router.topk_group, s.router.n_group));
      if (s.router.topk_group * (s.n_expert / s.router.n_group) < s.n_expert_used)
        bad(fmt::format("topk_group {} groups of {} experts cannot hold top-k {}", s.router.topk_group,
                        s.n_expert / s.router.n_group, s.n_expert_used));
    }
  }
  const bool any_dense = std::any_of(s.layers.begin(), s.layers.end(), [](const LayerSpec& l) { return !l.is_moe; });
  if (any_dense && s.n_ff == 0) bad("dense layers but intermediate_size is 0");
  for (size_t i = 0; i < s.layers.size(); ++i)
    if (s.layers[i].attention == AttentionKind::kSliding && s.layers[i].window == 0)
      bad(fmt::format("layer {} is sliding-window with a window of 0", i));
}

}  // namespace

int64_t ModelSpec::n_moe_layers() const {
  return std::count_if(layers.begin(), layers.end(), [](const LayerSpec& l) { return l.is_moe; });
}

std::vector<std::string> supported_model_types() {
  std::vector<std::string> out;
  for (const auto& e : spec_detail::family_table()) out.push_back(e.model_type);
  std::sort(out.begin(), out.end());
  return out;
}

ModelSpec parse_model_spec(const nlohmann::json& config, const std::string& source_name) {
  ModelSpec s;
  s.source = source_name;
  ConfigReader r(config, source_name);
  const nlohmann::json* mt = r.find({"model_type"});
  if (!mt) {
    std::string list;
    for (auto& t : supported_model_types()) list += (list.empty() ? "" : ", ") + t;
    fail("spec", "{}: missing required field \"model_type\" (one of: {})", source_name, list);
  }
  if (!mt->is_string()) r.fail_field("model_type", "expected a string, found " + mt->dump());
  s.model_type = mt->get<std::string>();
  const spec_detail::FamilyEntry* entry = nullptr;
  for (const auto& e : spec_detail::family_table())
    if (s.model_type == e.model_type) entry = &e;
  if (!entry) {
    std::string list;
    for (auto& t : supported_model_types()) list += (list.empty() ? "" : ", ") + t;
    fail("spec", "{}: unsupported model_type \"{}\"; supported: {}", source_name, s.model_type, list);
  }
  s.family = entry->family;
  entry->parse(r, s);
  for (auto& k : r.unused_keys()) s.unknown_keys.push_back(k);
  std::sort(s.unknown_keys.begin(), s.unknown_keys.end());
  validate(s);
  return s;
}

ModelSpec load_model_spec(const std::string& path) {
  namespace fs = std::filesystem;
  std::string file = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) file = (fs::path(path) / "config.json").string();
  if (!fs::exists(file, ec))
    fail("spec", "{}: cannot open (expected a config.json file or a folder containing one)", file);
  return parse_model_spec_text(read_input_file(file, "", "spec"), file);  // config.json a folder: named
}

ModelSpec parse_model_spec_text(std::string_view text, const std::string& source_name) {
  check_json_depth(text, "spec", source_name);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("spec", "{}: not valid JSON: {}", source_name, e.what());
  }
  return parse_model_spec(j, source_name);
}

const char* family_name(Family f) {
  for (const auto& e : spec_detail::family_table())
    if (e.family == f) return e.model_type;
  return "?";
}

const char* attention_kind_name(AttentionKind k) {
  switch (k) {
    case AttentionKind::kFull:
      return "full";
    case AttentionKind::kSliding:
      return "sliding";
    case AttentionKind::kChunked:
      return "chunked";
    case AttentionKind::kMla:
      return "mla";
    case AttentionKind::kCompressed:
      return "compressed";
    case AttentionKind::kLinear:
      return "linear (gated deltanet)";
    case AttentionKind::kLightning:
      return "lightning (linear, decayed)";
  }
  return "?";
}

const char* scoring_func_name(ScoringFunc s) {
  switch (s) {
    case ScoringFunc::kSoftmax:
      return "softmax";
    case ScoringFunc::kSigmoid:
      return "sigmoid";
    case ScoringFunc::kSqrtSoftplus:
      return "sqrtsoftplus";
  }
  return "?";
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kSilu:
      return "silu";
    case Activation::kGelu:
      return "gelu";
    case Activation::kGeluTanh:
      return "gelu_tanh";
    case Activation::kSwigluClamped:
      return "swiglu_clamped";
  }
  return "?";
}

const char* quant_method_name(QuantMethod q) {
  switch (q) {
    case QuantMethod::kNone:
      return "none";
    case QuantMethod::kFp8:
      return "fp8";
    case QuantMethod::kMxfp4:
      return "mxfp4";
  }
  return "?";
}

}  // namespace moe
