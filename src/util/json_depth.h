// How deeply a JSON text nests arrays and objects, found by one scan of the text (strings and their
// escapes skipped), before any parser builds it. A hostile file of a million '[' parses, but the
// recursive walks over the result (dump() in an error message, destruction, a reader's descent)
// overflow the stack; the readers refuse such a file by name instead. Real files nest a few levels
// (config.json ~4, tokenizer.json ~6, a safetensors header 3).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace moe {

inline constexpr size_t kMaxJsonDepth = 256;

// The deepest nesting of [ and { in text (0 for a scalar); unbalanced text is left to the parser.
size_t json_nesting_depth(std::string_view text);

// Throws moe::Error "[component] <where>: JSON nests N levels deep, more than the 256 ..." when the
// text nests deeper than kMaxJsonDepth.
void check_json_depth(std::string_view text, const std::string& component, const std::string& where);

}  // namespace moe
