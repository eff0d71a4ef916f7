// The conventions every `--json` report follows (docs/CLI.md), in one place: counts are JSON
// integers, figures that were not measured are null, a fraction of a ceiling that does not apply is
// null with the reason next to it.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace moe {

// A count held in a double (bytes, FLOPs, parameters, mean experts...): a JSON integer when it is a
// whole number an int64 holds exactly, else the number itself (a mean such as 3.5 stays 3.5).
template <std::integral T>
nlohmann::ordered_json json_count(T v) {
  return v;
}
inline nlohmann::ordered_json json_count(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9.0e15) return static_cast<int64_t>(v);
  return v;
}

// A measured figure: null when it was not measured (a skipped ceiling, no validation set) or is not
// finite. Never 0.0 for "unknown".
inline nlohmann::ordered_json json_measured(double v, bool measured = true) {
  if (!measured || !std::isfinite(v)) return nullptr;
  return v;
}
inline nlohmann::ordered_json json_measured(const std::optional<double>& v) {
  return v ? json_measured(*v) : nlohmann::ordered_json(nullptr);
}

// An achieved rate as a fraction of a memory-read ceiling measured in DRAM. When the bytes a step
// touches fit in the last-level cache, DRAM bandwidth is not what limits it: the fraction is null
// and `note` says so. Above 1 otherwise, the fraction is kept and `note` says the ceiling was
// measured lower than what the work achieved (a busy machine during the ceiling's measurement).
inline constexpr const char* kAboveCeilingNote =
    "above the read ceiling: the ceiling was measured lower (a busy machine) than this run achieved";
struct CeilingFraction {
  std::optional<double> fraction;
  std::string note;  // empty when the fraction is the plain ratio
};
CeilingFraction read_ceiling_fraction(double achieved_bytes_per_s, double ceiling_bytes_per_s, double bytes_touched,
                                      int64_t llc_bytes);
// The last-level cache size in bytes (sysconf; 32 MiB when the system does not say).
int64_t last_level_cache_bytes();

// The JSON pair for a CeilingFraction: {"<key>": fraction or null, "<key>_note": note or null}.
void put_ceiling_fraction(nlohmann::ordered_json& j, const std::string& key, const CeilingFraction& f);
// " (note)" for text reports, or "".
std::string ceiling_fraction_text(const CeilingFraction& f);

}  // namespace moe
