// Normalizers, pre-tokenizers, post-processors and decoders of tokenizer.json. Each unsupported
// type is an error that names the file, the field and the supported types.
#include "tokenizer/pipeline.h"

#include <fmt/format.h>

#include <cctype>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace moe::tok {
namespace {

using nlohmann::json;

// The GPT-2 pre-tokenizer regex that a ByteLevel pre-tokenizer with use_regex applies.
const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kMetaspace = "\xE2\x96\x81";  // U+2581

std::string type_of(const json& j, const std::string& field, const std::string& where) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    fail("tokenizer", "{}: {} must be an object with a string \"type\", found {}", where, field,
         j.dump().substr(0, 200));
  return j["type"].get<std::string>();
}

std::string string_field(const json& j, const char* key, const std::string& field, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string())
    fail("tokenizer", "{}: {}.{} must be a string, found {}", where, field, key, j.value(key, json()).dump());
  return j[key].get<std::string>();
}

const json& array_field(const json& j, const char* key, const std::string& field, const std::string& where) {
  if (!j.contains(key) || !j[key].is_array()) fail("tokenizer", "{}: {}.{} must be an array", where, field, key);
  return j[key];
}

// A pattern object {"String": s} or {"Regex": r}; returns the literal and sets is_regex.
std::string pattern_field(const json& j, const std::string& field, const std::string& where, bool& is_regex) {
  const json& p = j.contains("pattern") ? j["pattern"] : json();
  if (p.is_object() && p.contains("String") && p["String"].is_string()) {
    is_regex = false;
    return p["String"].get<std::string>();
  }
  if (p.is_object() && p.contains("Regex") && p["Regex"].is_string()) {
    is_regex = true;
    return p["Regex"].get<std::string>();
  }
  fail("tokenizer", "{}: {}.pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}, found {}", where, field,
       p.dump());
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty() || s.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

std::string literal_regex(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}-/#&~ ").find(c) != std::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace

const char* gpt2_split_regex() { return kGpt2Pattern; }

// ---------------------------------------------------------------- normalizer

void Normalizer::parse(const json& j, const std::string& where) {
  if (!j.is_null()) parse_one(j, "normalizer", where);
}

void Normalizer::parse_one(const json& j, const std::string& field, const std::string& where) {
  const std::string type = type_of(j, field, where);
  if (type == "Sequence") {
    const json& list = array_field(j, "normalizers", field, where);
    for (size_t i = 0; i < list.size(); ++i) parse_one(list[i], fmt::format("{}.normalizers[{}]", field, i), where);
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    const NormalForm form = type == "NFC"    ? NormalForm::kNFC
                            : type == "NFD"  ? NormalForm::kNFD
                            : type == "NFKC" ? NormalForm::kNFKC
                                             : NormalForm::kNFKD;
    steps_.push_back({Step::kUnicode, form, type, ""});
  } else if (type == "Prepend") {
    steps_.push_back({Step::kPrepend, NormalForm::kNFC, string_field(j, "prepend", field, where), ""});
  } else if (type == "Replace") {
    bool is_regex = false;
    std::string pattern = pattern_field(j, field, where, is_regex);
    if (is_regex)
      fail("tokenizer", "{}: {} is a Replace with a Regex pattern; only String patterns are supported", where, field);
    steps_.push_back({Step::kReplace, NormalForm::kNFC, pattern, string_field(j, "content", field, where)});
  } else {
    fail("tokenizer",
         "{}: {}.type {:?} is not a supported normalizer (supported: Sequence, NFC, NFD, NFKC, NFKD, Prepend, Replace)",
         where, field, type);
  }
}

void Normalizer::apply(std::string& text) const {
  for (const Step& s : steps_) {
    switch (s.kind) {
      case Step::kUnicode:
        text = normalize_unicode(text, s.form);
        break;
      case Step::kPrepend:
        if (!text.empty()) text.insert(0, s.a);
        break;
      case Step::kReplace:
        replace_all(text, s.a, s.b);
        break;
    }
  }
}

std::string Normalizer::describe() const {
  std::vector<std::string> parts;
  for (const Step& s : steps_)
    parts.push_back(s.kind == Step::kUnicode ? s.a : s.kind == Step::kPrepend ? "Prepend" : "Replace");
  return parts.empty() ? "none" : fmt::format("{}", fmt::join(parts, "+"));
}

// ---------------------------------------------------------------- pre-tokenizer

void PreTokenizer::parse(const json& j, const std::string& where) {
  if (!j.is_null()) parse_one(j, "pre_tokenizer", where, true);
}

void PreTokenizer::parse_one(const json& j, const std::string& field, const std::string& where, bool first) {
  const std::string type = type_of(j, field, where);
  if (byte_level_)
    fail("tokenizer", "{}: {} ({}) follows a ByteLevel pre-tokenizer; ByteLevel must be the last step", where, field,
         type);
  if (type == "Sequence") {
    const json& list = array_field(j, "pretokenizers", field, where);
    for (size_t i = 0; i < list.size(); ++i)
      parse_one(list[i], fmt::format("{}.pretokenizers[{}]", field, i), where, first && i == 0);
    return;
  }
  names_.push_back(type);
  if (type == "Split") {
    if (j.value("invert", false)) fail("tokenizer", "{}: {}.invert = true is not supported", where, field);
    bool is_regex = false;
    const std::string pattern = pattern_field(j, field, where, is_regex);
    const std::string behavior = j.value("behavior", std::string("Isolated"));
    Step step;
    step.regex =
        std::make_shared<Regex>(is_regex ? pattern : literal_regex(pattern), where + ": " + field + ".pattern");
    if (behavior == "Isolated")
      step.behavior = Behavior::kIsolated;
    else if (behavior == "Removed")
      step.behavior = Behavior::kRemoved;
    else if (behavior == "MergedWithPrevious")
      step.behavior = Behavior::kMergedWithPrevious;
    else if (behavior == "MergedWithNext")
      step.behavior = Behavior::kMergedWithNext;
    else
      fail("tokenizer", "{}: {}.behavior {:?} is not supported (Isolated, Removed, MergedWithPrevious, MergedWithNext)",
           where, field, behavior);
    steps_.push_back(std::move(step));
  } else if (type == "ByteLevel") {
    byte_level_ = true;
    if (j.value("add_prefix_space", false)) {
      if (!first)
        fail("tokenizer", "{}: {}.add_prefix_space = true is supported only on the first pre-tokenizer", where, field);
      prefix_space_ = true;
    }
    if (j.value("use_regex", true))
      steps_.push_back({std::make_shared<Regex>(kGpt2Pattern, where), Behavior::kIsolated});
  } else if (type == "Metaspace") {
    if (!first) fail("tokenizer", "{}: {} (Metaspace) is supported only as the first pre-tokenizer", where, field);
    metaspace_ = j.value("replacement", std::string(kMetaspace));
    metaspace_prepend_ = j.contains("prepend_scheme") ? j.value("prepend_scheme", std::string("always"))
                                                      : (j.value("add_prefix_space", true) ? "always" : "never");
    if (j.value("split", true))
      steps_.push_back({std::make_shared<Regex>(literal_regex(metaspace_), where), Behavior::kMergedWithNext});
  } else {
    fail("tokenizer",
         "{}: {}.type {:?} is not a supported pre-tokenizer (supported: Sequence, Split, ByteLevel, Metaspace)", where,
         field, type);
  }
}

void PreTokenizer::apply_step(const Step& step, std::string_view text, std::vector<Span>& words) const {
  struct Piece {
    Span span;
    bool match;
  };
  thread_local std::vector<Span> matches;
  thread_local std::vector<Piece> pieces;
  std::vector<Span> out;
  out.reserve(words.size() * 2);
  for (const Span& w : words) {
    matches.clear();
    pieces.clear();
    step.regex->find_all(text.substr(w.begin, w.end - w.begin), matches);
    size_t pos = w.begin;
    for (const Span& m : matches) {
      if (w.begin + m.begin > pos) pieces.push_back({{pos, w.begin + m.begin}, false});
      pieces.push_back({{w.begin + m.begin, w.begin + m.end}, true});
      pos = w.begin + m.end;
    }
    if (w.end > pos) pieces.push_back({{pos, w.end}, false});
    switch (step.behavior) {
      case Behavior::kIsolated:
        for (const Piece& p : pieces) out.push_back(p.span);
        break;
      case Behavior::kRemoved:
        for (const Piece& p : pieces)
          if (!p.match) out.push_back(p.span);
        break;
      case Behavior::kMergedWithPrevious: {
        bool previous_match = false;
        const size_t first = out.size();
        for (const Piece& p : pieces) {
          if (p.match && !previous_match && out.size() > first)
            out.back().end = p.span.end;
          else
            out.push_back(p.span);
          previous_match = p.match;
        }
        break;
      }
      case Behavior::kMergedWithNext: {
        std::vector<Span> rev;
        bool next_match = false;
        for (size_t i = pieces.size(); i-- > 0;) {
          if (pieces[i].match && !next_match && !rev.empty())
            rev.back().begin = pieces[i].span.begin;
          else
            rev.push_back(pieces[i].span);
          next_match = pieces[i].match;
        }
        out.insert(out.end(), rev.rbegin(), rev.rend());
        break;
      }
    }
  }
  words.swap(out);
}

void PreTokenizer::split(std::string& text, bool first_section, std::vector<Span>& words) const {
  if (!metaspace_.empty()) {
    replace_all(text, " ", metaspace_);
    const bool prepend = metaspace_prepend_ == "always" || (metaspace_prepend_ == "first" && first_section);
    if (prepend && text.compare(0, metaspace_.size(), metaspace_) != 0) text.insert(0, metaspace_);
  }
  if (prefix_space_ && (text.empty() || text[0] != ' ')) text.insert(text.begin(), ' ');
  words.clear();
  if (!text.empty()) words.push_back({0, text.size()});
  for (const Step& step : steps_) apply_step(step, text, words);
}

std::string PreTokenizer::describe() const {
  return names_.empty() ? "none" : fmt::format("{}", fmt::join(names_, "+"));
}

// ---------------------------------------------------------------- post-processor

bool is_token_id(const json& v) {
  return v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < INT32_MAX;
}

namespace {

// A post-processor's token id, else an error naming the field (fuzzing found a float, 6.7e22, converted to
// int32 unchecked: undefined behaviour).
int32_t post_processor_id(const json& v, const std::string& field, const std::string& where) {
  if (!is_token_id(v))
    fail("tokenizer", "{}: {} must be a token id, an integer from 0 below 2^31 - 1; got {}", where, field,
         v.is_primitive() ? v.dump() : std::string(v.type_name()));
  return static_cast<int32_t>(v.get<int64_t>());
}

}  // namespace

void PostProcessor::parse(const json& j, const std::string& where) {
  if (j.is_null()) return;
  const std::string type = type_of(j, "post_processor", where);
  if (type == "Sequence") {
    const json& list = array_field(j, "processors", "post_processor", where);
    for (const json& p : list) {
      PostProcessor inner;
      inner.parse(p, where);
      prefix.insert(prefix.begin(), inner.prefix.begin(), inner.prefix.end());
      suffix.insert(suffix.end(), inner.suffix.begin(), inner.suffix.end());
    }
  } else if (type == "ByteLevel") {
  } else if (type == "TemplateProcessing") {
    const json& single = array_field(j, "single", "post_processor", where);
    bool after = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const json& item = single[i];
      if (item.contains("Sequence")) {
        after = true;
        continue;
      }
      const std::string name = item.contains("SpecialToken") ? item["SpecialToken"].value("id", std::string()) : "";
      const json& specials = j.value("special_tokens", json::object());
      if (name.empty() || !specials.contains(name) || !specials[name].contains("ids"))
        fail("tokenizer",
             "{}: post_processor.single[{}] names a special token {:?} missing from post_processor.special_tokens",
             where, i, name);
      const json& ids = specials[name]["ids"];
      if (!ids.is_array())
        fail("tokenizer", "{}: post_processor.special_tokens[{:?}].ids must be an array of token ids", where, name);
      for (size_t k = 0; k < ids.size(); ++k) {
        const std::string field = fmt::format("post_processor.special_tokens[{:?}].ids[{}]", name, k);
        (after ? suffix : prefix).push_back(post_processor_id(ids[k], field, where));
      }
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    prefix.push_back(post_processor_id(j.at("cls").at(1), "post_processor.cls[1]", where));
    suffix.push_back(post_processor_id(j.at("sep").at(1), "post_processor.sep[1]", where));
  } else {
    fail("tokenizer",
         "{}: post_processor.type {:?} is not supported (supported: Sequence, ByteLevel, TemplateProcessing, "
         "RobertaProcessing, BertProcessing)",
         where, type);
  }
  name = type;
}

// ---------------------------------------------------------------- decoder

void Decoder::parse(const json& j, const std::string& where) {
  if (j.is_null()) return;
  present_ = true;
  parse_one(j, "decoder", where);
}

void Decoder::parse_one(const json& j, const std::string& field, const std::string& where) {
  const std::string type = type_of(j, field, where);
  Step s{Step::kFuse, "", "", 0, 0, false};
  if (type == "Sequence") {
    const json& list = array_field(j, "decoders", field, where);
    for (size_t i = 0; i < list.size(); ++i) parse_one(list[i], fmt::format("{}.decoders[{}]", field, i), where);
    return;
  } else if (type == "ByteLevel") {
    s.kind = Step::kByteLevel;
  } else if (type == "Replace") {
    bool is_regex = false;
    s.kind = Step::kReplace;
    s.a = pattern_field(j, field, where, is_regex);
    if (is_regex)
      fail("tokenizer", "{}: {} is a Replace with a Regex pattern; only String patterns are supported", where, field);
    s.b = string_field(j, "content", field, where);
  } else if (type == "ByteFallback") {
    s.kind = Step::kByteFallback;
  } else if (type == "Fuse") {
    s.kind = Step::kFuse;
  } else if (type == "Strip") {
    s.kind = Step::kStrip;
    s.a = string_field(j, "content", field, where);
    s.start = j.value("start", 0);
    s.stop = j.value("stop", 0);
  } else if (type == "Metaspace") {
    s.kind = Step::kMetaspace;
    s.a = j.value("replacement", std::string(kMetaspace));
    s.flag = j.contains("prepend_scheme") ? j.value("prepend_scheme", std::string("always")) != "never"
                                          : j.value("add_prefix_space", true);
  } else {
    fail("tokenizer",
         "{}: {}.type {:?} is not a supported decoder (supported: Sequence, ByteLevel, Replace, ByteFallback, Fuse, "
         "Strip, Metaspace)",
         where, field, type);
  }
  steps_.push_back(std::move(s));
}

namespace {

std::vector<std::string> byte_level_decode(const std::vector<std::string>& tokens,
                                           const std::unordered_set<std::string>& added) {
  std::vector<std::string> out;
  std::string bytes;
  for (const std::string& t : tokens) {
    if (added.count(t)) {
      if (!bytes.empty()) out.push_back(utf8_lossy(bytes)), bytes.clear();
      out.push_back(t);
      continue;
    }
    std::string raw;
    bool ok = true;
    for (size_t i = 0; i < t.size() && ok;) {
      const int b = unicode_to_byte(next_code_point(t, i));
      ok = b >= 0;
      raw.push_back(char(b));
    }
    bytes += ok ? raw : t;
  }
  if (!bytes.empty()) out.push_back(utf8_lossy(bytes));
  return out;
}

std::vector<std::string> byte_fallback_decode(const std::vector<std::string>& tokens) {
  std::vector<std::string> out;
  std::string bytes;
  for (const std::string& t : tokens) {
    if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(uint8_t(t[3])) &&
        std::isxdigit(uint8_t(t[4]))) {
      bytes.push_back(char(std::stoi(t.substr(3, 2), nullptr, 16)));
      continue;
    }
    if (!bytes.empty()) out.push_back(utf8_lossy(bytes)), bytes.clear();
    out.push_back(t);
  }
  if (!bytes.empty()) out.push_back(utf8_lossy(bytes));
  return out;
}

std::string strip(const std::string& t, const std::string& content, int start, int stop) {
  size_t b = 0, e = t.size();
  for (int i = 0; i < start && !content.empty() && t.compare(b, content.size(), content) == 0; ++i) b += content.size();
  for (int i = 0; i < stop && !content.empty() && e >= b + content.size() &&
                  t.compare(e - content.size(), content.size(), content) == 0;
       ++i)
    e -= content.size();
  return t.substr(b, e - b);
}

}  // namespace

