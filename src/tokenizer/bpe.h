// The BPE model of a Hugging Face tokenizer.json or of a GGUF file's tokenizer.ggml.* metadata:
// vocabulary, merge ranks (listed merges, or SentencePiece scores turned into ranks), byte-level or
// SentencePiece-style symbols with byte fallback, and a word cache.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace moe::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// How a vocabulary given as a plain token list (GGUF) is to be run.
struct BpeOptions {
  bool byte_level = false;     // words are raw bytes mapped through the GPT-2 byte alphabet
  bool byte_fallback = false;  // unknown characters become <0xXX> tokens
  bool ignore_merges = false;  // a word that is a token is that token, merges unused
  int32_t unk_id = -1;
};

class BpeModel {
 public:
  // `model` is the "model" object of tokenizer.json; `byte_level` says that words arrive as raw
  // bytes to be mapped through the GPT-2 byte alphabet (a ByteLevel pre-tokenizer is present).
  BpeModel(const nlohmann::json& model, bool byte_level, const std::string& file);
  // tokens[id] is the token text as stored (byte-level alphabet for byte-level models); tokens must
  // be distinct and non-empty. Merges come next, from add_merges or ranks_from_scores.
  BpeModel(const std::vector<std::string>& tokens, const BpeOptions& options);

  // Listed merges "left right" (rank = index). A merge naming a token that is not in the vocabulary
  // throws naming `field`[index] in `file`.
  void add_merges(const std::vector<std::pair<std::string, std::string>>& merges, const std::string& file,
                  const std::string& field);
  // SentencePiece BPE: any two adjacent symbols whose concatenation is a token may merge; the token
  // with the higher score merges first (leftmost among equal scores).
  void ranks_from_scores(const std::vector<float>& scores);

  // Appends the ids of one pre-tokenized word.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  int32_t token_to_id(std::string_view token) const;  // -1 if absent
  const std::string* id_to_token(int32_t id) const;   // nullptr if absent
  int32_t max_id() const { return int32_t(id_to_token_.size()) - 1; }
  bool byte_level() const { return byte_level_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  struct Symbol {
    int32_t id;  // -1: not in the vocabulary (byte fallback or unk)
    uint32_t begin, end;
  };
  void load_vocab(const nlohmann::json& vocab, const std::string& file);
  void index_vocab();  // byte, fallback, word and character tables from vocab_ / id_to_token_
  void load_merges(const nlohmann::json& merges, const std::string& file);
  bool add_merge(const std::string& left, const std::string& right, int32_t rank);  // false: unknown token
  void initial_symbols(std::string_view word, std::vector<Symbol>& syms) const;
  const Merge* find_merge(int32_t left, int32_t right) const;
  void merge_small(std::vector<Symbol>& syms) const;
  void merge_heap(std::vector<Symbol>& syms) const;
  void emit(std::string_view word, const std::vector<Symbol>& syms, std::vector<int32_t>& out) const;

  bool byte_level_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  bool fuse_unk_ = false;
  int32_t unk_id_ = -1;
  StringIdMap vocab_;       // token as written in the file -> id
  StringIdMap word_vocab_;  // byte-level: raw bytes -> id (for ignore_merges)
  std::vector<std::string> id_to_token_;
  std::array<int32_t, 256> byte_ids_{};             // byte-level: id of each byte's symbol
  std::array<int32_t, 256> fallback_ids_{};         // <0xXX> tokens, -1 if absent
  std::unordered_map<char32_t, int32_t> char_ids_;  // SentencePiece-style: single-character tokens
  std::unordered_map<uint64_t, Merge> merges_;

  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace moe::tok
