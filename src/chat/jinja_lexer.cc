// Jinja lexer (see jinja_lexer.h). The whitespace rules follow @huggingface/jinja's preprocess and
// tokenize, which transformers' trim_blocks / lstrip_blocks environment agrees with on real templates.
#include "chat/jinja_lexer.h"

#include <cstring>

#include "util/error.h"

namespace moe::jinja {
namespace {

bool is_space(unsigned char c) { return c == ' ' || (c >= 9 && c <= 13); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_word(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

// Text with the line number of each byte, edited by deleting bytes.
struct Source {
  std::string text;
  std::vector<int> line;
  void keep(const std::vector<bool>& drop) {
    std::string t;
    std::vector<int> l;
    for (size_t i = 0; i < text.size(); ++i) {
      if (!drop[i]) t += text[i], l.push_back(line[i]);
    }
    text = std::move(t);
    line = std::move(l);
  }
};

Source preprocess(const std::string& src) {
  Source s{src, {}};
  int line = 1;
  for (char c : src) {
    s.line.push_back(line);
    if (c == '\n') ++line;
  }
  if (!s.text.empty() && s.text.back() == '\n') s.text.pop_back(), s.line.pop_back();
  // lstrip_blocks: spaces and tabs at the start of a line before {% or {#.
  std::vector<bool> drop(s.text.size(), false);
  for (size_t i = 0; i < s.text.size(); ++i) {
    if (i != 0 && s.text[i - 1] != '\n') continue;
    size_t j = i;
    while (j < s.text.size() && (s.text[j] == ' ' || s.text[j] == '\t')) ++j;
    if (j > i && j + 1 < s.text.size() && s.text[j] == '{' && std::strchr("#%-", s.text[j + 1]) != nullptr)
      for (size_t k = i; k < j; ++k) drop[k] = true;
  }
  s.keep(drop);
  // trim_blocks: the newline right after %} or #}.
  drop.assign(s.text.size(), false);
  for (size_t i = 2; i < s.text.size(); ++i) {
    if (s.text[i] == '\n' && s.text[i - 1] == '}' && std::strchr("#%-", s.text[i - 2]) != nullptr) drop[i] = true;
  }
  s.keep(drop);
  return s;
}

}  // namespace

std::vector<Token> lex(const std::string& source, const std::string& name) {
  const Source s = preprocess(source);
  const std::string& src = s.text;
  const size_t n = src.size();
  std::vector<Token> tokens;
  size_t pos = 0;
  int curly = 0;
  auto line_at = [&](size_t p) { return s.line.empty() ? 1 : s.line[std::min(p, s.line.size() - 1)]; };
  auto error = [&](size_t p, const std::string& what) {
    throw Error("template", fmt::format("{}:{}: {}", name, line_at(p), what));
  };
  auto push = [&](Tok t, std::string text, size_t at) { tokens.push_back({t, std::move(text), line_at(at)}); };
  auto strip_trailing = [&] {
    if (!tokens.empty() && tokens.back().type == Tok::kText) {
      std::string& t = tokens.back().text;
      while (!t.empty() && is_space(static_cast<unsigned char>(t.back()))) t.pop_back();
      if (t.empty()) tokens.pop_back();
    }
  };
  auto skip_leading = [&] {
    while (pos < n && is_space(static_cast<unsigned char>(src[pos]))) ++pos;
  };
  while (pos < n) {
    const bool in_text = tokens.empty() || tokens.back().type == Tok::kCloseStmt ||
                         tokens.back().type == Tok::kCloseExpr || tokens.back().type == Tok::kComment;
    if (in_text) {
      size_t end = pos;
      while (true) {
        end = src.find('{', end);
        if (end == std::string::npos) {
          end = n;
          break;
        }
        if (end + 1 < n && (src[end + 1] == '%' || src[end + 1] == '{' || src[end + 1] == '#')) break;
        ++end;
      }
      if (end > pos) {
        push(Tok::kText, src.substr(pos, end - pos), pos);
        pos = end;
        continue;
      }
    }
    if (src[pos] == '{' && pos + 1 < n) {
      const char next = src[pos + 1];
      if (next == '#') {
        size_t p = pos + 2;
        const bool strip_before = p < n && src[p] == '-';
        const size_t end = src.find("#}", p);
        if (end == std::string::npos) error(pos, "a comment {# is not closed with #}");
        const bool strip_after = end > p && src[end - 1] == '-';
        if (strip_before) strip_trailing();
        pos = end + 2;
        if (strip_after) skip_leading();
        push(Tok::kComment, "", end);  // ends text like a tag does; the parser skips it
        continue;
      }
      if (next == '%' || next == '{') {
        const bool strip = pos + 2 < n && src[pos + 2] == '-';
        if (strip) strip_trailing();
        push(next == '%' ? Tok::kOpenStmt : Tok::kOpenExpr, next == '%' ? "{%" : "{{", pos);
        curly = 0;
        pos += strip ? 3 : 2;
        continue;
      }
    }
    while (pos < n && is_space(static_cast<unsigned char>(src[pos]))) ++pos;
    if (pos >= n) error(n - 1, "unexpected end of the template inside a tag");
    const char c = src[pos];
    if (c == '-' && pos + 2 < n && src[pos + 2] == '}' && (src[pos + 1] == '%' || src[pos + 1] == '}')) {
      push(src[pos + 1] == '%' ? Tok::kCloseStmt : Tok::kCloseExpr, src[pos + 1] == '%' ? "%}" : "}}", pos);
      pos += 3;
      skip_leading();
      continue;
    }
    if (c == '%' && pos + 1 < n && src[pos + 1] == '}') {
      push(Tok::kCloseStmt, "%}", pos);
      pos += 2;
      continue;
    }
    if (c == '}' && pos + 1 < n && src[pos + 1] == '}' && curly == 0) {
      push(Tok::kCloseExpr, "}}", pos);
      pos += 2;
      continue;
    }
    if (c == '\'' || c == '"') {
      const size_t start = pos++;
      std::string str;
      while (true) {
        if (pos >= n) error(start, "a string is not closed");
        const char ch = src[pos++];
        if (ch == c) break;
        if (ch != '\\') {
          str += ch;
          continue;
        }
        if (pos >= n) error(start, "a string is not closed");
        const char e = src[pos++];
        switch (e) {
          case 'n':
            str += '\n';
            break;
          case 't':
            str += '\t';
            break;
          case 'r':
            str += '\r';
            break;
          case 'b':
            str += '\b';
            break;
          case 'f':
            str += '\f';
            break;
          case 'v':
            str += '\v';
            break;
          case '\'':
          case '"':
          case '\\':
            str += e;
            break;
          case 'x':
          case 'u': {
            const size_t len = e == 'x' ? 2 : 4;
            if (pos + len > n) error(start, "a \\x or \\u escape is cut short");
            const unsigned cp = static_cast<unsigned>(std::stoul(src.substr(pos, len), nullptr, 16));
            pos += len;
            if (cp < 0x80) {
              str += static_cast<char>(cp);
            } else if (cp < 0x800) {
              str += static_cast<char>(0xC0 | (cp >> 6)), str += static_cast<char>(0x80 | (cp & 0x3F));
            } else {
              str += static_cast<char>(0xE0 | (cp >> 12)), str += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
              str += static_cast<char>(0x80 | (cp & 0x3F));
            }
            break;
          }
          default:
            error(pos, std::string("unknown escape \\") + e + " in a string");
        }
      }
      push(Tok::kString, std::move(str), start);
      continue;
    }
    if (is_digit(c)) {
      const size_t start = pos;
      while (pos < n && is_digit(src[pos])) ++pos;
      const bool after_dot = !tokens.empty() && tokens.back().type == Tok::kOp && tokens.back().text == ".";
      if (!after_dot && pos + 1 < n && src[pos] == '.' && is_digit(src[pos + 1])) {
        ++pos;
        while (pos < n && is_digit(src[pos])) ++pos;
        push(Tok::kFloat, src.substr(start, pos - start), start);
      } else {
        push(Tok::kInt, src.substr(start, pos - start), start);
      }
      continue;
    }
    if (is_word(c)) {
      const size_t start = pos;
      while (pos < n && is_word(src[pos])) ++pos;
      push(Tok::kName, src.substr(start, pos - start), start);
      continue;
    }
    static const char* const kOps[] = {"**", "//", "==", "!=", "<=", ">=", "(", ")", "[", "]", "{", "}", ",",
                                       ".",  ":",  "|",  "<",  ">",  "+",  "-", "~", "*", "/", "%", "="};
    bool matched = false;
    for (const char* op : kOps) {
      const size_t len = std::strlen(op);
      if (src.compare(pos, len, op) == 0) {
        if (len == 1 && c == '{') ++curly;
        if (len == 1 && c == '}') --curly;
        push(Tok::kOp, op, pos);
        pos += len;
        matched = true;
        break;
      }
    }
    if (!matched) error(pos, std::string("unexpected character '") + c + "' inside a tag");
  }
  return tokens;
}

}  // namespace moe::jinja
