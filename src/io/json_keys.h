// JSON text parsed with every object's keys checked for repeats. nlohmann keeps the last of two
// equal keys without a word; a safetensors header or shard index naming a tensor twice is
// ambiguous, so the readers refuse it by name.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace moe {

struct DuplicateKey {
  std::string key;     // empty: no key repeats
  int depth = 0;       // 1: a key of the top-level object, 2: of an object inside it, ...
  std::string parent;  // the key holding the object the repeat is in (empty at depth 1)
};

// Parses `text` (throws nlohmann::json::parse_error as json::parse does, also for nesting deeper
// than kMaxJsonDepth) and reports the first key that repeats within one object in *duplicate.
nlohmann::json parse_json_checking_keys(std::string_view text, DuplicateKey* duplicate);

}  // namespace moe
