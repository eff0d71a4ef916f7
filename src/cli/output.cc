#include "cli/output.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

#include "cli/command.h"

namespace moe::cli {

void print_json_report(const nlohmann::ordered_json& j) {
  const std::string s = j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

Progress::Progress(std::string label, bool enabled, const GlobalOptions& global)
    : label_(std::move(label)), active_(enabled && !global.json && isatty(STDERR_FILENO) != 0) {}

Progress::~Progress() { done(); }

void Progress::update(double done, double total, const char* unit) {
  if (!active_) return;
  const double now = timer_.seconds();
  if (last_draw_ >= 0 && now - last_draw_ < 0.1 && done < total) return;
  last_draw_ = now;
  const double f = total > 0 ? std::min(1.0, done / total) : 1.0;
  const int bars = static_cast<int>(f * 30);
  const std::string amount =
      total >= 100 ? fmt::format("{:.0f}/{:.0f}", done, total) : fmt::format("{:.2f}/{:.2f}", done, total);
  std::fprintf(stderr, "\r%s [%s%s] %5.1f%%  %s %s  %.0f s\x1b[K", label_.c_str(),
               std::string(static_cast<size_t>(bars), '#').c_str(),
               std::string(static_cast<size_t>(30 - bars), '.').c_str(), 100.0 * f, amount.c_str(), unit, now);
  std::fflush(stderr);
}

void Progress::done() {
  if (!active_ || last_draw_ < 0) return;
  std::fprintf(stderr, "\r\x1b[K");
  std::fflush(stderr);
  last_draw_ = -1;
}

}  // namespace moe::cli
