// The inside of a Tokenizer, shared by its two loaders: tokenizer.json (tokenizer.cc) and a GGUF
// file's tokenizer.ggml.* metadata (gguf_vocab.cc). Not part of the public API.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/tokenizer.h"

namespace moe {

// A token matched on the raw text before normalization (Hugging Face added tokens; GGUF control,
// user-defined and unknown tokens).
struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false, lstrip = false, rstrip = false;
};

// Leftmost-longest matcher of the added tokens over raw bytes (a byte trie).
class AddedMatcher {
 public:
  void add(const std::string& s, int32_t index);
  // Longest token starting at text[i]: its index and length, or -1.
  int32_t match(std::string_view text, size_t i, size_t& len) const;

 private:
  std::unordered_map<uint64_t, int32_t> children_;
  std::vector<int32_t> terminal_{-1};
  bool first_[256] = {};
};

struct TokenizerSection {
  std::string_view text;
  int32_t added = -1;  // index into added tokens, or -1 for ordinary text
};

struct Tokenizer::Impl {
  std::string path;
  std::unique_ptr<tok::BpeModel> model;  // null: the file has no vocabulary (GGUF model "none")
  std::string no_model_reason;           // the error to give when asked to encode or decode then
  size_t declared_vocab_size = 0;        // vocab_size() when there is no model
  tok::Normalizer normalizer;
  tok::PreTokenizer pre_tokenizer;
  tok::PostProcessor post_processor;
  tok::Decoder decoder;
  std::vector<AddedToken> added;
  std::unordered_map<int32_t, size_t> added_by_id;
  std::unordered_map<std::string, int32_t> added_by_content;
  std::unordered_set<std::string> added_set;
  AddedMatcher matcher;
  std::optional<int32_t> bos, eos, unk, pad;
  std::string chat_template;
  std::optional<bool> add_bos_token;  // tokenizer_config.json add_bos_token, when a boolean
  std::string description;            // summary() prefix for GGUF tokenizers; empty for tokenizer.json

  void add_token(AddedToken t);
  void load_added(const nlohmann::json& list);
  void load_config(const std::string& config_path);
  std::vector<TokenizerSection> split_added(std::string_view text) const;
  const tok::BpeModel& require_model() const;
};

}  // namespace moe
