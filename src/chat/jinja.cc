// Jinja rendering: scopes, statements, expressions, filters, tests and methods (see jinja.h).
#include "chat/jinja.h"

#include <algorithm>
#include <cmath>

#include "chat/jinja_ast.h"
#include "chat/jinja_lexer.h"
#include "chat/jinja_methods.h"
#include "util/error.h"

namespace moe::jinja {
namespace {

using namespace detail;  // NOLINT: the helpers of jinja_methods.h

// A variable scope: for-loop bodies and macro calls open one; `set` writes the innermost.
struct Scope {
  std::shared_ptr<Scope> parent;
  std::map<std::string, Value> vars;
  const Value* find(const std::string& k) const {
    for (const Scope* s = this; s != nullptr; s = s->parent.get()) {
      if (auto it = s->vars.find(k); it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
};
using ScopePtr = std::shared_ptr<Scope>;

struct LoopControl {
  enum { kNone, kBreak, kContinue } state = kNone;
};

class Renderer {
 public:
  Renderer(const std::string& name) : name_(name) {}

  [[noreturn]] void error(const Node& n, const std::string& what) const {
    throw Error("template", fmt::format("{}:{}: {}", name_, n.line, what));
  }

  void render(const Node& n, const ScopePtr& scope, std::string& out, LoopControl& ctl) {
    switch (n.kind) {
      case NodeKind::kBlock:
        for (const auto& k : n.kids) {
          render(*k, scope, out, ctl);
          if (ctl.state != LoopControl::kNone) return;
        }
        return;
      case NodeKind::kText:
        out += n.str;
        return;
      case NodeKind::kOutput:
        out += eval(*n.kids[0], scope).to_string();
        return;
      case NodeKind::kIf:
        render(eval(*n.kids[0], scope).truthy() ? *n.kids[1] : *n.kids[2], scope, out, ctl);
        return;
      case NodeKind::kFor:
        render_for(n, scope, out);
        return;
      case NodeKind::kSet: {
        Value v = eval(*n.kids[1], scope);
        const Node& target = *n.kids[0];
        if (target.kind == NodeKind::kName) {
          scope->vars[target.str] = std::move(v);
        } else {
          const Value obj = eval(*target.kids[0], scope);
          if (!obj.is_object()) error(n, "cannot set ." + target.str + " on a " + obj.type_name());
          obj.obj().set(target.str, std::move(v));
        }
        return;
      }
      case NodeKind::kSetBlock: {
        std::string body;
        LoopControl inner;
        render(*n.kids[0], scope, body, inner);
        scope->vars[n.str] = Value(std::move(body));
        return;
      }
      case NodeKind::kMacro:
        scope->vars[n.str] = make_macro(n, scope);
        return;
      case NodeKind::kBreak:
        ctl.state = LoopControl::kBreak;
        return;
      case NodeKind::kContinue:
        ctl.state = LoopControl::kContinue;
        return;
      default:
        error(n, "internal: an expression where a statement was expected");
    }
  }

 private:
  const std::string& name_;

  Value make_macro(const Node& n, const ScopePtr& defined_in) {
    auto c = std::make_shared<Callable>();
    c->call = [this, &n, defined_in](const CallArgs& args) {
      auto scope = std::make_shared<Scope>();
      scope->parent = defined_in;
      for (size_t i = 0; i < n.names.size(); ++i) {
        Value v;
        if (i < args.positional.size()) {
          v = args.positional[i];
        } else if (n.kids[i + 1]) {
          v = eval(*n.kids[i + 1], defined_in);
        }
        scope->vars[n.names[i]] = v;
      }
      for (const auto& [k, v] : args.keyword) {
        if (std::find(n.names.begin(), n.names.end(), k) == n.names.end())
          error(n, "macro " + n.str + " has no parameter " + k);
        scope->vars[k] = v;
      }
      std::string out;
      LoopControl ctl;
      render(*n.kids[0], scope, out, ctl);
      return Value(std::move(out));
    };
    return Value::callable(c);
  }

  Array iterate(const Node& at, const Value& v) {
    if (v.is_array()) return v.items();
    if (v.is_object()) {
      Array keys;
      for (const auto& [k, x] : v.obj().entries) keys.push_back(Value(k));
      return keys;
    }
    if (v.is_string()) {
      Array chars;
      for (char c : v.str()) chars.push_back(Value(std::string(1, c)));
      return chars;
    }
    if (v.is_undefined() || v.is_none()) return {};
    error(at, std::string("cannot iterate over a ") + v.type_name());
  }

  void render_for(const Node& n, const ScopePtr& scope, std::string& out) {
    const Array all = iterate(n, eval(*n.kids[0], scope));
    auto bind = [&](Scope& s, const Value& item) {
      if (n.names.size() == 1) {
        s.vars[n.names[0]] = item;
        return;
      }
      if (!item.is_array() || item.items().size() != n.names.size())
        error(n, "cannot unpack a " + std::string(item.type_name()) + " into " + std::to_string(n.names.size()) +
                     " loop variables");
      for (size_t i = 0; i < n.names.size(); ++i) s.vars[n.names[i]] = item.items()[i];
    };
    Array items;
    if (n.kids[3]) {  // "for x in xs if cond": filter first, loop.* counts what is left
      for (const Value& item : all) {
        auto s = std::make_shared<Scope>();
        s->parent = scope;
        bind(*s, item);
        if (eval(*n.kids[3], s).truthy()) items.push_back(item);
      }
    } else {
      items = all;
    }
    if (items.empty()) {
      LoopControl ctl;
      render(*n.kids[2], scope, out, ctl);
      return;
    }
    const int64_t len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      auto s = std::make_shared<Scope>();
      s->parent = scope;
      bind(*s, items[i]);
      Value loop = Value::object();
      Object& o = loop.obj();
      o.set("index", Value(i + 1));
      o.set("index0", Value(i));
      o.set("revindex", Value(len - i));
      o.set("revindex0", Value(len - i - 1));
      o.set("first", Value(i == 0));
      o.set("last", Value(i == len - 1));
      o.set("length", Value(len));
      o.set("previtem", i > 0 ? items[i - 1] : Value());
      o.set("nextitem", i + 1 < len ? items[i + 1] : Value());
      s->vars["loop"] = loop;
      LoopControl ctl;
      render(*n.kids[1], s, out, ctl);
      if (ctl.state == LoopControl::kBreak) break;
    }
  }

  CallArgs arguments(const Node& n, const ScopePtr& scope, size_t first) {
    CallArgs a;
    for (size_t i = first; i < n.kids.size(); ++i) a.positional.push_back(eval(*n.kids[i], scope));
    for (size_t i = 0; i < n.names.size(); ++i) a.keyword.emplace_back(n.names[i], eval(*n.kwargs[i], scope));
    return a;
  }

 public:
  Value eval(const Node& n, const ScopePtr& scope) {
    switch (n.kind) {
      case NodeKind::kLiteral:
        return n.value;
      case NodeKind::kName: {
        const Value* v = scope->find(n.str);
        return v ? *v : Value();
      }
      case NodeKind::kList:
      case NodeKind::kTuple: {
        Array a;
        for (const auto& k : n.kids) a.push_back(eval(*k, scope));
        return Value::array(std::move(a));
      }
      case NodeKind::kDict: {
        Value o = Value::object();
        for (size_t i = 0; i + 1 < n.kids.size(); i += 2) {
          const Value key = eval(*n.kids[i], scope);
          o.obj().set(key.is_string() ? key.str() : key.to_string(), eval(*n.kids[i + 1], scope));
        }
        return o;
      }
      case NodeKind::kMember:
        return member(n, eval(*n.kids[0], scope), n.str);
      case NodeKind::kIndex:
        return index(n, eval(*n.kids[0], scope), eval(*n.kids[1], scope));
      case NodeKind::kSlice:
        return slice(n, scope);
      case NodeKind::kCall:
        return call(n, scope);
      case NodeKind::kFilter:
        return filter(n, scope);
      case NodeKind::kTest: {
        const bool r = test(n, scope);
        return Value(n.negated ? !r : r);
      }
      case NodeKind::kUnary: {
        const Value v = eval(*n.kids[0], scope);
        if (n.str == "not") return Value(!v.truthy());
        if (!v.is_number()) error(n, std::string("unary ") + n.str + " on a " + v.type_name());
        if (n.str == "+") return v;
        return v.kind() == Value::Kind::kInt ? Value(-v.as_int()) : Value(-v.as_double());
      }
      case NodeKind::kBinary:
        return binary(n, scope);
      case NodeKind::kTernary: {
        if (eval(*n.kids[1], scope).truthy()) return eval(*n.kids[0], scope);
        return n.kids[2] ? eval(*n.kids[2], scope) : Value();
      }
      default:
        error(n, "internal: a statement where an expression was expected");
    }
  }

 private:
  Value member(const Node& n, const Value& obj, const std::string& key) {
    if (obj.is_object()) {
      if (const Value* v = obj.obj().find(key)) return *v;
      return Value();
    }
    if (obj.is_undefined()) error(n, "'." + key + "' of an undefined value");
    if (obj.is_none()) error(n, "'." + key + "' of none");
    if ((obj.is_array() || obj.is_string()) && key == "length")
      return Value(static_cast<int64_t>(obj.is_array() ? obj.items().size() : obj.str().size()));
    return Value();
  }

  Value index(const Node& n, const Value& obj, const Value& idx) {
    if (obj.is_object()) {
      if (!idx.is_string()) return member(n, obj, idx.to_string());
      return member(n, obj, idx.str());
    }
    if (obj.is_array() || obj.is_string()) {
      if (idx.is_string()) return member(n, obj, idx.str());
      if (idx.kind() != Value::Kind::kInt)
        error(n, std::string("a list index must be an integer, found ") + idx.type_name());
      const int64_t len = static_cast<int64_t>(obj.is_array() ? obj.items().size() : obj.str().size());
      const int64_t i = clamp_index(idx.as_int(), len);
      if (i < 0 || i >= len) return Value();
      return obj.is_array() ? obj.items()[static_cast<size_t>(i)] : Value(obj.str().substr(static_cast<size_t>(i), 1));
    }
    if (obj.is_undefined()) error(n, "subscript of an undefined value");
    error(n, std::string("cannot subscript a ") + obj.type_name());
  }

  Value slice(const Node& n, const ScopePtr& scope) {
    const Value obj = eval(*n.kids[0], scope);
    auto opt = [&](int k) -> std::optional<int64_t> {
      if (!n.kids[k]) return std::nullopt;
      const Value v = eval(*n.kids[k], scope);
      if (v.is_none() || v.is_undefined()) return std::nullopt;
      if (v.kind() != Value::Kind::kInt) error(n, "slice bounds must be integers");
      return v.as_int();
    };
    if (!obj.is_array() && !obj.is_string()) error(n, std::string("cannot slice a ") + obj.type_name());
    const int64_t len = static_cast<int64_t>(obj.is_array() ? obj.items().size() : obj.str().size());
    const int64_t step = opt(3).value_or(1);
    if (step == 0) error(n, "slice step cannot be zero");
    auto norm = [&](std::optional<int64_t> v, int64_t def) {
      if (!v) return def;
      int64_t x = *v < 0 ? *v + len : *v;
      return step > 0 ? std::clamp<int64_t>(x, 0, len) : std::clamp<int64_t>(x, -1, len - 1);
    };
    const int64_t start = norm(opt(1), step > 0 ? 0 : len - 1), stop = norm(opt(2), step > 0 ? len : -1);
    Array a;
    std::string s;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (obj.is_array())
        a.push_back(obj.items()[static_cast<size_t>(i)]);
      else
        s += obj.str()[static_cast<size_t>(i)];
    }
    return obj.is_array() ? Value::array(std::move(a)) : Value(std::move(s));
  }

  Value call(const Node& n, const ScopePtr& scope) {
    const Node& callee = *n.kids[0];
    CallArgs args = arguments(n, scope, 1);
    if (callee.kind == NodeKind::kMember) {
      const Value obj = eval(*callee.kids[0], scope);
      if (auto r = method(n, obj, callee.str, args)) return *r;
    }
    const Value f = eval(callee, scope);
    if (f.kind() != Value::Kind::kCallable) {
      const std::string what = callee.kind == NodeKind::kName     ? callee.str
                               : callee.kind == NodeKind::kMember ? callee.str
                                                                  : "value";
      error(n, "'" + what + "' is " + (f.is_undefined() ? "undefined" : std::string("a ") + f.type_name()) +
                   ", not a function");
    }
    return f.fn().call(args);
  }

  std::optional<Value> method(const Node& n, const Value& obj, const std::string& name, const CallArgs& a) {
    return detail::call_method(obj, name, a, [&](const std::string& what) { error(n, what); });
  }

  // `item in container`: an item of a list, a substring, a key of a mapping; nothing is in none or undefined.
  bool contains(const Node& n, const Value& container, const Value& item) {
    bool found = false;
    if (container.is_array()) {
      for (const Value& x : container.items()) found = found || x == item;
    } else if (container.is_string() && item.is_string()) {
      found = container.str().find(item.str()) != std::string::npos;
    } else if (container.is_object() && item.is_string()) {
      found = container.obj().find(item.str()) != nullptr;
    } else if (container.is_undefined() || container.is_none()) {
      found = false;
    } else {
      error(n, std::string("'in' between a ") + item.type_name() + " and a " + container.type_name());
    }
    return found;
  }

  // Comparison and arithmetic on two numbers, Python's way (int op int stays int; // and % floor);
  // nullopt for an operator numbers do not take.
  std::optional<Value> arithmetic(const Node& n, const std::string& op, const Value& left, const Value& right) {
    const bool ints = left.kind() == Value::Kind::kInt && right.kind() == Value::Kind::kInt;
    const double a = left.as_double(), b = right.as_double();
    if (op == "<") return Value(a < b);
    if (op == ">") return Value(a > b);
    if (op == "<=") return Value(a <= b);
    if (op == ">=") return Value(a >= b);
    if (op == "+") return ints ? Value(left.as_int() + right.as_int()) : Value(a + b);
    if (op == "-") return ints ? Value(left.as_int() - right.as_int()) : Value(a - b);
    if (op == "*") return ints ? Value(left.as_int() * right.as_int()) : Value(a * b);
    if (op == "/") {
      if (b == 0) error(n, "division by zero");
      return Value(a / b);
    }
    if (op == "//" || op == "%") {
      if (b == 0) error(n, "division by zero");
      if (ints) {
        const int64_t x = left.as_int(), y = right.as_int();
        int64_t q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
        return op == "//" ? Value(q) : Value(x - q * y);
      }
      const double q = std::floor(a / b);
      return op == "//" ? Value(q) : Value(a - q * b);
    }
    if (op == "**")
      return ints && right.as_int() >= 0 ? Value(static_cast<int64_t>(std::llround(std::pow(a, b))))
                                         : Value(std::pow(a, b));
    return std::nullopt;
  }

  Value binary(const Node& n, const ScopePtr& scope) {
    const std::string& op = n.str;
    const Value left = eval(*n.kids[0], scope);
    if (op == "and") return left.truthy() ? eval(*n.kids[1], scope) : left;
    if (op == "or") return left.truthy() ? left : eval(*n.kids[1], scope);
    const Value right = eval(*n.kids[1], scope);
    if (op == "==") return Value(left == right);
    if (op == "!=") return Value(!(left == right));
    // @huggingface/jinja: beyond == and !=, an operation on none fails, and on undefined only
    // '~' and 'in' work.
    if (left.is_none() || right.is_none()) error(n, "cannot apply '" + op + "' to none");
    if (left.is_undefined() || right.is_undefined()) {
      if (op == "~") return Value(left.to_string() + right.to_string());
      if (right.is_undefined() && (op == "in" || op == "not in")) return Value(op == "not in");
      error(n, "cannot apply '" + op + "' to an undefined value");
    }
    if (op == "~") return Value(left.to_string() + right.to_string());
    if (op == "in" || op == "not in") return Value(contains(n, right, left) == (op == "in"));
    if (left.is_number() && right.is_number()) {
      if (auto r = arithmetic(n, op, left, right)) return *r;
    }
    if (left.is_string() && right.is_string()) {
      if (op == "+") return Value(left.str() + right.str());
      if (op == "<") return Value(left.str() < right.str());
      if (op == ">") return Value(left.str() > right.str());
      if (op == "<=") return Value(left.str() <= right.str());
      if (op == ">=") return Value(left.str() >= right.str());
    }
    if (op == "+" && left.is_array() && right.is_array()) {
      Array a = left.items();
      a.insert(a.end(), right.items().begin(), right.items().end());
      return Value::array(std::move(a));
    }
    if (op == "+" && (left.is_string() || right.is_string()) && !left.is_undefined() && !right.is_undefined() &&
        !left.is_none() && !right.is_none())
      return Value(left.to_string() + right.to_string());
    if (op == "*" && left.is_string() && right.kind() == Value::Kind::kInt) {
      std::string s;
      for (int64_t i = 0; i < right.as_int(); ++i) s += left.str();
      return Value(s);
    }
    error(n, "cannot apply '" + op + "' to a " + left.type_name() + " and a " + right.type_name());
  }

  bool test(const Node& n, const ScopePtr& scope) {
    const Value v = eval(*n.kids[0], scope);
    const std::string& t = n.str;
    auto other = [&]() { return n.kids.size() > 1 ? eval(*n.kids[1], scope) : Value(); };
    if (t == "defined") return !v.is_undefined();
    if (t == "undefined") return v.is_undefined();
    if (t == "none") return v.is_none();
    if (t == "string") return v.is_string();
    if (t == "number") return v.is_number();
    if (t == "integer") return v.kind() == Value::Kind::kInt;
    if (t == "float") return v.kind() == Value::Kind::kFloat;
    if (t == "boolean") return v.kind() == Value::Kind::kBool;
    if (t == "true") return v.kind() == Value::Kind::kBool && v.as_bool();
    if (t == "false") return v.kind() == Value::Kind::kBool && !v.as_bool();
    if (t == "mapping") return v.is_object();
    if (t == "iterable" || t == "sequence") return v.is_array() || v.is_string() || v.is_object();
    if (t == "callable") return v.kind() == Value::Kind::kCallable;
    if (t == "odd" || t == "even") {
      if (v.kind() != Value::Kind::kInt) error(n, "'" + t + "' needs an integer");
      return (v.as_int() % 2 != 0) == (t == "odd");
    }
    if (t == "divisibleby") {
      const Value d = other();
      if (v.kind() != Value::Kind::kInt || d.kind() != Value::Kind::kInt || d.as_int() == 0)
        error(n, "'divisibleby' needs integers");
      return v.as_int() % d.as_int() == 0;
    }
    if (t == "equalto" || t == "eq" || t == "sameas") return v == other();
    if (t == "ne") return !(v == other());
    if (t == "lower") return v.is_string() && lower(v.str()) == v.str();
    if (t == "upper") return v.is_string() && upper(v.str()) == v.str();
    if (t == "in") {
      const Value c = other();
      if (c.is_array()) return std::any_of(c.items().begin(), c.items().end(), [&](const Value& x) { return x == v; });
      if (c.is_string() && v.is_string()) return c.str().find(v.str()) != std::string::npos;
      if (c.is_object() && v.is_string()) return c.obj().find(v.str()) != nullptr;
      return false;
    }
    error(n, "unknown test 'is " + t + "'");
  }

  // select/reject by an attribute and an optional test (selectattr("role", "equalto", "user")).
  Value select_attr(const Node& n, const Value& seq, const CallArgs& a, bool select) {
    if (!seq.is_array()) error(n, std::string(select ? "selectattr" : "rejectattr") + " needs a list");
    const Value attr = arg(a, 0);
    if (!attr.is_string()) error(n, "selectattr / rejectattr need an attribute name");
    const std::string test_name = a.positional.size() > 1 && a.positional[1].is_string() ? a.positional[1].str() : "";
    Array out;
    for (const Value& item : seq.items()) {
      const Value v = item.is_object() ? member(n, item, attr.str()) : Value();
      bool ok;
      if (test_name.empty()) {
        ok = v.truthy();
      } else {
        Node tn;
        tn.kind = NodeKind::kTest;
        tn.line = n.line;
        tn.str = test_name;
        auto lit = std::make_unique<Node>();
        lit->kind = NodeKind::kLiteral;
        lit->value = v;
        tn.kids.push_back(std::move(lit));
        if (a.positional.size() > 2) {
          auto arg_node = std::make_unique<Node>();
          arg_node->kind = NodeKind::kLiteral;
          arg_node->value = a.positional[2];
          tn.kids.push_back(std::move(arg_node));
        }
        ok = test(tn, std::make_shared<Scope>());
      }
      if (ok == select) out.push_back(item);
    }
    return Value::array(std::move(out));
  }

  // Filters that make or edit text; none and undefined are errors for the case and edit ones.
  std::optional<Value> text_filter(const Node& n, const std::string& f, const Value& v, const CallArgs& a) {
    if ((v.is_none() || v.is_undefined()) &&
        (f == "trim" || f == "upper" || f == "lower" || f == "title" || f == "capitalize" || f == "replace"))
      error(n, "filter '" + f + "' on " + (v.is_none() ? "none" : "an undefined value"));
    if (f == "trim") return Value(strip(v.to_string(), nullptr, true, true));
    if (f == "upper") return Value(upper(v.to_string()));
    if (f == "lower") return Value(lower(v.to_string()));
    if (f == "title" || f == "capitalize") return Value(apply_case(v.to_string(), f));
    if (f == "string") return Value(v.to_string());
    if (f == "safe" || f == "e" || f == "escape") return v;
    if (f == "tojson") {
      const Value indent = arg(a, 0, "indent");
      return Value(tojson(v, indent.kind() == Value::Kind::kInt ? static_cast<int>(indent.as_int()) : 0));
    }
    if (f == "replace") {
      const Value from = arg(a, 0), to = arg(a, 1), count = arg(a, 2, "count");
      if (!from.is_string() || !to.is_string()) error(n, "replace needs two strings");
      return Value(
          replace_all(v.to_string(), from.str(), to.str(), count.kind() == Value::Kind::kInt ? count.as_int() : -1));
    }
    if (f == "indent") {
      const Value width = arg(a, 0, "width");
      const bool first = arg(a, 1, "first").truthy();
      const std::string pad(width.kind() == Value::Kind::kInt ? static_cast<size_t>(width.as_int()) : 4, ' ');
      const std::string s = v.to_string();
      std::string out;
      size_t line = 0, i = 0;
      while (i <= s.size()) {
        const size_t j = std::min(s.find('\n', i), s.size());
        const std::string text = s.substr(i, j - i);
        if ((line > 0 || first) && !text.empty()) out += pad;
        out += text;
        if (j < s.size()) out += '\n';
        i = j + 1;
        ++line;
      }
      return Value(out);
    }
    return std::nullopt;
  }

  // Filters over lists and mappings.
  std::optional<Value> collection_filter(const Node& n, const std::string& f, const Value& v, const CallArgs& a) {
    if (f == "join") {
      if (!v.is_array()) error(n, std::string("join needs a list, found a ") + v.type_name());
      const Value sep = arg(a, 0, "d");
      const Value attr = arg(a, 1, "attribute");
      std::string out;
      for (size_t i = 0; i < v.items().size(); ++i) {
        if (i > 0 && sep.is_string()) out += sep.str();
        const Value& item = v.items()[i];
        out += (attr.is_string() ? member(n, item, attr.str()) : item).to_string();
      }
      return Value(out);
    }
    if (f == "items") {
      if (v.is_undefined()) return Value::array();
      if (!v.is_object()) error(n, std::string("items needs a mapping, found a ") + v.type_name());
      return *method(n, v, "items", {});
    }
    if (f == "list") {
      if (v.is_array()) return Value::array(v.items());
      return Value::array(iterate(n, v));
    }
    if (f == "first" || f == "last") {
      if (v.is_string())
        return v.str().empty() ? Value() : Value(std::string(1, f == "first" ? v.str().front() : v.str().back()));
      if (!v.is_array()) error(n, f + " needs a list");
      if (v.items().empty()) return Value();
      return f == "first" ? v.items().front() : v.items().back();
    }
    if (f == "reverse") {
      if (v.is_string()) return Value(std::string(v.str().rbegin(), v.str().rend()));
      if (!v.is_array()) error(n, "reverse needs a list");
      Array r(v.items().rbegin(), v.items().rend());
      return Value::array(std::move(r));
    }
    if (f == "selectattr" || f == "rejectattr") return select_attr(n, v, a, f == "selectattr");
    if (f == "map") {
      if (!v.is_array()) error(n, "map needs a list");
      const Value attr = kwarg(a, "attribute") ? *kwarg(a, "attribute") : Value();
      Array out;
      for (const Value& item : v.items()) {
        if (attr.is_string()) {
          Value x = item.is_object() ? member(n, item, attr.str()) : Value();
          if (x.is_undefined())
            if (const Value* d = kwarg(a, "default")) x = *d;
          out.push_back(x);
        } else {
          error(n, "map supports attribute= only");
        }
      }
      return Value::array(std::move(out));
    }
    if (f == "unique") {
      if (!v.is_array()) error(n, "unique needs a list");
      Array out;
      for (const Value& x : v.items())
        if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return y == x; })) out.push_back(x);
      return Value::array(std::move(out));
    }
    return std::nullopt;
  }

