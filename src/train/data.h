// Training text as token ids: UTF-8 files read as bytes (vocab 256), or ids a model's tokenizer made
// (`moe train --init DIR` with DIR/tokenizer.json), split into a training part and a validation tail, random training windows drawn from an Rng, fixed validation windows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/rng.h"

namespace moe::train {

struct TextData {
  std::vector<int32_t> train, val;  // token ids (bytes: 0..255)

  // Concatenates the files; the last val_fraction of the bytes is the validation split.
  // Throws moe::Error("train", ...) for a missing/empty file or a split too small for seq.
  static TextData load(const std::vector<std::string>& paths, double val_fraction, int64_t seq);
  static TextData from_bytes(const std::string& bytes, double val_fraction, int64_t seq, const std::string& what);
  // Token ids split the same way; `unit` names them in errors ("bytes", "tokens").
  static TextData from_tokens(std::vector<int32_t> ids, double val_fraction, int64_t seq, const std::string& what,
                              const char* unit = "tokens");
  // The files' bytes, concatenated (a missing or empty file is an error naming it).
  static std::string read_files(const std::vector<std::string>& paths);
};

// A batch of B windows of S + 1 tokens: inputs [B, S] and next-token targets [B, S].
struct Batch {
  std::vector<int32_t> tokens, targets;
};

// Random training windows (the Rng is the data position: saved in checkpoints).
Batch sample_batch(const std::vector<int32_t>& data, int64_t batch, int64_t seq, Rng& rng);
// Validation window number `index` of `count`, evenly spaced over the split (deterministic).
Batch val_batch(const std::vector<int32_t>& data, int64_t batch, int64_t seq, int64_t index, int64_t count);

}  // namespace moe::train
