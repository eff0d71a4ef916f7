// The tokenizer.* GGUF metadata for a Hugging Face model folder, as llama.cpp's converter writes it
// (convert_hf_to_gguf's _set_vocab_gpt2 / _set_vocab_sentencepiece and gguf-py's SpecialVocab), except
// that the pre-tokenizer name comes from the tokenizer.json regexes instead of a hash of probe ids, and
// SentencePiece scores come from the merge ranks (a folder has no tokenizer.model to take them from).
#include <fmt/format.h>

#include <cctype>
#include <climits>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <unordered_map>

#include "tokenizer/gguf_pre.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/pipeline.h"
#include "util/error.h"
#include "util/json_depth.h"

namespace moe {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const char* const kMetaspace = "\xE2\x96\x81";  // U+2581

struct HfFolder {
  std::string dir, tokenizer_path;
  json tokenizer, config, model_config, generation;  // null when the file is absent
};

json read_json_file(const fs::path& path, bool required) {
  if (!fs::exists(path)) {
    if (required) fail("tokenizer", "{}: missing (a Hugging Face model folder has a tokenizer.json)", path.string());
    return json();
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  try {
    check_json_depth(ss.str(), "tokenizer", path.string());
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    fail("tokenizer", "{}: malformed JSON: {}", path.string(), e.what());
  }
}

// The tokenizer's kind: "gpt2" with a pre-tokenizer name, or "llama" with its space prefix.
struct Kind {
  bool spm = false;
  std::string pre;
  bool add_space_prefix = false;
};

void flatten(const json& j, const char* list_key, std::vector<json>& out) {
  if (j.is_null()) return;
  if (j.is_object() && j.value("type", "") == "Sequence" && j.contains(list_key)) {
    for (const json& x : j[list_key]) flatten(x, list_key, out);
    return;
  }
  out.push_back(j);
}

std::string gpt2_pre_name(const HfFolder& hf) {
  const std::string& file = hf.tokenizer_path;
  std::vector<json> steps;
  flatten(hf.tokenizer.value("pre_tokenizer", json()), "pretokenizers", steps);
  std::vector<std::string> regexes;
  for (size_t i = 0; i < steps.size(); ++i) {
    const std::string type = steps[i].value("type", "");
    const json& pattern = steps[i].value("pattern", json::object());
    if (type == "Split" && pattern.contains("Regex") && steps[i].value("behavior", "") == "Isolated" &&
        !steps[i].value("invert", false)) {
      regexes.push_back(pattern["Regex"].get<std::string>());
    } else if (type == "ByteLevel" && i + 1 == steps.size() && !steps[i].value("add_prefix_space", false)) {
      if (steps[i].value("use_regex", true)) regexes.push_back(tok::gpt2_split_regex());
    } else {
      fail("tokenizer",
           "{}: pre_tokenizer step {} ({}) has no llama.cpp equivalent (llama.cpp knows Split regexes with "
           "behavior Isolated, then ByteLevel without add_prefix_space)",
           file, i, steps[i].dump().substr(0, 300));
    }
  }
  const bool ignore_merges = hf.tokenizer["model"].value("ignore_merges", false);
  const tok::GgufPreTokenizer* pre = tok::gguf_pre_for_regexes(regexes, ignore_merges);
  if (!pre)
    fail("tokenizer",
         "{}: pre_tokenizer: the split regexes {} are not those of any llama.cpp pre-tokenizer this converter "
         "knows ({})",
         file, json(regexes).dump(), tok::gguf_pre_names());
  // llama.cpp does not normalize byte-level text; NFC (Qwen) is dropped as its converter drops it.
  std::vector<json> norms;
  flatten(hf.tokenizer.value("normalizer", json()), "normalizers", norms);
  for (const json& n : norms)
    if (n.value("type", "") != "NFC")
      fail("tokenizer", "{}: normalizer {} has no llama.cpp equivalent for a byte-level tokenizer", file,
           n.dump().substr(0, 200));
  return pre->names[0];
}

// SentencePiece-style BPE: spaces escaped as U+2581 by a Replace normalizer (with or without a
// Prepend) or a Metaspace pre-tokenizer that does not split.
bool spm_space_prefix(const HfFolder& hf) {
  const std::string& file = hf.tokenizer_path;
  std::vector<json> norms, pres;
  flatten(hf.tokenizer.value("normalizer", json()), "normalizers", norms);
  flatten(hf.tokenizer.value("pre_tokenizer", json()), "pretokenizers", pres);
  bool prefix = false, escaped = false;
  for (const json& n : norms) {
    const std::string type = n.value("type", "");
    if (type == "Prepend" && n.value("prepend", "") == kMetaspace && !escaped)
      prefix = true;
    else if (type == "Replace" && n.value("pattern", json::object()).value("String", "") == " " &&
             n.value("content", "") == kMetaspace)
      escaped = true;
    else
      fail("tokenizer", "{}: normalizer {} has no llama.cpp SentencePiece equivalent", file, n.dump().substr(0, 200));
  }
  for (const json& p : pres) {
    if (p.value("type", "") != "Metaspace" || p.value("split", true) ||
        p.value("replacement", kMetaspace) != kMetaspace)
      fail("tokenizer", "{}: pre_tokenizer {} has no llama.cpp SentencePiece equivalent (a Metaspace without split)",
           file, p.dump().substr(0, 200));
    escaped = true;
    prefix = p.value("prepend_scheme", "always") != "never";
  }
  if (!escaped)
    fail("tokenizer",
         "{}: a byte-fallback BPE without a Replace(\" \", \"\u2581\") normalizer or Metaspace "
         "pre-tokenizer is not a SentencePiece tokenizer llama.cpp can run",
         file);
  return prefix;
}

Kind classify(const HfFolder& hf) {
  const json& model = hf.tokenizer["model"];
  if (model.value("type", model.contains("merges") ? "BPE" : "") != "BPE")
    fail("tokenizer", "{}: model.type {} is not supported (only BPE)", hf.tokenizer_path,
         model.value("type", json()).dump());
  std::vector<json> pres;
  flatten(hf.tokenizer.value("pre_tokenizer", json()), "pretokenizers", pres);
  bool byte_level = false;
  for (const json& p : pres) byte_level = byte_level || p.value("type", "") == "ByteLevel";
  Kind k;
  if (byte_level && !model.value("byte_fallback", false)) {
    k.pre = gpt2_pre_name(hf);
  } else if (!byte_level && model.value("byte_fallback", false)) {
    k.spm = true;
    k.add_space_prefix = spm_space_prefix(hf);
  } else {
    fail("tokenizer",
         "{}: neither byte-level BPE (a ByteLevel pre-tokenizer) nor SentencePiece BPE (model.byte_fallback "
         "true): llama.cpp has no model for it",
         hf.tokenizer_path);
  }
  return k;
}

bool looks_special(const std::string& t) {
  auto wrapped = [&](std::string_view open, std::string_view close) {
    return t.size() >= open.size() + close.size() && t.compare(0, open.size(), open) == 0 &&
           t.compare(t.size() - close.size(), close.size(), close) == 0;
  };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" || wrapped("<|", "|>") ||
         wrapped("<\xEF\xBD\x9C", "\xEF\xBD\x9C>") || wrapped("<unused", ">");
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
  return s;
}

struct Vocab {
  std::vector<std::string> tokens;  // by id
  std::vector<int32_t> types;       // GgufTokenType
};

// config.json's vocab_size (the embedding rows), or text_config's; 0 when absent.
int64_t config_vocab_size(const HfFolder& hf) {
  const json& c = hf.model_config;
  if (!c.is_object()) return 0;
  if (c.contains("vocab_size") && c["vocab_size"].is_number_integer()) return c["vocab_size"].get<int64_t>();
  if (c.contains("text_config") && c["text_config"].is_object()) return c["text_config"].value("vocab_size", 0);
  return 0;
}

int64_t token_id(const HfFolder& hf, const json& id, const std::string& field) {
  if (!tok::is_token_id(id))
    fail("tokenizer", "{}: {}: expected a non-negative integer id, found {}", hf.tokenizer_path, field, id.dump());
  return id.get<int64_t>();
}

Vocab build_vocab(const HfFolder& hf, const Kind& kind) {
  const json& vocab = hf.tokenizer["model"].at("vocab");
  const json& added = hf.tokenizer.value("added_tokens", json::array());
  int64_t n = 0;
  for (auto it = vocab.begin(); it != vocab.end(); ++it)
    n = std::max(n, token_id(hf, it.value(), "model.vocab[\"" + it.key() + "\"]") + 1);
  for (size_t i = 0; i < added.size(); ++i)
    n = std::max(n, token_id(hf, added[i].value("id", json()), fmt::format("added_tokens[{}].id", i)) + 1);
  n = std::max(n, config_vocab_size(hf));  // the embedding rows: the rest are [PADi] tokens
  Vocab v;
  v.tokens.resize(size_t(n));
  v.types.assign(size_t(n), int32_t(GgufTokenType::kUnused));
  static const std::regex byte_token("<0x[0-9A-Fa-f]{2}>");
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const auto id = size_t(it.value().get<int64_t>());
    v.tokens[id] = it.key();
    const bool is_byte = kind.spm && std::regex_match(it.key(), byte_token);
    v.types[id] = int32_t(is_byte ? GgufTokenType::kByte : GgufTokenType::kNormal);
  }
  const std::string unk = hf.tokenizer["model"].value("unk_token", json()).is_string()
                              ? hf.tokenizer["model"]["unk_token"].get<std::string>()
                              : "";
  for (const json& a : added) {
    const auto id = size_t(a.at("id").get<int64_t>());
    const std::string content = a.at("content").get<std::string>();
    GgufTokenType type =
        a.value("special", false) || looks_special(content) ? GgufTokenType::kControl : GgufTokenType::kUserDefined;
    if (kind.spm && content == unk) type = GgufTokenType::kUnknown;
    // llama.cpp matches user-defined tokens on the raw text, before spaces become U+2581.
    v.tokens[id] = type == GgufTokenType::kUserDefined ? replace_all(content, kMetaspace, " ") : content;
    v.types[id] = int32_t(type);
  }
  std::unordered_map<std::string, size_t> seen;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.tokens[i].empty()) v.tokens[i] = fmt::format("[PAD{}]", i);
    if (auto [it, fresh] = seen.emplace(v.tokens[i], i); !fresh)
      fail("tokenizer", "{}: token {:?} has two ids, {} and {}; llama.cpp needs distinct tokens", hf.tokenizer_path,
           v.tokens[i], it->second, i);
  }
  return v;
}

