// Loading a tokenizer.json and running it: added tokens split first, then normalizer,
// pre-tokenizer and BPE per section; decoding through the decoder chain.
#include "tokenizer/tokenizer.h"

#include <fmt/format.h>

#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer_impl.h"
#include "util/error.h"
#include "util/input_file.h"
#include "util/json_depth.h"

namespace moe {
namespace {

using nlohmann::json;

bool is_space_at_end(std::string_view s, size_t& len) {
  static const char* const spaces[] = {" ", "\t", "\n", "\r", "\v", "\f", "\xC2\xA0", "\xE3\x80\x80", "\xE2\x80\xAF"};
  for (const char* sp : spaces) {
    const std::string_view v(sp);
    if (s.size() >= v.size() && s.substr(s.size() - v.size()) == v) return len = v.size(), true;
  }
  return false;
}

bool is_space_at_start(std::string_view s, size_t& len) {
  static const char* const spaces[] = {" ", "\t", "\n", "\r", "\v", "\f", "\xC2\xA0", "\xE3\x80\x80", "\xE2\x80\xAF"};
  for (const char* sp : spaces)
    if (s.substr(0, std::strlen(sp)) == sp) return len = std::strlen(sp), true;
  return false;
}

std::string read_text_file(const std::string& path) { return read_input_file(path, "", "tokenizer"); }

std::optional<std::string> config_token(const json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

void AddedMatcher::add(const std::string& s, int32_t index) {
  int32_t node = 0;
  for (unsigned char c : s) {
    const uint64_t key = uint64_t(node) * 256 + c;
    auto it = children_.find(key);
    if (it == children_.end()) {
      it = children_.emplace(key, int32_t(terminal_.size())).first;
      terminal_.push_back(-1);
    }
    node = it->second;
  }
  terminal_[size_t(node)] = index;
  first_[static_cast<unsigned char>(s[0])] = true;
}

int32_t AddedMatcher::match(std::string_view text, size_t i, size_t& len) const {
  int32_t node = 0, best = -1;
  if (!first_[static_cast<unsigned char>(text[i])]) return -1;
  for (size_t j = i; j < text.size(); ++j) {
    auto it = children_.find(uint64_t(node) * 256 + static_cast<unsigned char>(text[j]));
    if (it == children_.end()) break;
    node = it->second;
    if (terminal_[size_t(node)] >= 0) best = terminal_[size_t(node)], len = j + 1 - i;
  }
  return best;
}

void Tokenizer::Impl::add_token(AddedToken t) {
  matcher.add(t.content, int32_t(added.size()));
  added_by_id[t.id] = added.size();
  added_by_content[t.content] = t.id;
  added_set.insert(t.content);
  added.push_back(std::move(t));
}

const tok::BpeModel& Tokenizer::Impl::require_model() const {
  if (!model) fail("tokenizer", "{}", no_model_reason);
  return *model;
}

void Tokenizer::Impl::load_added(const json& list) {
  if (list.is_null()) return;
  if (!list.is_array()) fail("tokenizer", "{}: added_tokens must be an array", path);
  for (size_t i = 0; i < list.size(); ++i) {
    const json& a = list[i];
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
        !a["content"].is_string() || a["content"].get_ref<const std::string&>().empty())
      fail("tokenizer", "{}: added_tokens[{}] must have an integer \"id\" and a non-empty string \"content\", found {}",
           path, i, a.dump().substr(0, 200));
    if (!tok::is_token_id(a["id"]))
      fail("tokenizer", "{}: added_tokens[{}].id must be from 0 to {}, found {}", path, i, INT32_MAX - 1,
           a["id"].dump());
    if (a.value("single_word", false))
      fail("tokenizer", "{}: added_tokens[{}].single_word = true is not supported", path, i);
    AddedToken t{a["content"].get<std::string>(), a["id"].get<int32_t>(), a.value("special", false),
                 a.value("lstrip", false), a.value("rstrip", false)};
    if (tok::find_invalid_utf8(t.content) != std::string_view::npos)
      fail("tokenizer", "{}: added_tokens[{}].content is not valid UTF-8", path, i);
    add_token(std::move(t));
  }
}

void Tokenizer::Impl::load_config(const std::string& config_path) {
  if (!post_processor.prefix.empty()) bos = post_processor.prefix.front();
  if (!std::filesystem::exists(config_path)) return;
  json config;
  try {
    const std::string text = read_text_file(config_path);
    check_json_depth(text, "tokenizer", config_path);
    config = json::parse(text);
  } catch (const json::exception& e) {
    fail("tokenizer", "{}: malformed JSON: {}", config_path, e.what());
  }
  auto lookup = [&](const char* key) -> std::optional<int32_t> {
    const auto name = config_token(config, key);
    if (!name) return std::nullopt;
    if (auto it = added_by_content.find(*name); it != added_by_content.end()) return it->second;
    const int32_t id = model->token_to_id(*name);
    return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
  };
  if (auto b = lookup("bos_token")) bos = b;
  if (auto e = lookup("eos_token")) eos = e;
  if (auto u = lookup("unk_token")) unk = u;
  if (auto p = lookup("pad_token")) pad = p;
  if (const json& add = config.value("add_bos_token", json()); add.is_boolean()) add_bos_token = add.get<bool>();
  const json& templ = config.value("chat_template", json());
  if (templ.is_string()) chat_template = templ.get<std::string>();
  for (const json& named : templ.is_array() ? templ : json::array())  // [{"name": ..., "template": ...}]
    if (named.value("name", "") == "default" && named.contains("template") && named["template"].is_string())
      chat_template = named["template"].get<std::string>();
}

std::vector<TokenizerSection> Tokenizer::Impl::split_added(std::string_view text) const {
  std::vector<TokenizerSection> sections;
  size_t start = 0, i = 0;
  while (i < text.size()) {
    size_t len = 0;
    const int32_t hit = matcher.match(text, i, len);
    if (hit < 0) {
      ++i;
      continue;
    }
    if (i > start) sections.push_back({text.substr(start, i - start), -1});
    sections.push_back({text.substr(i, len), hit});
    i += len;
    start = i;
  }
  if (start < text.size()) sections.push_back({text.substr(start), -1});
  // lstrip / rstrip: an added token swallows the whitespace beside it (as transformers.js does).
  for (size_t k = 0; k < sections.size(); ++k) {
    if (sections[k].added < 0) continue;
    const AddedToken& t = added[size_t(sections[k].added)];
    size_t n = 0;
    if (t.lstrip && k > 0 && sections[k - 1].added < 0)
      while (is_space_at_end(sections[k - 1].text, n)) sections[k - 1].text.remove_suffix(n);
    if (t.rstrip && k + 1 < sections.size() && sections[k + 1].added < 0)
      while (is_space_at_start(sections[k + 1].text, n)) sections[k + 1].text.remove_prefix(n);
  }
  return sections;
}

Tokenizer::Tokenizer(const std::string& json_path) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.path = json_path;
  json j;
  try {
    const std::string text = read_text_file(json_path);
    check_json_depth(text, "tokenizer", json_path);
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("tokenizer", "{}: malformed JSON: {}", json_path, e.what());
  }
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    fail("tokenizer", "{}: no \"model\" object; is this a Hugging Face tokenizer.json?", json_path);
  const json& model = j["model"];
  const std::string type = model.contains("type") && model["type"].is_string() ? model["type"].get<std::string>()
                           : model.contains("merges")                          ? "BPE"
                                                                               : "";
  if (type != "BPE")
    fail("tokenizer",
         "{}: model.type {:?} is not supported (only BPE: byte-level or SentencePiece-style with byte fallback)",
         json_path, type.empty() ? model.value("type", json()).dump() : type);
  try {
    m.normalizer.parse(j.value("normalizer", json()), json_path);
    m.pre_tokenizer.parse(j.value("pre_tokenizer", json()), json_path);
    m.post_processor.parse(j.value("post_processor", json()), json_path);
    m.decoder.parse(j.value("decoder", json()), json_path);
    m.model = std::make_unique<tok::BpeModel>(model, m.pre_tokenizer.byte_level(), json_path);
    m.load_added(j.value("added_tokens", json()));
  } catch (const json::exception& e) {
    fail("tokenizer", "{}: unexpected JSON value: {}", json_path, e.what());
  }
  if (!model.value("unk_token", json()).is_null()) {
    const int32_t unk = token_to_id(model["unk_token"].get<std::string>());
    if (unk >= 0) m.unk = unk;
  }
  m.load_config((std::filesystem::path(json_path).parent_path() / "tokenizer_config.json").string());
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  const Impl& m = *impl_;
  if (const size_t bad = tok::find_invalid_utf8(text); bad != std::string_view::npos)
    fail("tokenizer", "input text is not valid UTF-8: byte 0x{:02X} at offset {}",
         static_cast<unsigned char>(text[bad]), bad);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  if (add_special) ids = m.post_processor.prefix;
  const tok::BpeModel& model = m.require_model();
  const std::vector<TokenizerSection> sections = m.split_added(text);
  std::string buffer;
  std::vector<tok::Span> words;
  for (size_t k = 0; k < sections.size(); ++k) {
    const TokenizerSection& s = sections[k];
    if (s.added >= 0) {
      ids.push_back(m.added[size_t(s.added)].id);
      continue;
    }
    buffer.assign(s.text);
    m.normalizer.apply(buffer);
    if (buffer.empty()) continue;
    m.pre_tokenizer.split(buffer, k == 0, words);
    for (const tok::Span& w : words) model.encode_word(std::string_view(buffer).substr(w.begin, w.end - w.begin), ids);
  }
  if (add_special) ids.insert(ids.end(), m.post_processor.suffix.begin(), m.post_processor.suffix.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const Impl& m = *impl_;
  const tok::BpeModel& model = m.require_model();
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    if (auto it = m.added_by_id.find(id); it != m.added_by_id.end()) {
      const AddedToken& t = m.added[it->second];
      if (!(skip_special && t.special)) tokens.push_back(t.content);
      continue;
    }
    const std::string* token = model.id_to_token(id);
    if (token == nullptr) fail("tokenizer", "{}: id {} is not in the vocabulary (size {})", m.path, id, vocab_size());
    tokens.push_back(*token);
  }
  return m.decoder.decode(std::move(tokens), m.added_set);
}

size_t Tokenizer::vocab_size() const {
  if (!impl_->model) return impl_->declared_vocab_size;
  int64_t max_id = impl_->model->max_id();
  for (const AddedToken& t : impl_->added) max_id = std::max<int64_t>(max_id, t.id);
  return size_t(max_id + 1);
}

int32_t Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = impl_->added_by_content.find(std::string(token)); it != impl_->added_by_content.end())
    return it->second;
  return impl_->model ? impl_->model->token_to_id(token) : -1;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) return impl_->added[it->second].content;
  const std::string* token = impl_->model ? impl_->model->id_to_token(id) : nullptr;
  return token ? *token : std::string();
}

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }

