// The one way numeric flags are declared: add_number() (or ->transform(number_in(...)) on an
// option CLI11 made; transform, not check, so 1e11 can be rewritten to digits), with the allowed
// range next to the flag. NaN, infinities, values beyond the
// variable's type and values outside the range are usage errors (exit 2) naming the flag and the
// range: `moe: [cli] --log-every: expected an integer from 1 to 1000000000, found 0`.
// tests/cli/flags_test.cc walks the whole command tree and fails for any numeric option without it.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace moe::cli {

// Ranges shared by several commands.
inline constexpr int kMaxEpRanks = 1 << 16;  // --ep R

// The name every numeric validator carries (the tree walk looks for it).
inline constexpr const char* kNumberValidatorName = "moe-number";

enum class NumberKind { kSigned, kUnsigned, kFloat };

struct NumberRange {
  NumberKind kind = NumberKind::kSigned;
  long double lo = 0, hi = 0;
  bool lo_open = false;  // lo itself excluded ("> 0")
  std::string note;      // what a special value means, e.g. "0 = off"
  bool single = false;   // a float flag: values are rounded to float (else double) before the range test
};

// "" when `text` is a number of the range's kind inside it; else "expected ..., found ...".
// An integer may be written 1e11 when that is exactly an integer: `text` is then rewritten to
// its digits (so CLI11's conversion reads it).
std::string check_number(std::string& text, const NumberRange& range);

// The range's description for --help, e.g. "1 to 1024" or "> 0 to 10".
std::string describe(const NumberRange& range);

template <typename T>
constexpr NumberKind number_kind() {
  static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "numeric flags only");
  if constexpr (std::is_floating_point_v<T>) return NumberKind::kFloat;
  if constexpr (std::is_signed_v<T>) return NumberKind::kSigned;
  return NumberKind::kUnsigned;
}

// A validator for values of type T in [lo, hi] (`lo_open`: (lo, hi]).
template <typename T>
CLI::Validator number_in(T lo, T hi, const std::string& note = "", bool lo_open = false) {
  const NumberRange r{
      number_kind<T>(),          static_cast<long double>(lo), static_cast<long double>(hi), lo_open, note,
      sizeof(T) == sizeof(float)};
  return CLI::Validator([r](std::string& s) { return check_number(s, r); }, describe(r), kNumberValidatorName);
}

// The whole range of T (a seed: any uint64_t, but not -1, 1.5 or 1e30).
template <typename T>
CLI::Validator any_number() {
  if constexpr (std::is_floating_point_v<T>) {
    return number_in<T>(std::numeric_limits<T>::lowest(), std::numeric_limits<T>::max());
  } else {
    return number_in<T>(std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
  }
}

// "help (note)", or "help (its own remark; note)" when help already ends in a parenthesis.
inline std::string with_note(const std::string& help, const std::string& note) {
  if (note.empty()) return help;
  if (!help.empty() && help.back() == ')') return help.substr(0, help.size() - 1) + "; " + note + ")";
  return help + " (" + note + ")";
}

// Declares a numeric flag with its range; the default is shown in --help.
template <typename T>
CLI::Option* add_number(CLI::App* cmd, const std::string& name, T& var, const std::string& help, T lo, T hi,
                        const std::string& note = "") {
  return cmd->add_option(name, var, with_note(help, note))
      ->transform(number_in<T>(lo, hi, note))
      ->capture_default_str();
}

// The same for a number > lo (a learning rate, a RoPE base).
template <typename T>
CLI::Option* add_number_above(CLI::App* cmd, const std::string& name, T& var, const std::string& help, T lo, T hi) {
  return cmd->add_option(name, var, help)->transform(number_in<T>(lo, hi, "", true))->capture_default_str();
}

// A comma-separated list of numbers, each in [lo, hi].
template <typename T>
CLI::Option* add_numbers(CLI::App* cmd, const std::string& name, std::vector<T>& var, const std::string& help, T lo,
                         T hi) {
  return cmd->add_option(name, var, help)->delimiter(',')->transform(number_in<T>(lo, hi))->capture_default_str();
}

// A flag that turns a default-on setting off (`--no-progress`): `target` becomes false when given. Unlike
// CLI11's "!--no-x" form, --help shows the plain name (no "{false}").
inline CLI::Option* add_off_flag(CLI::App* cmd, const std::string& name, bool& target, const std::string& help) {
  return cmd->add_flag_callback(
      name, [&target] { target = false; }, help);
}

// Every option in the tree under `app` whose value is a number but that has no number validator
// ("moe train --steps"); empty when every numeric flag is declared through this header.
std::vector<std::string> numeric_options_without_range(CLI::App& app, const std::string& prefix = "moe");

}  // namespace moe::cli
