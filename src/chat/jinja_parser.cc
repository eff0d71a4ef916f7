// Recursive-descent parser of the Jinja subset (see jinja_ast.h). Operator precedence as Jinja:
// ternary < or < and < not < comparisons / in / is < ~ < + - < * / // % < unary - < ** < postfix.
#include <set>

#include "chat/jinja_ast.h"
#include "util/error.h"

namespace moe::jinja {
namespace {

using NodePtr = std::unique_ptr<Node>;

class Parser {
 public:
  Parser(const std::vector<Token>& t, const std::string& name) : t_(t), name_(name) {}

  NodePtr program() {
    NodePtr root = node(NodeKind::kBlock);
    std::string stop;
    block(*root, {}, stop);
    return root;
  }

 private:
  const std::vector<Token>& t_;
  const std::string& name_;
  size_t p_ = 0;

  [[noreturn]] void error(const std::string& what) const {
    const int line = p_ < t_.size() ? t_[p_].line : (t_.empty() ? 1 : t_.back().line);
    throw Error("template", fmt::format("{}:{}: {}", name_, line, what));
  }
  NodePtr node(NodeKind k) const {
    auto n = std::make_unique<Node>();
    n->kind = k;
    n->line = p_ < t_.size() ? t_[p_].line : (t_.empty() ? 1 : t_.back().line);
    return n;
  }
  bool at_end() const { return p_ >= t_.size(); }
  const Token& peek(size_t ahead = 0) const {
    static const Token kEnd{Tok::kText, "", 0};
    return p_ + ahead < t_.size() ? t_[p_ + ahead] : kEnd;
  }
  bool is_op(const char* op, size_t ahead = 0) const {
    return p_ + ahead < t_.size() && t_[p_ + ahead].type == Tok::kOp && t_[p_ + ahead].text == op;
  }
  bool is_name(const char* name, size_t ahead = 0) const {
    return p_ + ahead < t_.size() && t_[p_ + ahead].type == Tok::kName && t_[p_ + ahead].text == name;
  }
  void expect_op(const char* op) {
    if (!is_op(op)) error(std::string("expected '") + op + "', found " + describe());
    ++p_;
  }
  void expect_type(Tok type, const char* what) {
    if (at_end() || peek().type != type) error(std::string("expected ") + what + ", found " + describe());
    ++p_;
  }
  std::string expect_name() {
    if (at_end() || peek().type != Tok::kName) error("expected a name, found " + describe());
    return t_[p_++].text;
  }
  std::string describe() const {
    if (at_end()) return "the end of the template";
    const Token& t = peek();
    switch (t.type) {
      case Tok::kText:
        return "text";
      case Tok::kCloseStmt:
        return "'%}'";
      case Tok::kCloseExpr:
        return "'}}'";
      case Tok::kOpenStmt:
        return "'{%'";
      case Tok::kOpenExpr:
        return "'{{'";
      case Tok::kString:
        return "a string";
      default:
        return "'" + t.text + "'";
    }
  }

  // Statements until one of `stops` ({% stop ... %}); `stop` receives which (empty at the end).
  void block(Node& into, const std::set<std::string>& stops, std::string& stop) {
    while (!at_end()) {
      const Token& t = peek();
      if (t.type == Tok::kComment) {
        ++p_;
      } else if (t.type == Tok::kText) {
        NodePtr n = node(NodeKind::kText);
        n->str = t.text;
        into.kids.push_back(std::move(n));
        ++p_;
      } else if (t.type == Tok::kOpenExpr) {
        ++p_;
        NodePtr n = node(NodeKind::kOutput);
        n->kids.push_back(expression());
        expect_type(Tok::kCloseExpr, "'}}'");
        into.kids.push_back(std::move(n));
      } else if (t.type == Tok::kOpenStmt) {
        if (peek(1).type == Tok::kName && stops.count(peek(1).text)) {
          stop = peek(1).text;
          p_ += 2;
          return;
        }
        ++p_;
        into.kids.push_back(statement());
      } else {
        error("unexpected " + describe());
      }
    }
    if (!stops.empty()) {
      std::string list;
      for (const std::string& s : stops) list += (list.empty() ? "" : " or ") + ("{% " + s + " %}");
      error("the template ends before " + list);
    }
  }

