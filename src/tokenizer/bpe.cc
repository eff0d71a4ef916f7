// BPE encoding of one word: initial symbols, merges by rank (leftmost first among equal ranks,
// as Hugging Face tokenizers and transformers.js do), byte fallback, unk.
#include "tokenizer/bpe.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <nlohmann/json.hpp>
#include <queue>

#include "tokenizer/pipeline.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace moe::tok {
namespace {

constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCacheEntries = 1 << 18;
constexpr size_t kHeapMergeThreshold = 48;  // longer words use the priority queue

uint64_t pair_key(int32_t left, int32_t right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }

std::string opt_string(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? std::string() : it->get<std::string>();
}

}  // namespace

BpeModel::BpeModel(const nlohmann::json& model, bool byte_level, const std::string& file) : byte_level_(byte_level) {
  byte_fallback_ = model.value("byte_fallback", false);
  ignore_merges_ = model.value("ignore_merges", false);
  fuse_unk_ = model.value("fuse_unk", false);
  if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() != 0.0)
    fail("tokenizer", "{}: model.dropout is {}, only null or 0 (deterministic BPE) is supported", file,
         model["dropout"].dump());
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (!opt_string(model, key).empty())
      fail("tokenizer", "{}: model.{} is {:?}; only empty or null is supported", file, key, opt_string(model, key));
  if (!model.contains("vocab") || !model["vocab"].is_object())
    fail("tokenizer", "{}: model.vocab must be an object of token -> id", file);
  if (!model.contains("merges") || !model["merges"].is_array())
    fail("tokenizer", "{}: model.merges must be an array", file);
  load_vocab(model["vocab"], file);
  load_merges(model["merges"], file);
  const std::string unk = opt_string(model, "unk_token");
  if (!unk.empty()) {
    unk_id_ = token_to_id(unk);
    if (unk_id_ < 0) fail("tokenizer", "{}: model.unk_token {:?} is not in model.vocab", file, unk);
  }
}

void BpeModel::load_vocab(const nlohmann::json& vocab, const std::string& file) {
  vocab_.reserve(vocab.size());
  int64_t max_id = -1;
  std::string max_token;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!tok::is_token_id(it.value()))
      fail("tokenizer", "{}: model.vocab[{:?}] must be a non-negative integer id below {}, found {}", file, it.key(),
           INT32_MAX, it.value().dump());
    const auto id = it.value().get<int32_t>();
    vocab_.emplace(it.key(), id);
    if (id > max_id) max_id = id, max_token = it.key();
  }
  // id_to_token_ is indexed by id: a sparse vocabulary ({"a": 2000000000}) would allocate gigabytes for
  // one token. Real vocabularies are dense (ids 0 .. n-1); a few holes are allowed.
  const int64_t max_allowed = 2 * static_cast<int64_t>(vocab.size()) + 1024;
  if (max_id > max_allowed)
    fail("tokenizer",
         "{}: model.vocab[{:?}] is id {} but the vocabulary has only {} entries; ids must be dense (at most {})", file,
         max_token, max_id, vocab.size(), max_allowed);
  id_to_token_.assign(size_t(max_id + 1), std::string());
  for (const auto& [token, id] : vocab_) id_to_token_[size_t(id)] = token;
  index_vocab();
}

BpeModel::BpeModel(const std::vector<std::string>& tokens, const BpeOptions& options)
    : byte_level_(options.byte_level),
      byte_fallback_(options.byte_fallback),
      ignore_merges_(options.ignore_merges),
      unk_id_(options.unk_id) {
  id_to_token_ = tokens;
  vocab_.reserve(tokens.size());
  for (size_t id = 0; id < tokens.size(); ++id) vocab_.emplace(tokens[id], int32_t(id));
  index_vocab();
}

