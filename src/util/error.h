// moe::Error, thrown at the edges (files, configs, CLI, MPI setup) with a [component] prefix.
// The message says the file and field, what was expected, what was found, and a hint.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace moe {

class Error : public std::runtime_error {
 public:
  Error(std::string component, const std::string& message)
      : std::runtime_error("[" + component + "] " + message), component_(std::move(component)) {}
  const std::string& component() const { return component_; }

 private:
  std::string component_;
};

// Usage errors (bad flags, impossible settings) exit with code 2 instead of 1.
class UsageError : public Error {
 public:
  using Error::Error;
};

// Throws moe::Error("component", fmt-formatted message).
template <typename... Args>
[[noreturn]] void fail(const std::string& component, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(component, fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void fail_usage(const std::string& component, fmt::format_string<Args...> format, Args&&... args) {
  throw UsageError(component, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace moe
