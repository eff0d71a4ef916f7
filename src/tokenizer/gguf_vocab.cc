// A Tokenizer from a GGUF file's tokenizer.ggml.* metadata, with llama.cpp's semantics: control,
// user-defined and unknown tokens are matched in the text first; "gpt2" splits each remaining section
// with the named pre-tokenizer's regexes and runs byte-level BPE on the listed merges; "llama" escapes
// spaces as U+2581 (with a space prefix) and merges the adjacent pair whose token scores highest, with
// <0xXX> byte tokens for characters that are not tokens.
#include "tokenizer/gguf_vocab.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "tokenizer/gguf_pre.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace moe {
namespace {

using nlohmann::json;

const char* const kMetaspace = "\xE2\x96\x81";  // U+2581

// Typed access to the tokenizer keys; every problem is a [tokenizer] error naming the file and key.
class Meta {
 public:
  explicit Meta(const GgufFile& f) : f_(f) {}
  const std::string& path() const { return f_.path(); }

  template <typename... Args>
  [[noreturn]] void bad(const std::string& key, fmt::format_string<Args...> what, Args&&... args) const {
    fail("tokenizer", "{}: {}: {}", f_.path(), key, fmt::format(what, std::forward<Args>(args)...));
  }
  std::optional<std::string> str(const std::string& key) const {
    const GgufValue* v = f_.find(key);
    if (!v) return std::nullopt;
    if (v->type != GgufType::kString) bad(key, "expected a string, found {}", gguf_type_name(v->type));
    return v->s;
  }
  std::optional<bool> boolean(const std::string& key) const {
    const GgufValue* v = f_.find(key);
    if (!v) return std::nullopt;
    if (v->type != GgufType::kBool) bad(key, "expected a bool, found {}", gguf_type_name(v->type));
    return v->i != 0;
  }
  // A token id: an integer below n_tokens.
  std::optional<int32_t> id(const std::string& key, size_t n_tokens) const {
    const GgufValue* v = f_.find(key);
    if (!v) return std::nullopt;
    if (!v->is_integer() || v->type == GgufType::kBool)
      bad(key, "expected an integer token id, found {}", gguf_type_name(v->type));
    const bool is_unsigned =
        v->type == GgufType::kU8 || v->type == GgufType::kU16 || v->type == GgufType::kU32 || v->type == GgufType::kU64;
    const int64_t x = is_unsigned ? (v->u > uint64_t(INT64_MAX) ? -1 : int64_t(v->u)) : v->i;
    if (x < 0 || uint64_t(x) >= n_tokens)
      bad(key, "expected a token id below {} (the length of tokenizer.ggml.tokens), found {}", n_tokens,
          is_unsigned ? fmt::format("{}", v->u) : fmt::format("{}", v->i));
    return int32_t(x);
  }
  const std::vector<std::string>& strings(const std::string& key, const char* what) const {
    const GgufValue* v = f_.find(key);
    if (!v) bad(key, "missing ({})", what);
    if (v->type != GgufType::kArray || v->elem != GgufType::kString)
      bad(key, "expected an array of strings, found {}", describe(*v));
    return v->strs;
  }
  // A numeric array of exactly n elements of one of the allowed element types; empty when absent.
  std::vector<double> numbers(const std::string& key, size_t n, std::initializer_list<GgufType> allowed) const {
    const GgufValue* v = f_.find(key);
    if (!v) return {};
    bool ok = v->type == GgufType::kArray;
    if (ok) {
      ok = false;
      for (GgufType t : allowed) ok = ok || v->elem == t;
    }
    if (!ok) bad(key, "expected an array of {}, found {}", gguf_type_name(*allowed.begin()), describe(*v));
    if (v->array_size() != n)
      bad(key, "expected {} values (one per token of tokenizer.ggml.tokens), found {}", n, v->array_size());
    std::vector<double> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = v->number_at(i);
    return out;
  }

