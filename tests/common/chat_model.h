// A tiny instruct-model fixture for the chat and serve tests: a byte-level BPE tokenizer.json (the
// 256 byte tokens of GPT-2's byte alphabet, no merges, plus <|im_start|> 256, <|im_end|> 257,
// <|endoftext|> 258), a tokenizer_config.json with Qwen3's real chat template and eos
// <|im_end|>, and a random qwen3_moe checkpoint with vocab 260 (tests/common/random_checkpoint.h).
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "common/random_checkpoint.h"

namespace moe::testing {

// GPT-2's bytes_to_unicode: byte b as the UTF-8 of its printable stand-in.
inline std::string byte_token(int b) {
  const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  int cp = b;
  if (!printable) {
    int n = 0;
    for (int x = 0; x < b; ++x) {
      const bool p = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
      if (!p) ++n;
    }
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_chat_model(const std::string& dir, uint32_t seed = 5) {
  namespace fs = std::filesystem;
  const std::string fixtures = std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/";
  nlohmann::json config = nlohmann::json::parse(read_text(fixtures + "models/qwen3_moe/config.json"));
  config["vocab_size"] = 260;
  config["eos_token_id"] = 257;
  config["bos_token_id"] = nullptr;
  write_random_checkpoint(dir, config, seed);
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_token(b)] = b;
  nlohmann::json added = nlohmann::json::array();
  const char* specials[] = {"<|im_start|>", "<|im_end|>", "<|endoftext|>"};
  for (int i = 0; i < 3; ++i)
    added.push_back({{"id", 256 + i},
                     {"content", specials[i]},
                     {"special", true},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false}});
  const nlohmann::json tokenizer = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  std::ofstream(fs::path(dir) / "tokenizer.json") << tokenizer.dump();
  const nlohmann::json tokenizer_config = {{"eos_token", "<|im_end|>"},
                                           {"bos_token", nullptr},
                                           {"add_bos_token", false},
                                           {"chat_template", read_text(fixtures + "chat_templates/qwen3.jinja")}};
  std::ofstream(fs::path(dir) / "tokenizer_config.json") << tokenizer_config.dump();
}

}  // namespace moe::testing
