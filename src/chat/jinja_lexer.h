// The Jinja lexer: template text to tokens, with @huggingface/jinja's whitespace handling (the
// final newline dropped, lstrip_blocks, trim_blocks, {%- -%} {{- -}} {#- -#}). Internal to chat/.
#pragma once

#include <string>
#include <vector>

namespace moe::jinja {

enum class Tok {
  kText,
  kOpenStmt,   // {%
  kCloseStmt,  // %}
  kOpenExpr,   // {{
  kCloseExpr,  // }}
  kName,
  kString,
  kInt,
  kFloat,
  kComment,  // {# ... #}: ends a text run, otherwise ignored
  kOp,       // punctuation and operators: ( ) [ ] { } , . : | + - ~ * / // % ** == != < > <= >= =
};

struct Token {
  Tok type;
  std::string text;
  int line = 1;
};

// Throws moe::Error "[template] <name>:<line>: ..." on an unterminated tag or string.
std::vector<Token> lex(const std::string& source, const std::string& name);

}  // namespace moe::jinja
