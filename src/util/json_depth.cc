// JSON nesting depth by a scan of the text (see json_depth.h).
#include "util/json_depth.h"

#include "util/error.h"

namespace moe {

size_t json_nesting_depth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest) deepest = depth;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

void check_json_depth(std::string_view text, const std::string& component, const std::string& where) {
  const size_t depth = json_nesting_depth(text);
  if (depth > kMaxJsonDepth) {
    fail(component, "{}: JSON nests {} levels deep, more than the {} any real file needs; refusing it", where, depth,
         kMaxJsonDepth);
  }
}

}  // namespace moe