 private:
  static std::string describe(const GgufValue& v) {
    return v.type == GgufType::kArray ? fmt::format("an array of {}", gguf_type_name(v.elem))
                                      : std::string(gguf_type_name(v.type));
  }
  const GgufFile& f_;
};

// The token list: valid UTF-8, distinct; empty entries renamed "[EMPTY_i]" as llama.cpp does.
std::vector<std::string> read_tokens(const Meta& meta) {
  const std::string key = "tokenizer.ggml.tokens";
  std::vector<std::string> tokens = meta.strings(key, "the vocabulary: one string per token id");
  if (tokens.empty()) meta.bad(key, "expected at least one token, found an empty array");
  std::unordered_map<std::string, size_t> seen;
  seen.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].empty()) tokens[i] = fmt::format("[EMPTY_{}]", i);
    if (const size_t bad = tok::find_invalid_utf8(tokens[i]); bad != std::string::npos)
      meta.bad(fmt::format("{}[{}]", key, i), "not valid UTF-8 (byte 0x{:02X} at offset {})",
               static_cast<unsigned char>(tokens[i][bad]), bad);
    if (auto [it, fresh] = seen.emplace(tokens[i], i); !fresh)
      meta.bad(fmt::format("{}[{}]", key, i), "{:?} repeats token {}", tokens[i], it->second);
  }
  return tokens;
}

std::vector<GgufTokenType> read_types(const Meta& meta, size_t n) {
  const std::string key = "tokenizer.ggml.token_type";
  const std::vector<double> raw = meta.numbers(key, n, {GgufType::kI32});
  std::vector<GgufTokenType> types(n, GgufTokenType::kNormal);
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] < 0 || raw[i] > 6)
      meta.bad(fmt::format("{}[{}]", key, i),
               "expected a token type 0-6 (1 normal, 2 unknown, 3 control, 4 "
               "user-defined, 5 unused, 6 byte), found {}",
               raw[i]);
    types[i] = GgufTokenType(int32_t(raw[i]));
  }
  return types;
}

// Merges "left right": the separator is the first space after the first character (a token may start
// with a space), as llama.cpp splits them.
std::vector<std::pair<std::string, std::string>> read_merges(const Meta& meta) {
  const std::string key = "tokenizer.ggml.merges";
  const std::vector<std::string>& list = meta.strings(key, "byte-level BPE needs its merges, \"left right\"");
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const size_t space = list[i].find(' ', 1);
    if (space == std::string::npos)
      meta.bad(fmt::format("{}[{}]", key, i), "expected \"left right\", found {:?}", list[i]);
    merges.emplace_back(list[i].substr(0, space), list[i].substr(space + 1));
  }
  return merges;
}

struct Flags {
  bool add_bos = false, add_eos = false, add_space_prefix = false;
};

// Special ids and the add_* flags, with llama.cpp's defaults for the model.
Flags read_specials(const Meta& meta, Tokenizer::Impl& m, bool spm, bool pre_add_bos, size_t n) {
  const auto default_id = [&](int32_t id) { return spm && size_t(id) < n ? std::optional<int32_t>(id) : std::nullopt; };
  m.bos = meta.id("tokenizer.ggml.bos_token_id", n);
  if (!m.bos) m.bos = default_id(1);
  m.eos = meta.id("tokenizer.ggml.eos_token_id", n);
  if (!m.eos) m.eos = default_id(2);
  m.unk = meta.id("tokenizer.ggml.unknown_token_id", n);
  if (!m.unk) m.unk = default_id(0);
  m.pad = meta.id("tokenizer.ggml.padding_token_id", n);
  Flags f;
  f.add_bos = meta.boolean("tokenizer.ggml.add_bos_token").value_or(spm || pre_add_bos);
  f.add_eos = meta.boolean("tokenizer.ggml.add_eos_token").value_or(false);
  f.add_space_prefix = meta.boolean("tokenizer.ggml.add_space_prefix").value_or(spm);
  if (f.add_bos && !m.bos)
    meta.bad("tokenizer.ggml.bos_token_id", "missing, but add_bos_token is true (explicitly or by default)");
  if (f.add_eos && !m.eos) meta.bad("tokenizer.ggml.eos_token_id", "missing, but add_eos_token is true");
  if (f.add_bos) m.post_processor.prefix = {*m.bos};
  if (f.add_eos) m.post_processor.suffix = {*m.eos};
  m.post_processor.name = "gguf";
  return f;
}

// The regex splits of the named pre-tokenizer, then the byte-level mapping.
json byte_level_pre_tokenizer(const tok::GgufPreTokenizer& pre) {
  json steps = json::array();
  for (const std::string& r : pre.regexes)
    steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", r}}}, {"behavior", "Isolated"}});
  steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}});
  return {{"type", "Sequence"}, {"pretokenizers", steps}};
}

