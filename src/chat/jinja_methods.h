// Internal to the Jinja renderer: string helpers and value methods (jinja_methods.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "chat/jinja.h"

namespace moe::jinja::detail {

using ErrorFn = std::function<void(const std::string&)>;  // throws: a template error at the call's node

bool is_space_char(char c);
std::string strip(const std::string& s, const std::string* chars, bool left, bool right);
std::string replace_all(std::string s, const std::string& from, const std::string& to, int64_t count);
std::string upper(std::string s);
std::string lower(std::string s);
int64_t clamp_index(int64_t i, int64_t n);  // Python-style index: negative counts from the end
std::string apply_case(const std::string& s, const std::string& how);  // "capitalize" or "title"

const Value* kwarg(const CallArgs& a, const char* name);
Value arg(const CallArgs& a, size_t i, const char* name = nullptr);

// obj.name(args) for the methods templates use on strings, objects and arrays; nullopt when obj has none.
std::optional<Value> call_method(const Value& obj, const std::string& name, const CallArgs& a, const ErrorFn& error);

}  // namespace moe::jinja::detail