// "left right" merges; a space inside a part (the [left, right] format allows it) becomes U+0120.
std::vector<std::string> merge_strings(const HfFolder& hf) {
  const json& merges = hf.tokenizer["model"].value("merges", json::array());
  std::vector<std::string> out;
  out.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    if (merges[i].is_string()) {
      out.push_back(merges[i].get<std::string>());
    } else if (merges[i].is_array() && merges[i].size() == 2) {
      out.push_back(replace_all(merges[i][0].get<std::string>(), " ", "\xC4\xA0") + " " +
                    replace_all(merges[i][1].get<std::string>(), " ", "\xC4\xA0"));
    } else {
      fail("tokenizer", "{}: model.merges[{}] is {}, expected \"left right\" or [left, right]", hf.tokenizer_path, i,
           merges[i].dump());
    }
  }
  return out;
}

// SentencePiece scores from the merge ranks: a token made by merge r scores -r, so the pair llama.cpp
// merges first (highest score) is the one the Hugging Face merges list first. Other tokens score -1e9.
std::vector<float> scores_from_merges(const HfFolder& hf, const Vocab& v) {
  std::unordered_map<std::string, size_t> id_of;
  for (size_t i = 0; i < v.tokens.size(); ++i) id_of.emplace(v.tokens[i], i);
  std::vector<float> scores(v.tokens.size(), -1e9f);
  std::vector<bool> set(v.tokens.size(), false);
  const std::vector<std::string> merges = merge_strings(hf);
  for (size_t r = 0; r < merges.size(); ++r) {
    const size_t space = merges[r].find(' ', 1);
    if (space == std::string::npos) continue;
    auto it = id_of.find(merges[r].substr(0, space) + merges[r].substr(space + 1));
    if (it == id_of.end() || set[it->second]) continue;
    scores[it->second] = -float(r);
    set[it->second] = true;
  }
  return scores;
}