  void close_stmt() { expect_type(Tok::kCloseStmt, "'%}'"); }

  NodePtr statement() {
    const std::string kw = expect_name();
    if (kw == "if") return if_statement();
    if (kw == "for") return for_statement();
    if (kw == "set") return set_statement();
    if (kw == "macro") return macro_statement();
    if (kw == "break" || kw == "continue") {
      NodePtr n = node(kw == "break" ? NodeKind::kBreak : NodeKind::kContinue);
      close_stmt();
      return n;
    }
    --p_;
    error("unsupported statement {% " + kw + " %}");
  }

  NodePtr if_statement() {
    NodePtr n = node(NodeKind::kIf);
    n->kids.push_back(expression());
    close_stmt();
    NodePtr then = node(NodeKind::kBlock);
    std::string stop;
    block(*then, {"elif", "else", "endif"}, stop);
    n->kids.push_back(std::move(then));
    NodePtr other = node(NodeKind::kBlock);
    if (stop == "elif") {
      other->kids.push_back(if_statement());
    } else if (stop == "else") {
      close_stmt();
      block(*other, {"endif"}, stop);
      close_stmt();
    } else {
      close_stmt();
    }
    n->kids.push_back(std::move(other));
    return n;
  }

  NodePtr for_statement() {
    NodePtr n = node(NodeKind::kFor);
    n->names.push_back(expect_name());
    while (is_op(",")) {
      ++p_;
      n->names.push_back(expect_name());
    }
    if (!is_name("in")) error("expected 'in' in a for statement, found " + describe());
    ++p_;
    n->kids.push_back(or_expr());  // not a ternary: "for x in xs if cond" filters
    NodePtr filter;
    if (is_name("if")) {
      ++p_;
      filter = expression();
    }
    close_stmt();
    NodePtr body = node(NodeKind::kBlock), other = node(NodeKind::kBlock);
    std::string stop;
    block(*body, {"else", "endfor"}, stop);
    close_stmt();
    if (stop == "else") {
      block(*other, {"endfor"}, stop);
      close_stmt();
    }
    n->kids.push_back(std::move(body));
    n->kids.push_back(std::move(other));
    n->kids.push_back(std::move(filter));
    return n;
  }

  NodePtr set_statement() {
    NodePtr target = primary_with_postfix(/*allow_calls=*/false);
    if (target->kind != NodeKind::kName && target->kind != NodeKind::kMember)
      error("set needs a name or name.attribute to assign to");
    if (peek().type == Tok::kCloseStmt && target->kind == NodeKind::kName) {
      close_stmt();
      NodePtr n = node(NodeKind::kSetBlock);
      n->str = target->str;
      NodePtr body = node(NodeKind::kBlock);
      std::string stop;
      block(*body, {"endset"}, stop);
      close_stmt();
      n->kids.push_back(std::move(body));
      return n;
    }
    NodePtr n = node(NodeKind::kSet);
    expect_op("=");
    n->kids.push_back(std::move(target));
    n->kids.push_back(expression());
    close_stmt();
    return n;
  }

  NodePtr macro_statement() {
    NodePtr n = node(NodeKind::kMacro);
    n->str = expect_name();
    expect_op("(");
    std::vector<NodePtr> defaults;
    while (!is_op(")")) {
      n->names.push_back(expect_name());
      if (is_op("=")) {
        ++p_;
        defaults.push_back(expression());
      } else {
        defaults.push_back(nullptr);
      }
      if (!is_op(")")) expect_op(",");
    }
    expect_op(")");
    close_stmt();
    NodePtr body = node(NodeKind::kBlock);
    std::string stop;
    block(*body, {"endmacro"}, stop);
    close_stmt();
    n->kids.push_back(std::move(body));
    for (auto& d : defaults) n->kids.push_back(std::move(d));
    return n;
  }

  // ---------------------------------------------------------------- expressions
  NodePtr expression() {
    NodePtr value = or_expr();
    if (is_name("if")) {
      NodePtr n = node(NodeKind::kTernary);
      ++p_;
      NodePtr cond = or_expr();
      NodePtr other;
      if (is_name("else")) {
        ++p_;
        other = expression();
      }
      n->kids.push_back(std::move(value));
      n->kids.push_back(std::move(cond));
      n->kids.push_back(std::move(other));
      return n;
    }
    return value;
  }

