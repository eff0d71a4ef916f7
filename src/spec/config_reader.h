// ConfigReader: typed, alias-aware access to one JSON object of a config.json that remembers
// which keys were read, so the keys nobody read can be listed (never silently ignored).
// Every type or range error names the source file and the field.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace moe {

class ConfigReader {
 public:
  // prefix is prepended to field names in messages and unknown-key lists ("rope_scaling.").
  ConfigReader(const nlohmann::json& object, std::string source, std::string prefix = "");

  // The first present, non-null key among aliases (marks all aliases as read); nullptr if none.
  const nlohmann::json* find(std::initializer_list<std::string_view> aliases);
  bool has(std::initializer_list<std::string_view> aliases);
  // True when the key is present with the value null (marks it read). transformers writes None as
  // null, which can mean something else than an absent key (absent: the config class default).
  bool is_null(std::string_view key);

  // Integers must be >= 0 (sizes); integral floats (8.0) are accepted.
  std::optional<int64_t> opt_int(std::initializer_list<std::string_view> aliases);
  int64_t req_int(std::initializer_list<std::string_view> aliases);  // missing: error naming aliases[0]
  int64_t int_or(std::initializer_list<std::string_view> aliases, int64_t fallback);
  double num_or(std::initializer_list<std::string_view> aliases, double fallback);
  bool bool_or(std::initializer_list<std::string_view> aliases, bool fallback);
  std::string str_or(std::initializer_list<std::string_view> aliases, const std::string& fallback);
  std::vector<int64_t> int_list(std::initializer_list<std::string_view> aliases);  // empty if absent
  std::vector<std::string> str_list(std::initializer_list<std::string_view> aliases);
  std::vector<double> num_list(std::initializer_list<std::string_view> aliases);  // finite numbers; empty if absent
  // A nested object (nullptr if absent or null); errors if present with another type.
  const nlohmann::json* object(std::initializer_list<std::string_view> aliases);

  // Keys that are known to have no effect on the architecture (dropout, token ids ...).
  void acknowledge(std::initializer_list<std::string_view> keys);
  void acknowledge_common();
  // Keys of this object never read nor acknowledged, with the prefix.
  std::vector<std::string> unused_keys() const;

  [[noreturn]] void fail_field(std::string_view field, const std::string& what) const;
  const std::string& source() const { return source_; }
  const std::string& prefix() const { return prefix_; }

 private:
  int64_t to_int(std::string_view key, const nlohmann::json& v) const;

  const nlohmann::json& obj_;
  std::string source_, prefix_;
  std::set<std::string, std::less<>> used_;
};

}  // namespace moe
