// TextStream: streamed text of real tokenizers is byte-identical to decoding all ids at once, and
// never shows U+FFFD for a character whose bytes are split across byte-level BPE tokens (CJK,
// emoji); BOS of a prompt as each tokenizer config says.
#include "tokenizer/text_stream.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace moe {
namespace {

const std::string kReplacement = "\xEF\xBF\xBD";

std::unique_ptr<Tokenizer> load(const std::string& name) {
  return load_tokenizer(std::string(MOE_TOKENIZER_FIXTURES) + "/" + name);
}

const char* const kTexts[] = {
    "Hello, world! 你好，世界。日本語のテキスト 🙂👍🏽 done.",
    "中文混合English文本：模型、专家、路由。",
    "emoji: 🧑‍🚀🚀🌍 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and ಠ_ಠ",
    "  leading spaces, tabs\tand\nnewlines ",
};

class Streaming : public ::testing::TestWithParam<const char*> {};

TEST_P(Streaming, ByteIdenticalToWholeDecodeAndNeverHalfACharacter) {
  const auto tok = load(GetParam());
  int split_characters = 0;
  for (const char* text : kTexts) {
    const std::vector<int32_t> ids = tok->encode(text);
    TextStream stream(tok.get(), static_cast<int64_t>(tok->vocab_size()));
    std::string streamed;
    for (const int32_t id : ids) {
      const std::string piece = stream.put(id);
      EXPECT_EQ(piece.find(kReplacement), std::string::npos) << GetParam() << ": " << text;
      EXPECT_EQ(tok::find_invalid_utf8(piece), std::string_view::npos) << GetParam() << ": " << text;
      streamed += piece;
      if (tok->decode(std::vector<int32_t>{id}).find(kReplacement) != std::string::npos) ++split_characters;
    }
    streamed += stream.finish();
    EXPECT_EQ(streamed, tok->decode(ids)) << GetParam() << ": " << text;
  }
  // The test means something: some token alone decodes to half a character.
  EXPECT_GT(split_characters, 0) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Real, Streaming, ::testing::Values("qwen3", "deepseek_v3", "gptoss", "llama3", "llama2"));

TEST(TextStream, IncompleteEndDecodesAsTheWholeDecodeDoes) {
  const auto tok = load("qwen3");
  std::vector<int32_t> ids = tok->encode("ok 🙂");
  ids.pop_back();  // the emoji's last byte-level token is missing
  TextStream stream(tok.get(), static_cast<int64_t>(tok->vocab_size()));
  std::string s;
  for (int32_t id : ids) s += stream.put(id);
  EXPECT_EQ(s.find(kReplacement), std::string::npos);
  s += stream.finish();
  EXPECT_EQ(s, tok->decode(ids));
}

TEST(TextStream, BytesOfAVocab256ModelWaitForTheirCharacter) {
  TextStream stream(nullptr, 256);
  const std::string text =
      "a\xE4\xB8\xAD"
      "b";  // a, U+4E2D in three bytes, b
  std::vector<std::string> pieces;
  for (unsigned char c : text) pieces.push_back(stream.put(c));
  EXPECT_EQ(pieces, (std::vector<std::string>{"a", "", "", "\xE4\xB8\xAD", "b"}));
  EXPECT_EQ(stream.finish(), "");
  TextStream ids(nullptr, 1000);
  EXPECT_EQ(ids.put(7) + ids.put(300), "<7><300>");
  EXPECT_EQ(complete_utf8_prefix("x\xF0\x9F\x99"), 1u);
  EXPECT_EQ(complete_utf8_prefix("x\xF0\x9F\x99\x82"), 5u);
  EXPECT_EQ(complete_utf8_prefix("\xFF"), 1u);
}

TEST(TextStream, IdsPastTheTokenizerVocabularyHaveNoText) {
  const auto tok = load("qwen3");
  const int32_t padded = static_cast<int32_t>(tok->vocab_size()) + 5;  // Qwen3's model rows run past the tokenizer
  TextStream stream(tok.get(), 151936);
  std::string s = stream.put(tok->encode("a")[0]);
  s += stream.put(padded);
  s += stream.put(tok->encode("b")[0]);
  s += stream.finish();
  EXPECT_EQ(s, "ab");
}

TEST(PromptBos, AsTheTokenizerConfigSays) {
  // DeepSeek-V3: add_bos_token true; Llama 2: the post-processor adds <s>; Qwen3: add_bos_token false.
  const auto ds = load("deepseek_v3");
  EXPECT_TRUE(ds->adds_bos());
  EXPECT_EQ(ds->encode_prompt("hi").front(), *ds->bos_id());
  EXPECT_EQ(ds->encode_prompt("hi").size(), ds->encode("hi").size() + 1);
  const auto llama2 = load("llama2");
  EXPECT_TRUE(llama2->adds_bos());
  EXPECT_EQ(llama2->encode_prompt("hi"), llama2->encode("hi", true));
  const auto qwen = load("qwen3");
  EXPECT_FALSE(qwen->adds_bos());
  EXPECT_EQ(qwen->encode_prompt("hi"), qwen->encode("hi"));
}

}  // namespace
}  // namespace moe