std::string Decoder::decode(std::vector<std::string> tokens, const std::unordered_set<std::string>& added) const {
  if (!present_) return fmt::format("{}", fmt::join(tokens, " "));
  for (const Step& s : steps_) {
    switch (s.kind) {
      case Step::kByteLevel:
        tokens = byte_level_decode(tokens, added);
        break;
      case Step::kByteFallback:
        tokens = byte_fallback_decode(tokens);
        break;
      case Step::kReplace:
        for (auto& t : tokens) replace_all(t, s.a, s.b);
        break;
      case Step::kFuse:
        tokens = {fmt::format("{}", fmt::join(tokens, ""))};
        break;
      case Step::kStrip:
        for (auto& t : tokens) t = strip(t, s.a, s.start, s.stop);
        break;
      case Step::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          replace_all(tokens[i], s.a, " ");
          if (i == 0 && s.flag && !tokens[i].empty() && tokens[i][0] == ' ') tokens[i].erase(0, 1);
        }
        break;
    }
  }
  return fmt::format("{}", fmt::join(tokens, ""));
}

std::string Decoder::describe() const {
  static const char* names[] = {"ByteLevel", "Replace", "ByteFallback", "Fuse", "Strip", "Metaspace"};
  std::vector<std::string> parts;
  for (const Step& s : steps_) parts.push_back(names[s.kind]);
  return parts.empty() ? "none" : fmt::format("{}", fmt::join(parts, "+"));
}

}  // namespace moe::tok