void BpeModel::index_vocab() {
  fallback_ids_.fill(-1);
  byte_ids_.fill(-1);
  for (int b = 0; b < 256; ++b) {
    fallback_ids_[b] = token_to_id(fmt::format("<0x{:02X}>", b));
    std::string s;
    append_utf8(s, byte_to_unicode()[b]);
    byte_ids_[b] = token_to_id(s);
  }
  if (byte_level_) {
    word_vocab_.reserve(vocab_.size());
    for (const auto& [token, id] : vocab_) {
      std::string raw;
      bool ok = true;
      for (size_t i = 0; i < token.size() && ok;) {
        const int b = unicode_to_byte(next_code_point(token, i));
        ok = b >= 0;
        raw.push_back(char(b));
      }
      if (ok) word_vocab_.emplace(std::move(raw), id);
    }
  } else {
    for (const auto& [token, id] : vocab_) {
      size_t i = 0;
      if (token.empty()) continue;
      const char32_t cp = next_code_point(token, i);
      if (i == token.size()) char_ids_.emplace(cp, id);
    }
  }
}

void BpeModel::load_merges(const nlohmann::json& merges, const std::string& file) {
  merges_.reserve(merges.size());
  std::string left, right;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& m = merges[rank];
    if (m.is_string()) {
      const auto& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos)
        fail("tokenizer", "{}: model.merges[{}] is {:?}, expected \"left right\"", file, rank, s);
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      fail("tokenizer", "{}: model.merges[{}] is {}, expected \"left right\" or [left, right]", file, rank, m.dump());
    }
    if (!add_merge(left, right, int32_t(rank)))
      fail("tokenizer", "{}: model.merges[{}] ({:?} + {:?}) uses a token that is not in model.vocab", file, rank, left,
           right);
  }
}

bool BpeModel::add_merge(const std::string& left, const std::string& right, int32_t rank) {
  const int32_t a = token_to_id(left), b = token_to_id(right), c = token_to_id(left + right);
  if (a < 0 || b < 0 || c < 0) return false;
  merges_.emplace(pair_key(a, b), Merge{rank, c});  // the first (lowest) rank wins
  return true;
}

void BpeModel::add_merges(const std::vector<std::pair<std::string, std::string>>& merges, const std::string& file,
                          const std::string& field) {
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank)
    if (!add_merge(merges[rank].first, merges[rank].second, int32_t(rank)))
      fail("tokenizer", "{}: {}[{}] ({:?} + {:?}) names a token that is not in the vocabulary", file, field, rank,
           merges[rank].first, merges[rank].second);
}

void BpeModel::ranks_from_scores(const std::vector<float>& scores) {
  // Rank = position of the token's score among the distinct scores, highest first, so that equal
  // scores tie and the leftmost pair merges first, as SentencePiece does.
  std::vector<float> distinct(scores);
  std::sort(distinct.begin(), distinct.end(), std::greater<>());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  for (size_t id = 0; id < id_to_token_.size() && id < scores.size(); ++id) {
    const std::string& token = id_to_token_[id];
    const auto rank =
        int32_t(std::lower_bound(distinct.begin(), distinct.end(), scores[id], std::greater<>()) - distinct.begin());
    // Every split of the token at a character boundary into two tokens is a merge into it.
    for (size_t cut = 0; cut < token.size();) {
      next_code_point(token, cut);
      if (cut >= token.size()) break;
      const int32_t a = token_to_id(std::string_view(token).substr(0, cut));
      const int32_t b = token_to_id(std::string_view(token).substr(cut));
      if (a >= 0 && b >= 0) merges_.emplace(pair_key(a, b), Merge{rank, int32_t(id)});
    }
  }
}

int32_t BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || size_t(id) >= id_to_token_.size() || id_to_token_[size_t(id)].empty()) return nullptr;
  return &id_to_token_[size_t(id)];
}

