// Jinja values: construction, truthiness, printing, JSON in and out (see jinja.h).
#include <cmath>
#include <cstdio>

#include "chat/jinja.h"
#include "util/error.h"

namespace moe::jinja {

Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value::Value(bool b) : kind_(Kind::kBool), b_(b) {}
Value::Value(int64_t i) : kind_(Kind::kInt), i_(i) {}
Value::Value(double d) : kind_(Kind::kFloat), d_(d) {}
Value::Value(std::string s) : kind_(Kind::kString), s_(std::make_shared<std::string>(std::move(s))) {}
Value Value::array(Array items) {
  Value v;
  v.kind_ = Kind::kArray;
  v.a_ = std::make_shared<Array>(std::move(items));
  return v;
}
Value Value::object() {
  Value v;
  v.kind_ = Kind::kObject;
  v.o_ = std::make_shared<Object>();
  return v;
}
Value Value::callable(std::shared_ptr<Callable> c) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.c_ = std::move(c);
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return none();
    case nlohmann::json::value_t::boolean:
      return Value(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return Value(j.get<int64_t>());
    case nlohmann::json::value_t::number_float:
      return Value(j.get<double>());
    case nlohmann::json::value_t::string:
      return Value(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      Array a;
      for (const auto& x : j) a.push_back(from_json(x));
      return array(std::move(a));
    }
    case nlohmann::json::value_t::object: {
      Value o = object();
      for (auto it = j.begin(); it != j.end(); ++it) o.obj().set(it.key(), from_json(it.value()));
      return o;
    }
    default:
      return Value();
  }
}

const Value* Object::find(const std::string& key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

void Object::set(const std::string& key, Value v) {
  for (auto& [k, old] : entries) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  entries.emplace_back(key, std::move(v));
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return b_;
    case Kind::kInt:
      return i_ != 0;
    case Kind::kFloat:
      return d_ != 0.0;
    case Kind::kString:
      return !s_->empty();
    case Kind::kArray:
      return !a_->empty();
    case Kind::kObject:
      return true;  // @huggingface/jinja: every mapping is true, even {}
    case Kind::kCallable:
      return true;
  }
  return false;
}

namespace {

std::string format_float(double d) {
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e16) return fmt::format("{:.1f}", d);
  return fmt::format("{}", d);  // shortest round-trip, as JavaScript prints it
}

std::string json_of(const Value& v, int indent, int depth, bool undefined_as_null) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return undefined_as_null ? "null" : "undefined";
    case Value::Kind::kNone:
      return "null";
    case Value::Kind::kBool:
      return v.as_bool() ? "true" : "false";
    case Value::Kind::kInt:
      return std::to_string(v.as_int());
    case Value::Kind::kFloat: {
      const double d = v.as_double();
      if (!std::isfinite(d)) return "null";
      return d == std::floor(d) && std::fabs(d) < 1e16 ? fmt::format("{:.0f}", d) : fmt::format("{}", d);
    }
    case Value::Kind::kString:
      return nlohmann::json(v.str()).dump();
    case Value::Kind::kArray:
    case Value::Kind::kObject: {
      const std::string item_sep = indent > 0 ? "," : ", ";
      std::string base(static_cast<size_t>(indent * depth) + 1, ' ');
      base[0] = '\n';
      const std::string child = base + std::string(static_cast<size_t>(indent), ' ');
      std::vector<std::string> core;
      if (v.is_array()) {
        for (const Value& x : v.items()) core.push_back(json_of(x, indent, depth + 1, undefined_as_null));
      } else {
        for (const auto& [k, x] : v.obj().entries) {
          std::string entry = indent > 0 ? child : std::string();
          entry += nlohmann::json(k).dump();
          entry += ": ";
          entry += json_of(x, indent, depth + 1, undefined_as_null);
          core.push_back(std::move(entry));
        }
      }
      std::string out = v.is_array() ? "[" : "{";
      const bool pretty = indent > 0 && !core.empty();
      for (size_t i = 0; i < core.size(); ++i) {
        if (i > 0) out += v.is_array() && pretty ? item_sep + child : item_sep;
        if (i == 0 && pretty && v.is_array()) out += child;
        out += core[i];
      }
      if (pretty) out += base;
      return out + (v.is_array() ? "]" : "}");
    }
    case Value::Kind::kCallable:
      throw Error("template", "a function cannot be converted to JSON");
  }
  return "null";
}

}  // namespace

std::string tojson(const Value& v, int indent) { return json_of(v, indent, 0, true); }

std::string Value::to_string() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return "";
    case Kind::kBool:
      return b_ ? "true" : "false";
    case Kind::kInt:
      return std::to_string(i_);
    case Kind::kFloat:
      return format_float(d_);
    case Kind::kString:
      return *s_;
    case Kind::kArray:
    case Kind::kObject:
      return json_of(*this, 0, 0, false);
    case Kind::kCallable:
      return "<function>";
  }
  return "";
}

nlohmann::ordered_json Value::to_json() const { return nlohmann::ordered_json::parse(json_of(*this, 0, 0, true)); }

bool Value::operator==(const Value& o) const {
  const bool a_null = kind_ == Kind::kNone || kind_ == Kind::kUndefined;
  const bool b_null = o.kind_ == Kind::kNone || o.kind_ == Kind::kUndefined;
  if (a_null || b_null) return a_null && b_null;  // JavaScript: null == undefined
  if (is_number() && o.is_number()) return as_double() == o.as_double();
  if (kind_ == Kind::kBool && o.is_number()) return (b_ ? 1.0 : 0.0) == o.as_double();
  if (is_number() && o.kind_ == Kind::kBool) return as_double() == (o.b_ ? 1.0 : 0.0);
  if (kind_ != o.kind_) return false;
  switch (kind_) {
    case Kind::kBool:
      return b_ == o.b_;
    case Kind::kString:
      return *s_ == *o.s_;
    case Kind::kArray:
      return a_ == o.a_;  // identity, as @huggingface/jinja compares them
    case Kind::kObject:
      return o_ == o.o_;
    case Kind::kCallable:
      return c_ == o.c_;
    default:
      return false;
  }
}

const char* Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "undefined";
    case Kind::kNone:
      return "none";
    case Kind::kBool:
      return "boolean";
    case Kind::kInt:
      return "integer";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "string";
    case Kind::kArray:
      return "list";
    case Kind::kObject:
      return "mapping";
    case Kind::kCallable:
      return "function";
  }
  return "?";
}

}  // namespace moe::jinja
