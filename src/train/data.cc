// Byte-level text loading and batch sampling (see data.h).
#include "train/data.h"

#include <fstream>
#include <sstream>

#include "util/error.h"

namespace moe::train {

TextData TextData::from_tokens(std::vector<int32_t> ids, double val_fraction, int64_t seq, const std::string& what,
                               const char* unit) {
  if (!(val_fraction > 0 && val_fraction < 1)) fail("train", "--val-fraction must be in (0, 1), got {}", val_fraction);
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t n_val = static_cast<int64_t>(static_cast<double>(n) * val_fraction);
  if (n_val < seq + 2 || n - n_val < seq + 2) {
    fail("train", "{}: {} {} are too few for a train/validation split at --seq {} (need > {} in each)", what, n, unit,
         seq, seq + 1);
  }
  TextData d;
  d.val.assign(ids.begin() + (n - n_val), ids.end());
  ids.resize(static_cast<size_t>(n - n_val));
  d.train = std::move(ids);
  return d;
}

TextData TextData::from_bytes(const std::string& bytes, double val_fraction, int64_t seq, const std::string& what) {
  std::vector<int32_t> ids(bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) ids[i] = static_cast<uint8_t>(bytes[i]);
  return from_tokens(std::move(ids), val_fraction, seq, what, "bytes");
}

std::string TextData::read_files(const std::vector<std::string>& paths) {
  if (paths.empty()) fail("train", "no training data: pass --data FILE (UTF-8 text)");
  std::string all;
  for (const auto& p : paths) {
    std::ifstream f(p, std::ios::binary);
    if (!f) fail("train", "{}: cannot open training data file", p);
    std::ostringstream ss;
    ss << f.rdbuf();
    if (ss.str().empty()) fail("train", "{}: training data file is empty", p);
    all += ss.str();
  }
  return all;
}

TextData TextData::load(const std::vector<std::string>& paths, double val_fraction, int64_t seq) {
  const std::string all = read_files(paths);
  return from_bytes(all, val_fraction, seq, paths.size() == 1 ? paths[0] : paths[0] + " (+ more)");
}

Batch sample_batch(const std::vector<int32_t>& data, int64_t batch, int64_t seq, Rng& rng) {
  Batch b;
  b.tokens.resize(batch * seq);   // [B, S]
  b.targets.resize(batch * seq);  // [B, S]
  const uint64_t span = static_cast<uint64_t>(data.size()) - seq;
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t start = static_cast<int64_t>(rng.below(span));
    for (int64_t j = 0; j < seq; ++j) {
      b.tokens[i * seq + j] = data[start + j];
      b.targets[i * seq + j] = data[start + j + 1];
    }
  }
  return b;
}

Batch val_batch(const std::vector<int32_t>& data, int64_t batch, int64_t seq, int64_t index, int64_t count) {
  Batch b;
  b.tokens.resize(batch * seq);   // [B, S]
  b.targets.resize(batch * seq);  // [B, S]
  const int64_t span = static_cast<int64_t>(data.size()) - seq - 1, windows = batch * count;
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t start = span * (index * batch + i) / windows;
    for (int64_t j = 0; j < seq; ++j) {
      b.tokens[i * seq + j] = data[start + j];
      b.targets[i * seq + j] = data[start + j + 1];
    }
  }
  return b;
}

}  // namespace moe::train