bool Tokenizer::adds_bos() const {
  const Impl& m = *impl_;
  if (!m.bos) return false;
  if (m.add_bos_token) return *m.add_bos_token;
  return !m.post_processor.prefix.empty() && m.post_processor.prefix.front() == *m.bos;
}

std::vector<int32_t> Tokenizer::encode_prompt(std::string_view text) const {
  const Impl& m = *impl_;
  std::vector<int32_t> ids = encode(text, /*add_special=*/true);
  const bool post_bos = m.bos && !m.post_processor.prefix.empty() && m.post_processor.prefix.front() == *m.bos;
  if (adds_bos() && !post_bos) ids.insert(ids.begin(), *m.bos);
  if (!adds_bos() && post_bos) ids.erase(ids.begin());
  return ids;
}

std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }
std::optional<int32_t> Tokenizer::unk_id() const { return impl_->unk; }
std::optional<int32_t> Tokenizer::pad_id() const { return impl_->pad; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }
const std::string& Tokenizer::path() const { return impl_->path; }

std::string Tokenizer::summary() const {
  const Impl& m = *impl_;
  if (!m.model) return m.description;
  return fmt::format(
      "{}BPE ({}), vocab {}, {} added tokens, normalizer {}, pre-tokenizer {}, post-processor {}, decoder {}",
      m.description, m.model->byte_level() ? "byte-level" : "SentencePiece-style", vocab_size(), m.added.size(),
      m.normalizer.describe(), m.pre_tokenizer.describe(), m.post_processor.name, m.decoder.describe());
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& file_or_dir) {
  namespace fs = std::filesystem;
  fs::path p(file_or_dir);
  if (fs::is_directory(p)) {
    if (fs::exists(p / "tokenizer.json")) return std::make_unique<Tokenizer>((p / "tokenizer.json").string());
    if (fs::exists(p / "tokenizer.model"))
      fail("tokenizer",
           "{} has a SentencePiece tokenizer.model but no tokenizer.json; only tokenizer.json is supported "
           "(the Hugging Face repositories of Llama 2 and Mixtral ship one)",
           file_or_dir);
    fail("tokenizer", "no tokenizer.json in {}", file_or_dir);
  }
  if (!fs::exists(p))
    fail("tokenizer", "{} does not exist (expected a tokenizer.json, a .gguf file or a model folder)", file_or_dir);
  if (is_gguf_file(p.string())) return load_gguf_tokenizer(p.string());
  if (p.extension() == ".model")
    fail("tokenizer", "{} is a SentencePiece model; only tokenizer.json is supported", file_or_dir);
  return std::make_unique<Tokenizer>(p.string());
}

}  // namespace moe
