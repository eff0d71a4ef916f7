// TextStream (see text_stream.h).
#include "tokenizer/text_stream.h"

#include <fmt/format.h>

#include <span>

#include "tokenizer/tokenizer.h"

namespace moe {

size_t complete_utf8_prefix(std::string_view s) {
  // Look back at most 3 bytes for the lead byte of the last sequence.
  const size_t n = s.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const unsigned char c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    const size_t need = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD: what the decoders make of a partial sequence
}

TextStream::TextStream(const Tokenizer* tok, int64_t vocab)
    : tok_(tok), vocab_(vocab), tok_vocab_(tok ? static_cast<int64_t>(tok->vocab_size()) : 0) {}

std::string TextStream::decode(size_t begin, size_t end) const {
  if (tok_ != nullptr) {
    // A model's vocabulary may be padded past the tokenizer's: such ids have no text.
    std::vector<int32_t> known;
    known.reserve(end - begin);
    for (size_t i = begin; i < end; ++i)
      if (ids_[i] >= 0 && ids_[i] < tok_vocab_) known.push_back(ids_[i]);
    return tok_->decode(known);
  }
  std::string s;
  for (size_t i = begin; i < end; ++i)
    s += vocab_ == 256 ? std::string(1, static_cast<char>(ids_[i])) : fmt::format("<{}>", ids_[i]);
  return s;
}

std::string TextStream::put(int32_t id) {
  ids_.push_back(id);
  const std::string before = decode(prefix_, read_), now = decode(prefix_, ids_.size());
  if (now.size() <= before.size() || now.compare(0, before.size(), before) != 0) return {};
  if (tok_ != nullptr) {
    if (now.ends_with(kReplacement)) return {};  // a character still incomplete
  } else if (complete_utf8_prefix(now) != now.size()) {
    return {};
  }
  std::string out = now.substr(before.size());
  prefix_ = read_;
  read_ = ids_.size();
  return out;
}

std::string TextStream::finish() {
  if (read_ == ids_.size()) return {};
  const std::string before = decode(prefix_, read_), now = decode(prefix_, ids_.size());
  prefix_ = read_ = ids_.size();
  if (now.size() < before.size() || now.compare(0, before.size(), before) != 0) return now;
  return now.substr(before.size());
}

}  // namespace moe
