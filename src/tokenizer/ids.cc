// The token-id list parser (see ids.h): digits only, each within int32, any run of separators.
#include "tokenizer/ids.h"

#include <cctype>
#include <climits>
#include <string_view>

#include "util/error.h"

namespace moe {

std::vector<int32_t> parse_ids(const std::string& text, const std::string& source) {
  std::vector<int32_t> ids;
  size_t begin = 0;
  auto flush = [&](size_t end) {
    if (end == begin) return;
    const std::string_view token(text.data() + begin, end - begin);
    int64_t v = 0;
    bool ok = token.size() <= 10;
    for (char c : token) {
      ok = ok && c >= '0' && c <= '9';
      if (ok) v = v * 10 + (c - '0');
    }
    if (!ok || v > INT32_MAX) {
      fail_usage("cli", "{}: {:?} at byte {} is not a token id (expected an integer from 0 to {})", source,
                 std::string(token.substr(0, 40)), begin, INT32_MAX);
    }
    ids.push_back(static_cast<int32_t>(v));
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ',' || c == '[' || c == ']' || std::isspace(static_cast<unsigned char>(c))) {
      flush(i);
      begin = i + 1;
    }
  }
  flush(text.size());
  return ids;
}

}  // namespace moe
