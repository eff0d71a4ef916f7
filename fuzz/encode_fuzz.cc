// Fuzzes the encoder and decoder of the five real tokenizers the tests check against Hugging Face
// (Qwen3, DeepSeek-V3, gpt-oss, Llama 3, Llama 2; unpacked from tests/reference/fixtures at
// configure time): the first byte picks one, the rest is the text. Invalid UTF-8 must be a
// moe::Error; valid text must encode, and for the byte-level tokenizers without a normalizer
// (gpt-oss, Llama 3) decode back to itself.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

namespace {

const char* const kNames[] = {"qwen3", "deepseek_v3", "gptoss", "llama3", "llama2"};

std::unique_ptr<moe::Tokenizer> g_tokenizers[5];

}  // namespace

// Loading the five real tokenizers takes seconds under the sanitizers: done once, before the first
// input, so it is not charged to an input's time limit.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  for (int i = 0; i < 5; ++i)
    g_tokenizers[i] = moe::load_tokenizer(std::string(MOE_TOKENIZER_FIXTURES) + "/" + kNames[i]);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int which = data[0] % 5;
  const moe::Tokenizer& tok = *g_tokenizers[which];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  moe::fuzz::expect_moe_errors_only("encode", [&] {
    const std::vector<int32_t> ids = tok.encode(text, (data[0] & 0x80) != 0);
    for (int32_t id : ids) moe::fuzz::check(id >= 0 && size_t(id) < tok.vocab_size(), "ids within the vocabulary");
    const std::string back = tok.decode(ids);
    if ((which == 2 || which == 3) && (data[0] & 0x80) == 0) moe::fuzz::check(back == text, "decode(encode(x)) == x");
  });
  return 0;
}
