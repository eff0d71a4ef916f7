// Fuzzes the tokenizer.json loader (model, vocab, merges, added tokens, normalizers,
// pre-tokenizers and their regexes, post-processor, decoder) together with the encoder: the input
// is a tokenizer.json, a NUL byte, then a text to encode with it and decode back.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static moe::fuzz::MemFile file("tokenizer.json");
  const auto* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t json_size = nul ? static_cast<size_t>(nul - data) : size;
  const std::string_view text = nul ? std::string_view(reinterpret_cast<const char*>(nul + 1), size - json_size - 1)
                                    : std::string_view("Hello world, 123 tokens!\n  Ünïcödé \xE2\x96\x81 <s>");
  const std::string& path = file.write(data, json_size);
  moe::fuzz::expect_moe_errors_only("Tokenizer", [&] {
    const moe::Tokenizer tok(path);
    (void)tok.summary();
    for (bool special : {false, true}) {
      moe::fuzz::expect_moe_errors_only("Tokenizer::encode", [&] {
        const std::vector<int32_t> ids = tok.encode(text, special);
        for (int32_t id : ids) moe::fuzz::check(id >= 0, "encode gives non-negative ids");
        (void)tok.decode(ids);
        (void)tok.decode(ids, true);
      });
    }
  });
  return 0;
}