std::unique_ptr<Tokenizer> no_vocabulary(const Meta& meta, const GgufFile& file, std::unique_ptr<Tokenizer::Impl> m) {
  m->no_model_reason = fmt::format(
      "{}: tokenizer.ggml.model is \"none\": the file carries no vocabulary, so it cannot encode or decode text "
      "(take the tokenizer from the original model folder)",
      meta.path());
  if (auto arch = file.find("general.architecture"); arch && arch->type == GgufType::kString)
    if (auto n = file.find(arch->s + ".vocab_size"); n && n->is_integer())
      m->declared_vocab_size = size_t(n->type == GgufType::kU32 || n->type == GgufType::kU64 ? n->u : n->i);
  m->description =
      fmt::format("GGUF without a vocabulary (tokenizer.ggml.model \"none\"), vocab size {}", m->declared_vocab_size);
  return std::make_unique<Tokenizer>(std::move(m));
}

}  // namespace

bool is_gguf_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string_view(magic, 4) == "GGUF";
}

std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufFile& file) {
  const Meta meta(file);
  auto m = std::make_unique<Tokenizer::Impl>();
  m->path = file.path();
  if (auto t = meta.str("tokenizer.chat_template")) m->chat_template = *t;
  const std::optional<std::string> model = meta.str("tokenizer.ggml.model");
  if (!model) meta.bad("tokenizer.ggml.model", "missing (expected \"gpt2\", \"llama\" or \"none\")");
  if (*model == "none" || *model == "no_vocab") return no_vocabulary(meta, file, std::move(m));
  if (*model != "gpt2" && *model != "llama")
    meta.bad("tokenizer.ggml.model",
             "{:?} is not supported (supported: \"gpt2\" byte-level BPE, \"llama\" SentencePiece BPE, \"none\")",
             *model);
  const bool spm = *model == "llama";
  const std::vector<std::string> tokens = read_tokens(meta);
  const size_t n = tokens.size();
  const std::vector<GgufTokenType> types = read_types(meta, n);

  const tok::GgufPreTokenizer* pre = nullptr;
  const std::string pre_name = meta.str("tokenizer.ggml.pre").value_or("default");
  if (!spm) {
    pre = tok::find_gguf_pre(pre_name);
    if (!pre)
      meta.bad("tokenizer.ggml.pre", "{:?} is not a supported pre-tokenizer (supported: {})", pre_name,
               tok::gguf_pre_names());
  }
  const Flags flags = read_specials(meta, *m, spm, pre && pre->add_bos, n);
  const std::string where = meta.path() + ": tokenizer.ggml";
  tok::BpeOptions options;
  options.byte_level = !spm;
  options.byte_fallback = spm;
  options.ignore_merges = pre && pre->ignore_merges;
  options.unk_id = spm && m->unk ? *m->unk : -1;
  m->model = std::make_unique<tok::BpeModel>(tokens, options);
  if (spm) {
    const std::vector<double> raw = meta.numbers("tokenizer.ggml.scores", n, {GgufType::kF32, GgufType::kI32});
    if (raw.empty()) meta.bad("tokenizer.ggml.scores", "missing (SentencePiece merges the highest-scoring pair first)");
    m->model->ranks_from_scores(std::vector<float>(raw.begin(), raw.end()));
    json steps = json::array();
    if (flags.add_space_prefix) steps.push_back({{"type", "Prepend"}, {"prepend", kMetaspace}});
    steps.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kMetaspace}});
    m->normalizer.parse({{"type", "Sequence"}, {"normalizers", steps}}, where);
    json decoders = {{{"type", "Replace"}, {"pattern", {{"String", kMetaspace}}}, {"content", " "}},
                     {{"type", "ByteFallback"}},
                     {{"type", "Fuse"}}};
    if (flags.add_space_prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    m->decoder.parse({{"type", "Sequence"}, {"decoders", decoders}}, where);
  } else {
    m->model->add_merges(read_merges(meta), meta.path(), "tokenizer.ggml.merges");
    m->pre_tokenizer.parse(byte_level_pre_tokenizer(*pre), where + ".pre");
    m->decoder.parse({{"type", "ByteLevel"}}, where);
  }
  for (size_t i = 0; i < n; ++i)
    if (types[i] == GgufTokenType::kControl || types[i] == GgufTokenType::kUserDefined ||
        types[i] == GgufTokenType::kUnknown)
      m->add_token({tokens[i], int32_t(i), types[i] != GgufTokenType::kUserDefined, false, false});
  m->description = spm ? "GGUF llama (SentencePiece), " : fmt::format("GGUF gpt2 (pre {}), ", pre_name);
  return std::make_unique<Tokenizer>(std::move(m));
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path) {
  return tokenizer_from_gguf(GgufFile::open(path));
}

}  // namespace moe
