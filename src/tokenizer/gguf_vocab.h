// Tokenizers in GGUF files (tokenizer.ggml.* metadata, as llama.cpp reads and writes them): a Tokenizer
// built from a GGUF file's metadata, and the metadata llama.cpp's converter would write for a Hugging
// Face model folder, so that the GGUF files moe writes load in llama.cpp with a working tokenizer.
// Models: "gpt2" (byte-level BPE with listed merges and a named pre-tokenizer, see gguf_pre.h),
// "llama" (SentencePiece BPE: merges by token score, byte tokens <0xXX>, a space prefix) and "none".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

namespace moe {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class GgufTokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // matched in text as a special token; dropped by decode(skip_special)
  kUserDefined = 4,  // matched in text; always decoded as written
  kUnused = 5,
  kByte = 6,  // <0xXX> of SentencePiece byte fallback
};

// True when the file starts with the GGUF magic.
bool is_gguf_file(const std::string& path);

// The tokenizer of a GGUF file's metadata. Errors are "[tokenizer] <file>: <key>: ..." for missing or
// malformed tokenizer.ggml.* values. A file whose tokenizer.ggml.model is "none" loads, and encode /
// decode then throw saying it has no vocabulary.
std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufFile& file);
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path);

// The tokenizer.* key/values for a Hugging Face model folder (tokenizer.json; tokenizer_config.json,
// config.json, generation_config.json and chat_template.jinja when present), in the order llama.cpp's
// converter writes them: tokenizer.ggml.model, .pre, .tokens, .scores (SentencePiece), .token_type,
// .merges (byte-level), the special token ids, add_bos_token / add_eos_token, add_space_prefix
// (SentencePiece) and tokenizer.chat_template. The pre-tokenizer name is chosen from the
// tokenizer.json pre-tokenizer's regexes (gguf_pre.h); one llama.cpp does not know is an error naming it.
std::vector<std::pair<std::string, GgufValue>> gguf_tokenizer_metadata(const std::string& model_dir);

}  // namespace moe
