// A compiled Unicode regex (PCRE2 with UTF + UCP, JIT when available) for pre-tokenizer splits.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moe::tok {

struct Span {
  size_t begin = 0;
  size_t end = 0;
};

class Regex {
 public:
  // `where` names the file and field for error messages.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the non-overlapping matches in text (leftmost first), offsets relative to text.
  // text must be valid UTF-8.
  void find_all(std::string_view text, std::vector<Span>& out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe::tok