// A tokenizer_config.json token entry: a string or {"content": ...}.
std::optional<std::string> config_token(const json& config, const std::string& key) {
  if (!config.is_object() || !config.contains(key)) return std::nullopt;
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

std::optional<int64_t> config_id(const json& config, const std::string& key) {
  if (!config.is_object()) return std::nullopt;
  const json* v = config.contains(key) ? &config[key] : nullptr;
  if (!v && config.contains("text_config") && config["text_config"].contains(key)) v = &config["text_config"][key];
  if (v && v->is_array() && !v->empty()) v = &(*v)[0];  // generation_config's eos_token_id may be a list
  return v && v->is_number_integer() ? std::optional<int64_t>(v->get<int64_t>()) : std::nullopt;
}

using Metadata = std::vector<std::pair<std::string, GgufValue>>;

// Special token ids and add_bos / add_eos, in gguf-py SpecialVocab's order of precedence: the
// tokenizer_config.json tokens (found among tokenizer.json's added tokens), completed from a
// TemplateProcessing post-processor, then config.json's *_token_id, then generation_config.json's.
void add_special_ids(const HfFolder& hf, size_t n_tokens, Metadata& out) {
  json config = hf.config.is_object() ? hf.config : json::object();
  std::optional<bool> add_bos, add_eos;
  std::vector<json> processors;
  flatten(hf.tokenizer.value("post_processor", json()), "processors", processors);
  for (const json& p : processors) {
    const json& single = p.value("single", json::array());
    if (p.value("type", "") != "TemplateProcessing" || single.size() < 2) continue;
    const std::string first = single.front().value("SpecialToken", json::object()).value("id", "");
    const std::string last = single.back().value("SpecialToken", json::object()).value("id", "");
    if (!first.empty()) {
      if (!config_token(config, "bos_token")) config["bos_token"] = first;
      add_bos = first == config_token(config, "bos_token") || first == config_token(config, "cls_token");
    }
    if (!last.empty()) {
      if (!config_token(config, "eos_token")) config["eos_token"] = last;
      add_eos = last == config_token(config, "eos_token");
    }
  }
  if (config.value("add_bos_token", json()).is_boolean()) add_bos = config["add_bos_token"].get<bool>();
  if (config.value("add_eos_token", json()).is_boolean()) add_eos = config["add_eos_token"].get<bool>();
  const std::pair<const char*, const char*> kinds[] = {
      {"bos", "bos_token_id"},     {"eos", "eos_token_id"},
      {"unk", "unknown_token_id"}, {"sep", "seperator_token_id"},  // sic: llama.cpp's key
      {"pad", "padding_token_id"}, {"mask", "mask_token_id"}};
  for (const auto& [kind, key] : kinds) {
    std::optional<int64_t> id;
    if (auto content = config_token(config, std::string(kind) + "_token"))
      for (const json& a : hf.tokenizer.value("added_tokens", json::array()))
        if (a.value("content", "") == *content) {
          id = a.at("id").get<int64_t>();
          break;
        }
    for (const json* c : {&hf.model_config, &hf.generation})
      if (!id || *id < 0 || size_t(*id) >= n_tokens) id = config_id(*c, std::string(kind) + "_token_id");
    if (id && *id >= 0 && size_t(*id) < n_tokens)
      out.emplace_back(std::string("tokenizer.ggml.") + key, GgufValue::u32(uint32_t(*id)));
  }
  if (add_bos) out.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::boolean(*add_bos));
  if (add_eos) out.emplace_back("tokenizer.ggml.add_eos_token", GgufValue::boolean(*add_eos));
}

