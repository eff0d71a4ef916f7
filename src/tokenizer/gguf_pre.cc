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
