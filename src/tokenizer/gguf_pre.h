// llama.cpp's byte-level pre-tokenizer names (GGUF tokenizer.ggml.pre) and what each stands for: the
// split regexes applied in turn (every regex splits every piece, keeping matches and the text between
// them), and the flags llama.cpp ties to the name. One table serves reading a GGUF file (name ->
// regexes) and writing one from a Hugging Face tokenizer.json (regexes -> name).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace moe::tok {

struct GgufPreTokenizer {
  std::vector<std::string> names;    // names[0] is the one the writer chooses
  std::vector<std::string> regexes;  // as in the models' tokenizer.json (PCRE2 syntax)
  bool ignore_merges = false;        // a word that is a token is taken whole
  bool add_bos = false;              // llama.cpp's default when tokenizer.ggml.add_bos_token is absent
};

// The entry for a tokenizer.ggml.pre value, or null when llama.cpp's name is not supported here.
const GgufPreTokenizer* find_gguf_pre(std::string_view name);

// The entry whose regexes are exactly `regexes`, preferring one whose ignore_merges agrees; null if
// none.
const GgufPreTokenizer* gguf_pre_for_regexes(const std::vector<std::string>& regexes, bool ignore_merges);

// Every supported name, comma-separated (for error messages).
std::string gguf_pre_names();

}  // namespace moe::tok
