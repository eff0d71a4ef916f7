#include "util/json_out.h"

#include <unistd.h>

#include <fmt/format.h>

namespace moe {

int64_t last_level_cache_bytes() {
  long v = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
  v = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (v <= 0) v = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
  return v > 0 ? static_cast<int64_t>(v) : int64_t{32} << 20;
}

CeilingFraction read_ceiling_fraction(double achieved, double ceiling, double bytes_touched, int64_t llc_bytes) {
  CeilingFraction f;
  if (!(ceiling > 0) || !std::isfinite(achieved) || !std::isfinite(ceiling)) {
    f.note = "no read ceiling measured";
    return f;
  }
  if (bytes_touched > 0 && bytes_touched <= static_cast<double>(llc_bytes)) {
    f.note = fmt::format(
        "the {:.1f} MiB touched per step fit in the {} MiB last-level cache: DRAM bandwidth is "
        "not the limit",
        bytes_touched / (1 << 20), llc_bytes >> 20);
    return f;
  }
  f.fraction = achieved / ceiling;
  if (*f.fraction > 1.0) f.note = kAboveCeilingNote;
  return f;
}

void put_ceiling_fraction(nlohmann::ordered_json& j, const std::string& key, const CeilingFraction& f) {
  j[key] = json_measured(f.fraction);
  j[key + "_note"] = f.note.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(f.note);
}

std::string ceiling_fraction_text(const CeilingFraction& f) {
  if (f.note.empty()) return {};
  return " (" + f.note + ")";
}

}  // namespace moe
