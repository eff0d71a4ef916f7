// The Jinja syntax tree and parser. Internal to chat/.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "chat/jinja.h"
#include "chat/jinja_lexer.h"

namespace moe::jinja {

enum class NodeKind {
  // statements
  kBlock,     // kids: statements
  kText,      // str
  kOutput,    // kids[0]: expression
  kIf,        // kids: cond, then-block, else-block (may be empty block)
  kFor,       // names: targets; kids: iterable, body, else-block, filter (optional)
  kSet,       // kids: target (name or member), value
  kSetBlock,  // str: name; kids: body
  kMacro,     // str: name; names: params; kids: body, then default expressions (null when none)
  kBreak,
  kContinue,
  // expressions
  kLiteral,  // value
  kName,     // str
  kList,     // kids: items
  kTuple,    // kids: items
  kDict,     // kids: key, value, key, value...
  kMember,   // kids[0]: object; str: attribute
  kIndex,    // kids: object, index
  kSlice,    // kids: object, start, stop, step (null when absent)
  kCall,     // kids[0]: callee, then positional args; names + kwargs: keyword args
  kFilter,   // kids[0]: operand, then args; str: filter name; names + kwargs
  kTest,     // kids[0]: operand, then args; str: test name; negated
  kUnary,    // str: "not" or "-" or "+"; kids[0]
  kBinary,   // str: operator; kids: left, right
  kTernary,  // kids: value, condition, else-value (may be null)
};

struct Node {
  NodeKind kind;
  int line = 0;
  std::string str;
  Value value;
  bool negated = false;
  std::vector<std::string> names;
  std::vector<std::unique_ptr<Node>> kids;
  std::vector<std::unique_ptr<Node>> kwargs;  // values of keyword arguments, named by `names`
};

// Throws moe::Error "[template] <name>:<line>: ..." on a syntax error.
std::unique_ptr<Node> parse(const std::vector<Token>& tokens, const std::string& name);

}  // namespace moe::jinja
