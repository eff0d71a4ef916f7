// Duplicate-key detection over nlohmann's parser callback: one set of keys per open object.
#include "io/json_keys.h"

#include <unordered_set>
#include <vector>

#include "util/json_depth.h"

namespace moe {

nlohmann::json parse_json_checking_keys(std::string_view text, DuplicateKey* duplicate) {
  *duplicate = {};
  struct Open {
    std::unordered_set<std::string> keys;
    std::string name;  // the key this object is the value of
  };
  std::vector<Open> open;
  std::string last_key;
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    switch (event) {
      case E::object_start:
        open.push_back({{}, last_key});
        last_key.clear();
        break;
      case E::object_end:
        if (!open.empty()) open.pop_back();
        break;
      case E::array_start:
        last_key.clear();
        break;
      case E::key:
        last_key = parsed.get<std::string>();
        if (!open.empty() && !open.back().keys.insert(last_key).second && duplicate->key.empty()) {
          *duplicate = {last_key, static_cast<int>(open.size()), open.back().name};
        }
        break;
      default:
        break;
    }
    return true;
  };
  if (json_nesting_depth(text) > kMaxJsonDepth) {
    throw nlohmann::json::parse_error::create(
        0, 0, "JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels, more than any real file needs",
        nullptr);
  }
  return nlohmann::json::parse(text.begin(), text.end(), callback);
}

}  // namespace moe
