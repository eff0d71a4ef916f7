// Numeric flag checking (see flags.h): parse exactly, reject NaN / infinities / fractions for
// integers / values outside the range, and name the range in the message.
#include "cli/flags.h"

#include <fmt/format.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace moe::cli {
namespace {

std::string format_bound(long double v, NumberKind kind) {
  if (kind == NumberKind::kFloat) return fmt::format("{:g}", static_cast<double>(v));
  if (v < 0) return fmt::format("{}", static_cast<long long>(v));
  return fmt::format("{}", static_cast<unsigned long long>(v));
}

bool is_limit_of_type(long double v, NumberKind kind) {
  if (kind == NumberKind::kFloat) return std::fabs(v) >= 1e300L;
  return v <= static_cast<long double>(std::numeric_limits<int64_t>::min()) ||
         v >= static_cast<long double>(std::numeric_limits<int64_t>::max());
}

}  // namespace

std::string describe(const NumberRange& r) {
  const std::string lo = format_bound(r.lo, r.kind), hi = format_bound(r.hi, r.kind);
  // A bound that only says "whatever the type holds" (a seed, a 2^31 cap) is noise in --help.
  const bool open_top = is_limit_of_type(r.hi, r.kind) || (r.kind != NumberKind::kFloat && r.hi >= 2147483647.0L);
  if (open_top && is_limit_of_type(r.lo, r.kind)) return "any";
  if (open_top) return fmt::format("{}{}", r.lo_open ? ">" : ">=", lo);
  return fmt::format("{}{}, {}]", r.lo_open ? "(" : "[", lo, hi);
}

std::string check_number(std::string& text, const NumberRange& r) {
  const bool integer = r.kind != NumberKind::kFloat;
  std::string range;
  if (r.lo_open) {
    range = fmt::format("greater than {} and at most {}", format_bound(r.lo, r.kind), format_bound(r.hi, r.kind));
  } else if (is_limit_of_type(r.hi, r.kind) && !is_limit_of_type(r.lo, r.kind)) {
    range = fmt::format("of at least {}", format_bound(r.lo, r.kind));
  } else {
    range = fmt::format("from {} to {}", format_bound(r.lo, r.kind), format_bound(r.hi, r.kind));
  }
  const std::string expected = fmt::format("expected {} {}{}, found '{}'", integer ? "an integer" : "a finite number",
                                           range, r.note.empty() ? "" : " (" + r.note + ")", text);
  if (text.empty() || std::isspace(static_cast<unsigned char>(text.front())) ||
      std::isspace(static_cast<unsigned char>(text.back()))) {
    return expected;
  }
  errno = 0;
  char* end = nullptr;
  long double v = std::strtold(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return expected;
  if (!integer) v = r.single ? static_cast<float>(v) : static_cast<double>(v);  // as the flag will hold it
  if (!std::isfinite(v)) return expected;
  if (integer && v != std::floor(v)) return expected;
  if (v > r.hi || v < r.lo || (r.lo_open && v == r.lo)) return expected;
  if (integer) text = format_bound(v, r.kind);  // 1e11 -> 100000000000, 0x10 -> 16
  return {};
}

std::vector<std::string> numeric_options_without_range(CLI::App& app, const std::string& prefix) {
  std::vector<std::string> missing;
  for (CLI::Option* opt : app.get_options()) {
    const std::string type = opt->get_type_name();
    const std::string base = type.substr(0, type.find(':'));
    if (base != "INT" && base != "UINT" && base != "FLOAT") continue;
    try {
      opt->get_validator(kNumberValidatorName);
    } catch (const CLI::OptionNotFound&) {
      missing.push_back(prefix + " " + opt->get_name());
    }
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    for (std::string& m : numeric_options_without_range(*sub, prefix + " " + sub->get_name())) {
      missing.push_back(std::move(m));
    }
  }
  return missing;
}

}  // namespace moe::cli
