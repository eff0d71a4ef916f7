// UTF-8 helpers and ICU normalization for the tokenizers.
#include "tokenizer/unicode.h"

#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <vector>

#include "util/error.h"

namespace moe::tok {
namespace {

// Length of the valid UTF-8 sequence starting at text[i], or 0 if it is not valid there; on 0,
// `bad` is the length of the maximal subpart to replace (at least 1).
size_t valid_sequence_length(std::string_view text, size_t i, size_t& bad) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  const unsigned char c = s[i];
  bad = 1;
  if (c < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k < len; ++k) {
    if (i + k >= n) return 0;
    const unsigned char b = s[i + k];
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return 0;
    bad = k + 1;
  }
  return len;
}

std::array<char32_t, 256> make_byte_to_unicode() {
  std::array<char32_t, 256> table{};
  std::array<bool, 256> printable{};
  for (int b = '!'; b <= '~'; ++b) printable[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) table[b] = printable[b] ? char32_t(b) : next++;
  return table;
}

}  // namespace

size_t find_invalid_utf8(std::string_view text) {
  size_t i = 0, bad = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t len = valid_sequence_length(text, i, bad);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

char32_t next_code_point(std::string_view text, size_t& i) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const unsigned char c = s[i];
  if (c < 0x80) return s[i++];
  if (c < 0xE0) {
    const char32_t cp = (char32_t(c & 0x1F) << 6) | (s[i + 1] & 0x3F);
    i += 2;
    return cp;
  }
  if (c < 0xF0) {
    const char32_t cp = (char32_t(c & 0x0F) << 12) | (char32_t(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
    i += 3;
    return cp;
  }
  const char32_t cp = (char32_t(c & 0x07) << 18) | (char32_t(s[i + 1] & 0x3F) << 12) |
                      (char32_t(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
  i += 4;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0, bad = 0;
  while (i < bytes.size()) {
    const size_t len = valid_sequence_length(bytes, i, bad);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      i += bad;
    } else {
      out.append(bytes.substr(i, len));
      i += len;
    }
  }
  return out;
}

const std::array<char32_t, 256>& byte_to_unicode() {
  static const std::array<char32_t, 256> table = make_byte_to_unicode();
  return table;
}

int unicode_to_byte(char32_t cp) {
  static const std::vector<int> inverse = [] {
    std::vector<int> inv(512, -1);
    const auto& t = byte_to_unicode();
    for (int b = 0; b < 256; ++b) inv[t[b]] = b;
    return inv;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

std::string normalize_unicode(std::string_view text, NormalForm form) {
  // Code points below U+0300 are stable under every form except compatibility ones on a few
  // Latin-1 characters, so pure ASCII/Latin-1 text skips ICU under NFC and NFD.
  if (form == NormalForm::kNFC || form == NormalForm::kNFD) {
    bool trivial = true;
    for (size_t i = 0; i < text.size() && trivial; ++i) {
      const unsigned char c = static_cast<unsigned char>(text[i]);
      trivial = c < 0x80 || (c < 0xCC && form == NormalForm::kNFC) || (c < 0xC3 && form == NormalForm::kNFD);
    }
    if (trivial) return std::string(text);
  }
  UErrorCode status = U_ZERO_ERROR;
  const UNormalizer2* norm = nullptr;
  switch (form) {
    case NormalForm::kNFC:
      norm = unorm2_getNFCInstance(&status);
      break;
    case NormalForm::kNFD:
      norm = unorm2_getNFDInstance(&status);
      break;
    case NormalForm::kNFKC:
      norm = unorm2_getNFKCInstance(&status);
      break;
    case NormalForm::kNFKD:
      norm = unorm2_getNFKDInstance(&status);
      break;
  }
  if (U_FAILURE(status)) fail("tokenizer", "ICU normalizer unavailable: {}", u_errorName(status));
  std::vector<UChar> utf16(text.size() + 1);
  int32_t len16 = 0;
  u_strFromUTF8(utf16.data(), int32_t(utf16.size()), &len16, text.data(), int32_t(text.size()), &status);
  if (U_FAILURE(status)) fail("tokenizer", "ICU UTF-8 conversion failed: {}", u_errorName(status));
  std::vector<UChar> normalized(size_t(len16) * 4 + 16);
  const int32_t n16 =
      unorm2_normalize(norm, utf16.data(), len16, normalized.data(), int32_t(normalized.size()), &status);
  if (U_FAILURE(status)) fail("tokenizer", "ICU normalization failed: {}", u_errorName(status));
  std::string out(size_t(n16) * 3 + 4, '\0');
  int32_t n8 = 0;
  u_strToUTF8(out.data(), int32_t(out.size()), &n8, normalized.data(), n16, &status);
  if (U_FAILURE(status)) fail("tokenizer", "ICU UTF-8 conversion failed: {}", u_errorName(status));
  out.resize(size_t(n8));
  return out;
}

}  // namespace moe::tok
