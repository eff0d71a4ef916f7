// UTF-8 helpers for the tokenizers: validation, code points, lossy decoding (U+FFFD for bad bytes),
// the GPT-2 byte-level alphabet, and Unicode normalization forms (through ICU).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moe::tok {

// Byte offset of the first byte that is not part of valid UTF-8, or npos if the text is valid.
size_t find_invalid_utf8(std::string_view text);

// Decodes the code point at text[i] (text must be valid UTF-8) and advances i past it.
char32_t next_code_point(std::string_view text, size_t& i);

void append_utf8(std::string& out, char32_t cp);

// Valid UTF-8 from arbitrary bytes: each maximal invalid subpart becomes U+FFFD (as Rust's
// String::from_utf8_lossy and the WHATWG TextDecoder do).
std::string utf8_lossy(std::string_view bytes);

// GPT-2 bytes_to_unicode: the code point that stands for each byte in byte-level vocabularies.
const std::array<char32_t, 256>& byte_to_unicode();
// The inverse: byte for a code point of the byte-level alphabet, or -1.
int unicode_to_byte(char32_t cp);

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };
std::string normalize_unicode(std::string_view text, NormalForm form);

}  // namespace moe::tok