const BpeModel::Merge* BpeModel::find_merge(int32_t left, int32_t right) const {
  if (left < 0 || right < 0) return nullptr;
  auto it = merges_.find(pair_key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::initial_symbols(std::string_view word, std::vector<Symbol>& syms) const {
  syms.clear();
  if (byte_level_) {
    for (size_t i = 0; i < word.size(); ++i)
      syms.push_back({byte_ids_[static_cast<unsigned char>(word[i])], uint32_t(i), uint32_t(i + 1)});
    return;
  }
  for (size_t i = 0; i < word.size();) {
    const size_t begin = i;
    const char32_t cp = next_code_point(word, i);
    auto it = char_ids_.find(cp);
    syms.push_back({it == char_ids_.end() ? -1 : it->second, uint32_t(begin), uint32_t(i)});
  }
}

// Repeatedly merges the lowest-ranked adjacent pair (leftmost on ties): O(n^2), fast for short words.
void BpeModel::merge_small(std::vector<Symbol>& syms) const {
  std::vector<const Merge*> pair(syms.size());
  for (size_t i = 0; i + 1 < syms.size(); ++i) pair[i] = find_merge(syms[i].id, syms[i + 1].id);
  while (syms.size() > 1) {
    size_t best = SIZE_MAX;
    int32_t best_rank = INT32_MAX;
    for (size_t i = 0; i + 1 < syms.size(); ++i)
      if (pair[i] && pair[i]->rank < best_rank) best_rank = pair[i]->rank, best = i;
    if (best == SIZE_MAX) return;
    syms[best] = {pair[best]->id, syms[best].begin, syms[best + 1].end};
    syms.erase(syms.begin() + std::ptrdiff_t(best) + 1);
    pair.erase(pair.begin() + std::ptrdiff_t(best) + 1);
    if (best + 1 < syms.size())
      pair[best] = find_merge(syms[best].id, syms[best + 1].id);
    else
      pair[best] = nullptr;
    if (best > 0) pair[best - 1] = find_merge(syms[best - 1].id, syms[best].id);
  }
}

// The same order of merges with a priority queue over a linked list: O(n log n) for long words.
void BpeModel::merge_heap(std::vector<Symbol>& syms) const {
  struct Candidate {
    int32_t rank;
    uint32_t pos;
    int32_t left_id, right_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  const size_t n = syms.size();
  std::vector<int32_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (size_t i = 0; i < n; ++i) prev[i] = int32_t(i) - 1, next[i] = i + 1 < n ? int32_t(i + 1) : -1;
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto push = [&](int32_t i) {
    if (i < 0 || next[size_t(i)] < 0) return;
    const Symbol& a = syms[size_t(i)];
    const Symbol& b = syms[size_t(next[size_t(i)])];
    if (const Merge* m = find_merge(a.id, b.id)) queue.push({m->rank, uint32_t(i), a.id, b.id});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(int32_t(i));
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    const int32_t j = next[c.pos];
    if (!alive[c.pos] || j < 0 || syms[c.pos].id != c.left_id || syms[size_t(j)].id != c.right_id) continue;
    syms[c.pos] = {find_merge(c.left_id, c.right_id)->id, syms[c.pos].begin, syms[size_t(j)].end};
    alive[size_t(j)] = false;
    next[c.pos] = next[size_t(j)];
    if (next[c.pos] >= 0) prev[size_t(next[c.pos])] = int32_t(c.pos);
    push(prev[c.pos]);
    push(int32_t(c.pos));
  }
  std::vector<Symbol> out;
  for (int32_t i = 0; i >= 0; i = next[size_t(i)]) out.push_back(syms[size_t(i)]);
  syms.swap(out);
}

void BpeModel::emit(std::string_view word, const std::vector<Symbol>& syms, std::vector<int32_t>& out) const {
  bool last_unk = false;
  for (const Symbol& s : syms) {
    if (s.id >= 0) {
      out.push_back(s.id);
      last_unk = false;
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (uint32_t k = s.begin; k < s.end; ++k) all = all && fallback_ids_[static_cast<unsigned char>(word[k])] >= 0;
      if (all) {
        for (uint32_t k = s.begin; k < s.end; ++k) out.push_back(fallback_ids_[static_cast<unsigned char>(word[k])]);
        last_unk = false;
        continue;
      }
    }
    if (unk_id_ < 0)
      fail("tokenizer", "bytes {:?} are not in the vocabulary and the model has no unk_token",
           std::string(word.substr(s.begin, s.end - s.begin)));
    if (!(fuse_unk_ && last_unk)) out.push_back(unk_id_);
    last_unk = true;
  }
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const StringIdMap& map = byte_level_ ? word_vocab_ : vocab_;
    if (auto it = map.find(word); it != map.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  thread_local std::vector<Symbol> syms;
  initial_symbols(word, syms);
  if (syms.size() > kHeapMergeThreshold)
    merge_heap(syms);
  else
    merge_small(syms);
  const size_t first = out.size();
  emit(word, syms, out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + std::ptrdiff_t(first), out.end()));
  }
}

}  // namespace moe::tok