// tokenizer_config.json's chat_template (a string, or named templates), else chat_template.jinja, else
// chat_template.json.
void add_chat_template(const HfFolder& hf, Metadata& out) {
  json templ = hf.config.is_object() ? hf.config.value("chat_template", json()) : json();
  if (templ.is_null() && fs::exists(fs::path(hf.dir) / "chat_template.jinja")) {
    std::ifstream in(fs::path(hf.dir) / "chat_template.jinja", std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    templ = ss.str();
  }
  if (templ.is_null()) {
    const json alt = read_json_file(fs::path(hf.dir) / "chat_template.json", false);
    if (alt.is_object()) templ = alt.value("chat_template", json());
  }
  if (templ.is_string()) out.emplace_back("tokenizer.chat_template", GgufValue::str(templ.get<std::string>()));
  if (!templ.is_array()) return;
  std::vector<std::string> names;
  std::optional<std::string> fallback;
  for (const json& t : templ) {
    std::string name = t.value("name", "");
    for (char& c : name)
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    if (name.empty() || !t.contains("template") || !t["template"].is_string()) continue;
    if (name == "default") {
      fallback = t["template"].get<std::string>();
    } else {
      names.push_back(name);
      out.emplace_back("tokenizer.chat_template." + name, GgufValue::str(t["template"].get<std::string>()));
    }
  }
  if (!names.empty()) out.emplace_back("tokenizer.chat_templates", GgufValue::str_array(names));
  if (fallback) out.emplace_back("tokenizer.chat_template", GgufValue::str(*fallback));
}

}  // namespace

