// The stages of a tokenizer.json around the model: normalizer, pre-tokenizer, post-processor and
// decoder, parsed from JSON once and applied without further lookups.
#pragma once

#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace moe::tok {

// A token id as tokenizer.json may hold one: an integer from 0 below INT32_MAX (an id of INT32_MAX
// overflows a table sized id + 1; a float such as 6.7e22 has no int32 value). The vocabulary, added
// tokens, post-processor and GGUF export readers check ids with it and name the field when it fails.
bool is_token_id(const nlohmann::json& v);

// The GPT-2 split regex that a ByteLevel pre-tokenizer with use_regex applies.
const char* gpt2_split_regex();

class Normalizer {
 public:
  // `j` is the "normalizer" value (null for none); `where` names the file for errors.
  void parse(const nlohmann::json& j, const std::string& where);
  bool identity() const { return steps_.empty(); }
  void apply(std::string& text) const;
  std::string describe() const;

 private:
  struct Step {
    enum Kind { kUnicode, kPrepend, kReplace } kind;
    NormalForm form = NormalForm::kNFC;
    std::string a, b;
  };
  void parse_one(const nlohmann::json& j, const std::string& field, const std::string& where);
  std::vector<Step> steps_;
};

class PreTokenizer {
 public:
  void parse(const nlohmann::json& j, const std::string& where);
  // True when a ByteLevel step is present: words reach the model as raw bytes.
  bool byte_level() const { return byte_level_; }
  // Splits one normalized section into words. May first rewrite `text` (Metaspace, prefix space);
  // `first_section` says whether the section starts the input (for prepend_scheme "first").
  void split(std::string& text, bool first_section, std::vector<Span>& words) const;
  std::string describe() const;

 private:
  enum class Behavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext };
  struct Step {
    std::shared_ptr<Regex> regex;
    Behavior behavior = Behavior::kIsolated;
  };
  void parse_one(const nlohmann::json& j, const std::string& field, const std::string& where, bool first);
  void apply_step(const Step& step, std::string_view text, std::vector<Span>& words) const;

  std::vector<Step> steps_;
  std::vector<std::string> names_;
  bool byte_level_ = false;
  bool prefix_space_ = false;      // ByteLevel add_prefix_space (first step only)
  std::string metaspace_;          // Metaspace replacement, "" if none (first step only)
  std::string metaspace_prepend_;  // always | first | never
};

// What the post_processor adds around a single sequence when add_special is true.
struct PostProcessor {
  void parse(const nlohmann::json& j, const std::string& where);
  std::vector<int32_t> prefix, suffix;
  std::string name = "none";
};

class Decoder {
 public:
  void parse(const nlohmann::json& j, const std::string& where);
  // `added` is the set of added-token strings (ByteLevel passes them through unmapped).
  std::string decode(std::vector<std::string> tokens, const std::unordered_set<std::string>& added) const;
  std::string describe() const;

 private:
  struct Step {
    enum Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace } kind;
    std::string a, b;
    int start = 0, stop = 0;
    bool flag = false;
  };
  void parse_one(const nlohmann::json& j, const std::string& field, const std::string& where);
  std::vector<Step> steps_;
  bool present_ = false;
};

}  // namespace moe::tok