  NodePtr binary(NodePtr left, const std::string& op, NodePtr right) {
    NodePtr n = node(NodeKind::kBinary);
    n->line = left->line;
    n->str = op;
    n->kids.push_back(std::move(left));
    n->kids.push_back(std::move(right));
    return n;
  }

  NodePtr or_expr() {
    NodePtr left = and_expr();
    while (is_name("or")) {
      ++p_;
      left = binary(std::move(left), "or", and_expr());
    }
    return left;
  }
  NodePtr and_expr() {
    NodePtr left = not_expr();
    while (is_name("and")) {
      ++p_;
      left = binary(std::move(left), "and", not_expr());
    }
    return left;
  }
  NodePtr not_expr() {
    if (is_name("not")) {
      NodePtr n = node(NodeKind::kUnary);
      ++p_;
      n->str = "not";
      n->kids.push_back(not_expr());
      return n;
    }
    return comparison();
  }
  NodePtr comparison() {
    NodePtr left = concat();
    while (true) {
      if (peek().type == Tok::kOp && (peek().text == "==" || peek().text == "!=" || peek().text == "<" ||
                                      peek().text == ">" || peek().text == "<=" || peek().text == ">=")) {
        const std::string op = t_[p_++].text;
        left = binary(std::move(left), op, concat());
      } else if (is_name("in")) {
        ++p_;
        left = binary(std::move(left), "in", concat());
      } else if (is_name("not") && is_name("in", 1)) {
        p_ += 2;
        left = binary(std::move(left), "not in", concat());
      } else if (is_name("is")) {
        ++p_;
        NodePtr n = node(NodeKind::kTest);
        if (is_name("not")) {
          ++p_;
          n->negated = true;
        }
        // "is none" / "is true": keywords as test names
        n->str = expect_name();
        n->kids.push_back(std::move(left));
        if (is_op("(")) {
          call_arguments(*n);
        } else if (!at_end() &&
                   (peek().type == Tok::kString || peek().type == Tok::kInt || peek().type == Tok::kFloat)) {
          n->kids.push_back(primary_with_postfix(true));  // "is divisibleby 3", "is equalto 'x'"
        }
        left = std::move(n);
      } else {
        return left;
      }
    }
  }
  NodePtr concat() {
    NodePtr left = additive();
    while (is_op("~")) {
      ++p_;
      left = binary(std::move(left), "~", additive());
    }
    return left;
  }
  NodePtr additive() {
    NodePtr left = multiplicative();
    while (is_op("+") || is_op("-")) {
      const std::string op = t_[p_++].text;
      left = binary(std::move(left), op, multiplicative());
    }
    return left;
  }
  NodePtr multiplicative() {
    NodePtr left = unary();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = t_[p_++].text;
      left = binary(std::move(left), op, unary());
    }
    return left;
  }
  NodePtr unary() {
    if (is_op("-") || is_op("+")) {
      NodePtr n = node(NodeKind::kUnary);
      n->str = t_[p_++].text;
      n->kids.push_back(unary());
      return n;
    }
    return power();
  }
  NodePtr power() {
    NodePtr left = filtered();
    while (is_op("**")) {
      ++p_;
      left = binary(std::move(left), "**", filtered());
    }
    return left;
  }
  NodePtr filtered() {
    NodePtr left = primary_with_postfix(true);
    while (is_op("|")) {
      ++p_;
      NodePtr n = node(NodeKind::kFilter);
      n->str = expect_name();
      n->kids.push_back(std::move(left));
      if (is_op("(")) call_arguments(*n);
      left = std::move(n);
    }
    return left;
  }

  // (args, name=value, ...) appended to n: positional to kids, keyword to names/kwargs.
  void call_arguments(Node& n) {
    expect_op("(");
    while (!is_op(")")) {
      if (peek().type == Tok::kName && is_op("=", 1)) {
        n.names.push_back(t_[p_].text);
        p_ += 2;
        n.kwargs.push_back(expression());
      } else {
        n.kids.push_back(expression());
      }
      if (!is_op(")")) expect_op(",");
    }
    expect_op(")");
  }

