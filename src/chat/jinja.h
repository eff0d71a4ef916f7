// A focused Jinja interpreter for chat templates (Debian packages no C++ Jinja engine). It covers
// the subset real chat templates use (Qwen3, DeepSeek-V3, gpt-oss harmony, Mixtral, Llama 3):
// for / if / elif / else / set (also namespace() attributes and block set) / macro, filters and
// tests, loop variables, string and dict methods, slicing, raise_exception, whitespace control
// ({%- -%}) with trim_blocks and lstrip_blocks as transformers and @huggingface/jinja apply them.
// Rendering is checked byte for byte against @huggingface/jinja (tests/chat). Errors are
// moe::Error "[template] <name>:<line>: ...".
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moe::jinja {

struct Node;
class Value;
using Array = std::vector<Value>;
struct Object;
struct Callable;

// A template value: undefined, none, bool, int, float, string, array, object (insertion-ordered,
// shared like Python's), or callable (macros and builtins).
class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kArray, kObject, kCallable };
  Value() = default;
  static Value none();
  Value(bool b);
  Value(int64_t i);
  Value(int i) : Value(static_cast<int64_t>(i)) {}
  Value(double d);
  Value(std::string s);
  Value(const char* s) : Value(std::string(s)) {}
  static Value array(Array items = {});
  static Value object();
  static Value callable(std::shared_ptr<Callable> c);
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool truthy() const;

  bool as_bool() const { return b_; }
  int64_t as_int() const { return kind_ == Kind::kFloat ? static_cast<int64_t>(d_) : i_; }
  double as_double() const { return kind_ == Kind::kInt ? static_cast<double>(i_) : d_; }
  const std::string& str() const { return *s_; }
  Array& items() const { return *a_; }
  Object& obj() const { return *o_; }
  Callable& fn() const { return *c_; }

  std::string to_string() const;  // as {{ value }} prints it
  nlohmann::ordered_json to_json() const;
  bool operator==(const Value& o) const;
  const char* type_name() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  int64_t i_ = 0;
  double d_ = 0.0;
  std::shared_ptr<std::string> s_;
  std::shared_ptr<Array> a_;
  std::shared_ptr<Object> o_;
  std::shared_ptr<Callable> c_;
};

struct Object {
  std::vector<std::pair<std::string, Value>> entries;
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v);
};

// JSON as @huggingface/jinja's tojson writes it (Python's json.dumps layout: ", " and ": ", or one
// item per line at `indent` > 0; non-ASCII kept).
std::string tojson(const Value& v, int indent = 0);

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

struct Callable {
  std::function<Value(const CallArgs&)> call;
};

class Template {
 public:
  // Parses `source`; `name` appears in error messages. Throws moe::Error "[template] ...".
  Template(const std::string& source, std::string name = "template");
  ~Template();
  Template(Template&&) noexcept;
  // Renders with the given variables (plus the builtins: raise_exception, namespace, range, ...).
  std::string render(const std::map<std::string, Value>& variables) const;

 private:
  std::string name_;
  std::unique_ptr<Node> root_;
};

}  // namespace moe::jinja
