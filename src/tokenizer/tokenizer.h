// Tokenizers of real models from a Hugging Face tokenizer.json: byte-level BPE (Qwen3,
// DeepSeek-V3, gpt-oss o200k, OLMoE, Llama 3) and SentencePiece-style BPE with byte fallback
// (Llama 2, Mixtral). Ids match Hugging Face tokenizers / transformers.js on the test corpus.
// The same class runs a GGUF file's tokenizer.ggml.* vocabulary (gguf_vocab.h), as llama.cpp does.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

class Tokenizer {
 public:
  // Loads a tokenizer.json (and a tokenizer_config.json beside it, for bos/eos, when present).
  explicit Tokenizer(const std::string& json_path);
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);  // for the loaders (gguf_vocab.h)
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Text (valid UTF-8, else a [tokenizer] error) to ids. Added/special tokens in the text are
  // matched first; add_special adds what the post_processor adds (e.g. <s> for Llama 2).
  std::vector<int32_t> encode(std::string_view text, bool add_special = false) const;
  // A prompt as Hugging Face transformers and llama.cpp encode it for generation: encode(text, true),
  // with the BOS exactly when adds_bos() says.
  std::vector<int32_t> encode_prompt(std::string_view text) const;
  // Whether a prompt starts with the BOS: tokenizer_config.json add_bos_token (transformers rebuilds
  // the post-processor from it), GGUF tokenizer.ggml.add_bos_token, else the post-processor's own.
  bool adds_bos() const;
  // Ids to text through the decoder; skip_special drops special added tokens.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  size_t vocab_size() const;                          // largest id + 1, added tokens included
  int32_t token_to_id(std::string_view token) const;  // -1 if unknown
  std::string id_to_token(int32_t id) const;          // "" if unknown
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> unk_id() const;
  std::optional<int32_t> pad_id() const;
  // The Jinja chat template (tokenizer_config.json "chat_template", GGUF tokenizer.chat_template);
  // empty when the files have none.
  const std::string& chat_template() const;
  const std::string& path() const;
  std::string summary() const;  // one line: model type, vocab size, normalizer, pre-tokenizer

 private:
  std::unique_ptr<Impl> impl_;
};

// Accepts a tokenizer.json file, a .gguf file (its tokenizer.ggml.* metadata) or a model folder that
// contains a tokenizer.json.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& file_or_dir);

}  // namespace moe
