// Leveled logging to stderr.
#include "util/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace moe {
namespace {

LogLevel level_from_env() {
  const char* v = std::getenv("MOE_LOG_LEVEL");
  if (v == nullptr) return LogLevel::kInfo;
  if (std::strcmp(v, "debug") == 0) return LogLevel::kDebug;
  if (std::strcmp(v, "warn") == 0) return LogLevel::kWarn;
  if (std::strcmp(v, "error") == 0) return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<int>& level_storage() {
  static std::atomic<int> level{static_cast<int>(level_from_env())};
  return level;
}

}  // namespace

LogLevel log_level() { return static_cast<LogLevel>(level_storage().load(std::memory_order_relaxed)); }
void set_log_level(LogLevel level) { level_storage().store(static_cast<int>(level)); }

void log_line(LogLevel level, const std::string& text) {
  static const char* kNames[] = {"debug", "info", "warn", "error"};
  std::fprintf(stderr, "moe %s: %s\n", kNames[static_cast<int>(level)], text.c_str());
}

}  // namespace moe