std::vector<std::pair<std::string, GgufValue>> gguf_tokenizer_metadata(const std::string& model_dir) {
  HfFolder hf;
  hf.dir = model_dir;
  const fs::path dir(model_dir);
  hf.tokenizer_path = (dir / "tokenizer.json").string();
  hf.tokenizer = read_json_file(hf.tokenizer_path, true);
  if (!hf.tokenizer.is_object() || !hf.tokenizer.contains("model") || !hf.tokenizer["model"].is_object() ||
      !hf.tokenizer["model"].contains("vocab") || !hf.tokenizer["model"]["vocab"].is_object())
    fail("tokenizer", "{}: model.vocab: expected an object of token -> id", hf.tokenizer_path);
  hf.config = read_json_file(dir / "tokenizer_config.json", false);
  hf.model_config = read_json_file(dir / "config.json", false);
  hf.generation = read_json_file(dir / "generation_config.json", false);
  Metadata out;
  try {
    const Kind kind = classify(hf);
    Vocab v = build_vocab(hf, kind);
    out.emplace_back("tokenizer.ggml.model", GgufValue::str(kind.spm ? "llama" : "gpt2"));
    out.emplace_back("tokenizer.ggml.pre", GgufValue::str(kind.spm ? "default" : kind.pre));
    const size_t n_tokens = v.tokens.size();
    if (kind.spm) {
      const std::vector<float> scores = scores_from_merges(hf, v);
      out.emplace_back("tokenizer.ggml.tokens", GgufValue::str_array(std::move(v.tokens)));
      out.emplace_back("tokenizer.ggml.scores", GgufValue::f32_array(scores));
      out.emplace_back("tokenizer.ggml.token_type", GgufValue::i32_array(v.types));
    } else {
      out.emplace_back("tokenizer.ggml.tokens", GgufValue::str_array(std::move(v.tokens)));
      out.emplace_back("tokenizer.ggml.token_type", GgufValue::i32_array(v.types));
      out.emplace_back("tokenizer.ggml.merges", GgufValue::str_array(merge_strings(hf)));
    }
    add_special_ids(hf, n_tokens, out);
    if (kind.spm) out.emplace_back("tokenizer.ggml.add_space_prefix", GgufValue::boolean(kind.add_space_prefix));
    add_chat_template(hf, out);
  } catch (const json::exception& e) {
    fail("tokenizer", "{}: unexpected JSON value: {}", hf.tokenizer_path, e.what());
  }
  return out;
}

}  // namespace moe
