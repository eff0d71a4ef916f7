// Fuzzes the tokenizer a GGUF file carries (tokenizer.ggml.model, tokens, scores, token types,
// merges, the pre-tokenizer name, bos/eos/unk ids, the chat template): the file is read, its
// tokenizer built, and a fixed text encoded and decoded with it.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "io/gguf.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static moe::fuzz::MemFile file("vocab.gguf");
  const std::string& path = file.write(data, size);
  moe::fuzz::expect_moe_errors_only("tokenizer_from_gguf", [&] {
    const moe::GgufFile f = moe::GgufFile::open(path);
    const std::unique_ptr<moe::Tokenizer> tok = moe::tokenizer_from_gguf(f);
    (void)tok->summary();
    for (const char* text : {"Hello world, 123 tokens!", "  \n\t Ünïcödé \xE2\x96\x81<s></s>", ""}) {
      moe::fuzz::expect_moe_errors_only("encode", [&] {
        const std::vector<int32_t> ids = tok->encode(text, true);
        (void)tok->decode(ids);
      });
    }
  });
  return 0;
}