  // Filters that size, default or convert a value.
  std::optional<Value> value_filter(const Node& n, const std::string& f, const Value& v, const CallArgs& a) {
    if (f == "length" || f == "count") {
      if (v.is_array()) return Value(static_cast<int64_t>(v.items().size()));
      if (v.is_object()) return Value(static_cast<int64_t>(v.obj().entries.size()));
      if (v.is_string()) {
        int64_t chars = 0;  // code points, as Python counts
        for (unsigned char c : v.str()) chars += (c & 0xC0) != 0x80;
        return Value(chars);
      }
      if (v.is_undefined()) return Value(int64_t{0});
      error(n, std::string("length of a ") + v.type_name());
    }
    if (f == "default" || f == "d") {
      const bool boolean = arg(a, 1, "boolean").truthy();
      if (v.is_undefined() || (boolean && !v.truthy())) return arg(a, 0, "default_value");
      return v;
    }
    if (f == "int") {
      if (v.is_number()) return Value(v.as_int());
      if (v.is_string()) {
        try {
          return Value(static_cast<int64_t>(std::stoll(v.str())));
        } catch (...) {
        }
      }
      return Value(int64_t{0});
    }
    if (f == "float") {
      if (v.is_number()) return Value(v.as_double());
      if (v.is_string()) {
        try {
          return Value(std::stod(v.str()));
        } catch (...) {
        }
      }
      return Value(0.0);
    }
    if (f == "abs") {
      if (!v.is_number()) error(n, "abs needs a number");
      return v.kind() == Value::Kind::kInt ? Value(v.as_int() < 0 ? -v.as_int() : v.as_int())
                                           : Value(std::fabs(v.as_double()));
    }
    return std::nullopt;
  }

