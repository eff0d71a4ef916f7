// The table of llama.cpp pre-tokenizer names. The regexes are those of the models' own tokenizer.json
// files (llama.cpp keeps rewritten forms for its own regex engine; PCRE2 runs the originals).
#include "tokenizer/gguf_pre.h"

#include <fmt/format.h>

#include "tokenizer/pipeline.h"

namespace moe::tok {
namespace {

// Qwen2 / Qwen2.5 / Qwen3 (and DeepSeek-R1 distills of Qwen).
const char* const kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen3.5: letters keep their combining marks.
const char* const kQwen35 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Llama 3 (tiktoken cl100k style: digits in groups of up to three).
const char* const kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// o200k (gpt-4o, gpt-oss, Llama 4): case-aware words.
const char* const kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Mistral's tekken.
const char* const kTekken = R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|)"
                            R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|)"
                            R"(\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek-V3 / R1: up to three digits, runs of CJK and kana, then words and punctuation. The third
// pattern holds real CR and LF characters, as the model's tokenizer.json does.
const char* const kDeepseek3Digits = R"(\p{N}{1,3})";
const char* const kDeepseek3Cjk = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+";
const char* const kDeepseek3Words =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
// DeepSeek LLM (V1, V2 / V2-Lite MoE) and DeepSeek Coder: newlines alone, letters of the Latin, Greek,
// Cyrillic, ... blocks, ASCII and full-width punctuation, trailing spaces, CJK and Hangul, digits.
const char* const kNewline = "[\r\n]";
const char* const kDeepseekLetters =
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-"
    "\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481"
    "\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b"
    "\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b"
    "\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb"
    "\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128"
    "\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4"
    "\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf"
    "\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-"
    "\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+";
const char* const kDeepseekPunct = "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+";
const char* const kDeepseekCjkHangul = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+";
// GPT-2 without its final "\s+" (the text between matches is kept anyway).
const char* const kGpt2NoTail = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";

const std::vector<GgufPreTokenizer>& table() {
  static const std::vector<GgufPreTokenizer> t = {
      {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", "hunyuan", "solar-open", "kormo", "f2llmv2", "grok-2"},
       {kQwen2},
       false,
       false},
      {{"qwen35"}, {kQwen35}, false, false},
      {{"llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"},
       {kLlama3},
       true,
       true},
      {{"dbrx", "smaug-bpe"}, {kLlama3}, false, false},
      {{"deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4"},
       {kDeepseek3Digits, kDeepseek3Cjk, kDeepseek3Words},
       false,
       false},
      {{"deepseek-llm"},
       {kNewline, kDeepseekLetters, kDeepseekPunct, R"(\s+$)", kDeepseekCjkHangul, R"(\p{N}+)"},
       false,
       false},
      {{"deepseek-coder"}, {kNewline, R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCjkHangul, R"(\p{N})"}, false, false},
      {{"gpt-4o", "llama4", "minimax-m2", "kanana2", "talkie"}, {kGpt4o}, false, false},
      {{"tekken"}, {kTekken}, true, true},
      {{"gpt-2", "olmo", "phi-2", "mpt", "jais", "exaone4", "trillion", "granite-docling", "gigachat", "a.x-4.0",
        "mellum", "modern-bert", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de"},
       {gpt2_split_regex()},
       false,
       false},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b", "mellum2"},
       {R"(\p{N})", kGpt2NoTail},
       false,
       false},
      {{"falcon"}, {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2NoTail, "[0-9][0-9][0-9]"}, false, false},
      {{"default"}, {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2NoTail, R"(\p{N}+)", "[0-9][0-9][0-9]"}, false, false},
  };
  return t;
}

}  // namespace

const GgufPreTokenizer* find_gguf_pre(std::string_view name) {
  for (const GgufPreTokenizer& e : table())
    for (const std::string& n : e.names)
      if (n == name) return &e;
  return nullptr;
}

const GgufPreTokenizer* gguf_pre_for_regexes(const std::vector<std::string>& regexes, bool ignore_merges) {
  const GgufPreTokenizer* any = nullptr;
  for (const GgufPreTokenizer& e : table()) {
    if (e.regexes != regexes) continue;
    if (e.ignore_merges == ignore_merges) return &e;
    if (!any) any = &e;
  }
  return any;
}

std::string gguf_pre_names() {
  std::vector<std::string> names;
  for (const GgufPreTokenizer& e : table()) names.insert(names.end(), e.names.begin(), e.names.end());
  return fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace moe::tok