  NodePtr primary_with_postfix(bool allow_calls) {
    NodePtr left = primary();
    while (true) {
      if (is_op(".")) {
        ++p_;
        NodePtr n = node(NodeKind::kMember);
        if (!at_end() && peek().type == Tok::kInt) {  // x.0: an index
          n->kind = NodeKind::kIndex;
          NodePtr idx = node(NodeKind::kLiteral);
          idx->value = Value(static_cast<int64_t>(std::stoll(t_[p_++].text)));
          n->kids.push_back(std::move(left));
          n->kids.push_back(std::move(idx));
        } else {
          n->str = expect_name();
          n->kids.push_back(std::move(left));
        }
        left = std::move(n);
      } else if (is_op("[")) {
        ++p_;
        NodePtr n = node(NodeKind::kIndex);
        n->kids.push_back(std::move(left));
        NodePtr parts[3];
        int colons = 0;
        while (!is_op("]")) {
          if (is_op(":")) {
            if (++colons > 2) error("a slice has at most two ':'");
            ++p_;
            continue;
          }
          if (parts[colons]) error("expected ':' or ']' in a subscript, found " + describe());
          parts[colons] = expression();
        }
        expect_op("]");
        if (colons == 0) {
          if (!parts[0]) error("an empty subscript []");
          n->kids.push_back(std::move(parts[0]));
        } else {
          n->kind = NodeKind::kSlice;
          for (auto& part : parts) n->kids.push_back(std::move(part));
        }
        left = std::move(n);
      } else if (allow_calls && is_op("(")) {
        NodePtr n = node(NodeKind::kCall);
        n->kids.push_back(std::move(left));
        call_arguments(*n);
        left = std::move(n);
      } else {
        return left;
      }
    }
  }

  NodePtr primary() {
    if (at_end()) error("expected an expression, found the end of the template");
    const Token& t = peek();
    NodePtr n = node(NodeKind::kLiteral);
    switch (t.type) {
      case Tok::kString: {
        std::string s = t.text;
        ++p_;
        while (!at_end() && peek().type == Tok::kString) s += t_[p_++].text;  // "a" "b": adjacent strings join
        n->value = Value(std::move(s));
        return n;
      }
      case Tok::kInt:
        n->value = Value(static_cast<int64_t>(std::stoll(t.text)));
        ++p_;
        return n;
      case Tok::kFloat:
        n->value = Value(std::stod(t.text));
        ++p_;
        return n;
      case Tok::kName: {
        ++p_;
        if (t.text == "true" || t.text == "True")
          n->value = Value(true);
        else if (t.text == "false" || t.text == "False")
          n->value = Value(false);
        else if (t.text == "none" || t.text == "None")
          n->value = Value::none();
        else
          n->kind = NodeKind::kName, n->str = t.text;
        return n;
      }
      case Tok::kOp: {
        if (t.text == "(") {
          ++p_;
          NodePtr first = expression();
          if (is_op(")")) {
            ++p_;
            return first;
          }
          n->kind = NodeKind::kTuple;
          n->kids.push_back(std::move(first));
          while (is_op(",")) {
            ++p_;
            if (is_op(")")) break;
            n->kids.push_back(expression());
          }
          expect_op(")");
          return n;
        }
        if (t.text == "[") {
          ++p_;
          n->kind = NodeKind::kList;
          while (!is_op("]")) {
            n->kids.push_back(expression());
            if (!is_op("]")) expect_op(",");
          }
          expect_op("]");
          return n;
        }
        if (t.text == "{") {
          ++p_;
          n->kind = NodeKind::kDict;
          while (!is_op("}")) {
            n->kids.push_back(expression());
            expect_op(":");
            n->kids.push_back(expression());
            if (!is_op("}")) expect_op(",");
          }
          expect_op("}");
          return n;
        }
        break;
      }
      default:
        break;
    }
    error("expected an expression, found " + describe());
  }
};

}  // namespace

std::unique_ptr<Node> parse(const std::vector<Token>& tokens, const std::string& name) {
  return Parser(tokens, name).program();
}

}  // namespace moe::jinja
