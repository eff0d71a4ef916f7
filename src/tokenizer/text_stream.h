// Incremental detokenization for streaming: token ids in, text out only as complete UTF-8
// sequences, so a character whose bytes are split across byte-level BPE tokens (CJK, emoji) is
// printed once whole, never as U+FFFD. The concatenation of everything put() and finish() return
// is byte-identical to decoding all the ids at once (the window trick of Hugging Face's
// text-generation-inference: decode from one already-emitted token back, emit the difference).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

class Tokenizer;

// Length of the longest prefix of `bytes` that does not end inside an incomplete UTF-8 sequence
// (invalid bytes count as complete: waiting would not complete them).
size_t complete_utf8_prefix(std::string_view bytes);

class TextStream {
 public:
  // tok: the model's tokenizer; null decodes ids as bytes for a vocab-256 model, else as "<id>".
  // Ids beyond the tokenizer's vocabulary (a model's padded rows) have no text.
  TextStream(const Tokenizer* tok, int64_t vocab);
  // The text that token completes (often empty while a character is incomplete).
  std::string put(int32_t id);
  // What remains held back at the end (an incomplete sequence decodes as the tokenizer decodes it).
  std::string finish();
  const std::vector<int32_t>& ids() const { return ids_; }

 private:
  std::string decode(size_t begin, size_t end) const;
  const Tokenizer* tok_;
  int64_t vocab_, tok_vocab_;
  std::vector<int32_t> ids_;
  size_t prefix_ = 0, read_ = 0;  // ids_[prefix_, read_) emitted, the decode context of the rest
};

}  // namespace moe
