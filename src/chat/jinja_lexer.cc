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

// Appends the UTF-8 bytes of code point `cp` (below 0x10000: \x and \u escapes give at most 4 hex digits).
void append_utf8(std::string& str, unsigned cp) {
  if (cp < 0x80) {
    str += static_cast<char>(cp);
  } else if (cp < 0x800) {
    str += static_cast<char>(0xC0 | (cp >> 6)), str += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    str += static_cast<char>(0xE0 | (cp >> 12)), str += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    str += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// One pass over the preprocessed source: text between tags, the tag delimiters with their whitespace
// control, and inside tags strings, numbers, names and operators.
class Lexer {
 public:
  Lexer(const std::string& source, const std::string& name) : s_(preprocess(source)), name_(name) {}

  std::vector<Token> run() {
    while (pos_ < n_) {
      if (in_text() && text()) continue;
      if (src_[pos_] == '{' && pos_ + 1 < n_ && open_tag(src_[pos_ + 1])) continue;
      while (pos_ < n_ && is_space(static_cast<unsigned char>(src_[pos_]))) ++pos_;
      if (pos_ >= n_) error(n_ - 1, "unexpected end of the template inside a tag");
      const char c = src_[pos_];
      if (close_tag(c)) continue;
      if (c == '\'' || c == '"') {
        string_literal(c);
      } else if (is_digit(c)) {
        number();
      } else if (is_word(c)) {
        const size_t start = pos_;
        while (pos_ < n_ && is_word(src_[pos_])) ++pos_;
        push(Tok::kName, src_.substr(start, pos_ - start), start);
      } else {
        op(c);
      }
    }
    return std::move(tokens_);
  }

 private:
  int line_at(size_t p) const { return s_.line.empty() ? 1 : s_.line[std::min(p, s_.line.size() - 1)]; }
  [[noreturn]] void error(size_t p, const std::string& what) const {
    throw Error("template", fmt::format("{}:{}: {}", name_, line_at(p), what));
  }
  void push(Tok t, std::string text, size_t at) { tokens_.push_back({t, std::move(text), line_at(at)}); }
  // {%- / {{- / {#-: the whitespace at the end of the text before the tag goes.
  void strip_trailing() {
    if (!tokens_.empty() && tokens_.back().type == Tok::kText) {
      std::string& t = tokens_.back().text;
      while (!t.empty() && is_space(static_cast<unsigned char>(t.back()))) t.pop_back();
      if (t.empty()) tokens_.pop_back();
    }
  }
  // -%} / -}} / -#}: the whitespace at the start of the text after the tag goes.
  void skip_leading() {
    while (pos_ < n_ && is_space(static_cast<unsigned char>(src_[pos_]))) ++pos_;
  }
  bool in_text() const {
    return tokens_.empty() || tokens_.back().type == Tok::kCloseStmt || tokens_.back().type == Tok::kCloseExpr ||
           tokens_.back().type == Tok::kComment;
  }

  // Text up to the next {%, {{ or {#; false when a tag starts right here.
  bool text() {
    size_t end = pos_;
    while (true) {
      end = src_.find('{', end);
      if (end == std::string::npos) {
        end = n_;
        break;
      }
      if (end + 1 < n_ && (src_[end + 1] == '%' || src_[end + 1] == '{' || src_[end + 1] == '#')) break;
      ++end;
    }
    if (end == pos_) return false;
    push(Tok::kText, src_.substr(pos_, end - pos_), pos_);
    pos_ = end;
    return true;
  }

  // A comment {# ... #} (whole), or the opening {% / {{ of a tag; false for any other '{'.
  bool open_tag(char next) {
    if (next == '#') {
      size_t p = pos_ + 2;
      const bool strip_before = p < n_ && src_[p] == '-';
      const size_t end = src_.find("#}", p);
      if (end == std::string::npos) error(pos_, "a comment {# is not closed with #}");
      const bool strip_after = end > p && src_[end - 1] == '-';
      if (strip_before) strip_trailing();
      pos_ = end + 2;
      if (strip_after) skip_leading();
      push(Tok::kComment, "", end);  // ends text like a tag does; the parser skips it
      return true;
    }
    if (next == '%' || next == '{') {
      const bool strip = pos_ + 2 < n_ && src_[pos_ + 2] == '-';
      if (strip) strip_trailing();
      push(next == '%' ? Tok::kOpenStmt : Tok::kOpenExpr, next == '%' ? "{%" : "{{", pos_);
      curly_ = 0;
      pos_ += strip ? 3 : 2;
      return true;
    }
    return false;
  }

  // The closing -%} / -}} / %} / }} of a tag (}} only outside a dict literal's braces).
  bool close_tag(char c) {
    if (c == '-' && pos_ + 2 < n_ && src_[pos_ + 2] == '}' && (src_[pos_ + 1] == '%' || src_[pos_ + 1] == '}')) {
      push(src_[pos_ + 1] == '%' ? Tok::kCloseStmt : Tok::kCloseExpr, src_[pos_ + 1] == '%' ? "%}" : "}}", pos_);
      pos_ += 3;
      skip_leading();
      return true;
    }
    if (c == '%' && pos_ + 1 < n_ && src_[pos_ + 1] == '}') {
      push(Tok::kCloseStmt, "%}", pos_);
      pos_ += 2;
      return true;
    }
    if (c == '}' && pos_ + 1 < n_ && src_[pos_ + 1] == '}' && curly_ == 0) {
      push(Tok::kCloseExpr, "}}", pos_);
      pos_ += 2;
      return true;
    }
    return false;
  }

  // A string in `quote`s with Python's backslash escapes.
  void string_literal(char quote) {
    const size_t start = pos_++;
    std::string str;
    while (true) {
      if (pos_ >= n_) error(start, "a string is not closed");
      const char ch = src_[pos_++];
      if (ch == quote) break;
      if (ch != '\\') {
        str += ch;
        continue;
      }
      if (pos_ >= n_) error(start, "a string is not closed");
      escape(start, str);
    }
    push(Tok::kString, std::move(str), start);
  }

  // The escape after a backslash (at pos_) of the string starting at `start`, appended to `str`.
  void escape(size_t start, std::string& str) {
    const char e = src_[pos_++];
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
        if (pos_ + len > n_) error(start, "a \\x or \\u escape is cut short");
        const unsigned cp = static_cast<unsigned>(std::stoul(src_.substr(pos_, len), nullptr, 16));
        pos_ += len;
        append_utf8(str, cp);
        break;
      }
      default:
        error(pos_, std::string("unknown escape \\") + e + " in a string");
    }
  }

  // An int, or a float with digits on both sides of the dot (not after `.`: x.0.1 is two subscripts).
  void number() {
    const size_t start = pos_;
    while (pos_ < n_ && is_digit(src_[pos_])) ++pos_;
    const bool after_dot = !tokens_.empty() && tokens_.back().type == Tok::kOp && tokens_.back().text == ".";
    if (!after_dot && pos_ + 1 < n_ && src_[pos_] == '.' && is_digit(src_[pos_ + 1])) {
      ++pos_;
      while (pos_ < n_ && is_digit(src_[pos_])) ++pos_;
      push(Tok::kFloat, src_.substr(start, pos_ - start), start);
    } else {
      push(Tok::kInt, src_.substr(start, pos_ - start), start);
    }
  }

  // An operator, longest first; counts dict braces so their `}}` does not close the tag.
  void op(char c) {
    static const char* const kOps[] = {"**", "//", "==", "!=", "<=", ">=", "(", ")", "[", "]", "{", "}", ",",
                                       ".",  ":",  "|",  "<",  ">",  "+",  "-", "~", "*", "/", "%", "="};
    for (const char* op : kOps) {
      const size_t len = std::strlen(op);
      if (src_.compare(pos_, len, op) == 0) {
        if (len == 1 && c == '{') ++curly_;
        if (len == 1 && c == '}') --curly_;
        push(Tok::kOp, op, pos_);
        pos_ += len;
        return;
      }
    }
    error(pos_, std::string("unexpected character '") + c + "' inside a tag");
  }

  const Source s_;
  const std::string& src_ = s_.text;
  const size_t n_ = src_.size();
  const std::string& name_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int curly_ = 0;
};

}  // namespace

std::vector<Token> lex(const std::string& source, const std::string& name) { return Lexer(source, name).run(); }

}  // namespace moe::jinja