  Value filter(const Node& n, const ScopePtr& scope) {
    const Value v = eval(*n.kids[0], scope);
    const CallArgs a = arguments(n, scope, 1);
    const std::string& f = n.str;
    if (auto r = text_filter(n, f, v, a)) return *r;
    if (auto r = collection_filter(n, f, v, a)) return *r;
    if (auto r = value_filter(n, f, v, a)) return *r;
    error(n, "unknown filter '" + f + "'");
  }
};

}  // namespace

Template::Template(const std::string& source, std::string name) : name_(std::move(name)) {
  root_ = parse(lex(source, name_), name_);
}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;

std::string Template::render(const std::map<std::string, Value>& variables) const {
  auto globals = std::make_shared<Scope>();
  auto builtin = [&](const char* name, std::function<Value(const CallArgs&)> f) {
    auto c = std::make_shared<Callable>();
    c->call = std::move(f);
    globals->vars[name] = Value::callable(c);
  };
  const std::string& name = name_;
  builtin("raise_exception", [&name](const CallArgs& a) -> Value {
    const std::string msg = a.positional.empty() ? "raise_exception()" : a.positional[0].to_string();
    throw Error("template", name + ": the template raised an exception: " + msg);
  });
  builtin("namespace", [](const CallArgs& a) {
    Value o = Value::object();
    for (const Value& p : a.positional) {
      if (p.is_object())
        for (const auto& [k, v] : p.obj().entries) o.obj().set(k, v);
    }
    for (const auto& [k, v] : a.keyword) o.obj().set(k, v);
    return o;
  });
  builtin("range", [&name](const CallArgs& a) {
    int64_t start = 0, stop = 0, step = 1;
    auto num = [&](size_t i) {
      if (a.positional[i].kind() != Value::Kind::kInt) throw Error("template", name + ": range() needs integers");
      return a.positional[i].as_int();
    };
    if (a.positional.size() == 1) stop = num(0);
    if (a.positional.size() >= 2) start = num(0), stop = num(1);
    if (a.positional.size() >= 3) step = num(2);
    if (step == 0) throw Error("template", name + ": range() step cannot be zero");
    Array out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(Value(i));
    return Value::array(std::move(out));
  });
  builtin("dict", [](const CallArgs& a) {
    Value o = Value::object();
    for (const auto& [k, v] : a.keyword) o.obj().set(k, v);
    return o;
  });
  auto scope = std::make_shared<Scope>();
  scope->parent = globals;
  for (const auto& [k, v] : variables) scope->vars[k] = v;
  Renderer r(name_);
  std::string out;
  LoopControl ctl;
  r.render(*root_, scope, out, ctl);
  return out;
}

}  // namespace moe::jinja
