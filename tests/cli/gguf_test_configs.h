// Shared by the GGUF tests of the CLI: the committed fixtures' configs, the settings llama.cpp's graphs fix
// (what a GGUF file can hold), and raw f32 logits files.
#pragma once

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moe::testing {

inline nlohmann::json fixture_config(const std::string& family) {
  std::ifstream in(std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/models/" + family + "/config.json");
  return nlohmann::json::parse(in);
}

// The fixture's config as a GGUF can hold it (what llama.cpp's graph for the architecture fixes).
inline nlohmann::json expressible_config(const std::string& family) {
  nlohmann::json c = fixture_config(family);
  if (family == "dots1") {  // llama.cpp's dots1 has no sliding window and no grouped-query attention
    c.erase("layer_types");
    c["sliding_window"] = nullptr;
    c["num_key_value_heads"] = c["num_attention_heads"];
  }
  if (family == "ernie4_5_moe") {  // no MLP / head biases, MoE layers up to the last
    c["use_bias"] = false;
    c["moe_layer_end_index"] = -1;
  }
  if (family == "phimoe") c["rope_scaling"]["short_mscale"] = c["rope_scaling"]["long_mscale"];  // one attn_factor
  if (family == "llama4_text") {  // 8192-token chunks and temperature tuning (8192, 0.1)
    c.erase("layer_types");
    c["attention_chunk_size"] = 8192;
    c["floor_scale"] = 8192;
    c["attn_scale"] = 0.1;
  }
  return c;
}

// A file of little-endian f32 values (--logits-out).
inline std::vector<float> read_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> b{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

}  // namespace moe::testing
