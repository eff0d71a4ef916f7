// Jinja's string helpers and the Python methods templates call on values (str.strip(), .split(),
// .startswith(), dict.items(), list.append() ...), used by the renderer (jinja.cc).
#include "chat/jinja_methods.h"

#include <algorithm>
#include <cctype>

namespace moe::jinja::detail {

bool is_space_char(char c) { return c == ' ' || (c >= 9 && c <= 13); }

std::string strip(const std::string& s, const std::string* chars, bool left, bool right) {
  auto strip_it = [&](char c) { return chars ? chars->find(c) != std::string::npos : is_space_char(c); };
  size_t b = 0, e = s.size();
  if (left)
    while (b < e && strip_it(s[b])) ++b;
  if (right)
    while (e > b && strip_it(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::string replace_all(std::string s, const std::string& from, const std::string& to, int64_t count) {
  if (from.empty()) return s;
  size_t pos = 0;
  for (int64_t done = 0; count < 0 || done < count; ++done) {
    pos = s.find(from, pos);
    if (pos == std::string::npos) break;
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Python-style index: negative counts from the end.
int64_t clamp_index(int64_t i, int64_t n) { return i < 0 ? i + n : i; }

const Value* kwarg(const CallArgs& a, const char* name) {
  for (const auto& [k, v] : a.keyword)
    if (k == name) return &v;
  return nullptr;
}
Value arg(const CallArgs& a, size_t i, const char* name) {
  if (i < a.positional.size()) return a.positional[i];
  if (name != nullptr)
    if (const Value* v = kwarg(a, name)) return *v;
  return Value();
}

namespace {

// str.split(): on runs of whitespace when `sep` is none (leading and trailing runs give no parts), else
// on each `sep`; at most `maxsplit` splits when it is >= 0, the rest of the string the last part.
Array split_string(const std::string& s, const Value& sep, int64_t maxsplit, const ErrorFn& error) {
  Array parts;
  if (sep.is_none() || sep.is_undefined()) {
    size_t i = 0;
    while (true) {
      while (i < s.size() && is_space_char(s[i])) ++i;
      if (i >= s.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) {
        parts.push_back(Value(strip(s.substr(i), nullptr, false, true)));
        break;
      }
      size_t j = i;
      while (j < s.size() && !is_space_char(s[j])) ++j;
      parts.push_back(Value(s.substr(i, j - i)));
      i = j;
    }
    return parts;
  }
  if (!sep.is_string() || sep.str().empty()) error("split() needs a non-empty string separator");
  size_t i = 0;
  while (true) {
    const size_t j = s.find(sep.str(), i);
    if (j == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit)) {
      parts.push_back(Value(s.substr(i)));
      break;
    }
    parts.push_back(Value(s.substr(i, j - i)));
    i = j + sep.str().size();
  }
  return parts;
}

std::optional<Value> string_method(const std::string& s, const std::string& name, const CallArgs& a,
                                   const ErrorFn& error) {
  auto chars = [&]() -> std::optional<std::string> {
    const Value c = arg(a, 0, "chars");
    if (c.is_string()) return c.str();
    return std::nullopt;
  };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const auto c = chars();
    return Value(strip(s, c ? &*c : nullptr, name != "rstrip", name != "lstrip"));
  }
  if (name == "upper") return Value(upper(s));
  if (name == "lower") return Value(lower(s));
  if (name == "startswith" || name == "endswith") {
    const Value p = arg(a, 0);
    Array options = p.is_array() ? p.items() : Array{p};
    for (const Value& o : options) {
      if (!o.is_string()) error(name + "() needs a string or a tuple of strings");
      if (name == "startswith" ? s.starts_with(o.str()) : s.ends_with(o.str())) return Value(true);
    }
    return Value(false);
  }
  if (name == "split") {
    const Value maxv = arg(a, 1, "maxsplit");
    return Value::array(
        split_string(s, arg(a, 0, "sep"), maxv.kind() == Value::Kind::kInt ? maxv.as_int() : -1, error));
  }
  if (name == "replace") {
    const Value from = arg(a, 0), to = arg(a, 1), count = arg(a, 2, "count");
    if (!from.is_string() || !to.is_string()) error("replace() needs two strings");
    return Value(replace_all(s, from.str(), to.str(), count.kind() == Value::Kind::kInt ? count.as_int() : -1));
  }
  if (name == "title" || name == "capitalize") return Value(apply_case(s, name));
  if (name == "find") {
    const Value sub = arg(a, 0);
    if (!sub.is_string()) error("find() needs a string");
    const size_t at = s.find(sub.str());
    return Value(at == std::string::npos ? int64_t{-1} : static_cast<int64_t>(at));
  }
  if (name == "format") error("str.format() is not supported");
  return std::nullopt;
}

std::optional<Value> mapping_method(const Value& obj, const std::string& name, const CallArgs& a) {
  if (obj.obj().find(name) != nullptr) return std::nullopt;  // a stored function
  Object& o = obj.obj();
  if (name == "items") {
    Array pairs;
    for (const auto& [k, v] : o.entries) pairs.push_back(Value::array({Value(k), v}));
    return Value::array(std::move(pairs));
  }
  if (name == "keys" || name == "values") {
    Array out;
    for (const auto& [k, v] : o.entries) out.push_back(name == "keys" ? Value(k) : v);
    return Value::array(std::move(out));
  }
  if (name == "get") {
    const Value key = arg(a, 0);
    if (const Value* v = key.is_string() ? o.find(key.str()) : nullptr) return *v;
    return a.positional.size() > 1 ? a.positional[1] : Value::none();
  }
  return std::nullopt;
}

}  // namespace

std::optional<Value> call_method(const Value& obj, const std::string& name, const CallArgs& a, const ErrorFn& error) {
  if (obj.is_string()) return string_method(obj.str(), name, a, error);
  if (obj.is_object()) return mapping_method(obj, name, a);
  if (obj.is_array() && name == "append") {
    obj.items().push_back(arg(a, 0));
    return Value::none();
  }
  return std::nullopt;
}

std::string apply_case(const std::string& s, const std::string& how) {
  std::string out = lower(s);
  bool start = true;
  for (size_t i = 0; i < out.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(out[i]);
    if (how == "capitalize") {
      if (i == 0) out[i] = static_cast<char>(std::toupper(c));
      continue;
    }
    if (start && std::isalpha(c)) out[i] = static_cast<char>(std::toupper(c));
    start = !std::isalnum(c);
  }
  return out;
}

}  // namespace moe::jinja::detail
