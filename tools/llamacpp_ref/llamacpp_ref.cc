// llamacpp_ref: llama.cpp as a reference peer, through libllama's C API (no JavaScript layer): the tests
// and benchmarks run the same GGUF file through it and through moe. Built only when
// scripts/install-llamacpp.sh has installed the prebuilt library and its headers (.llamacpp/).
//   llamacpp_ref eval GGUF --ids 1,2,3 [--logits-out F] [--threads N]   all positions' logits, f32 [T, V]
//   (--kv-f32 with any command: an f32 KV cache instead of llama.cpp's default f16)
//   llamacpp_ref greedy GGUF --ids 1,2,3 -n N [--threads N]             greedy continuation (argmax)
//   llamacpp_ref tokenize GGUF --text S [--no-special] [--no-bos]        ids of S with the file's tokenizer
//   llamacpp_ref tokenize GGUF --texts-file F [--no-special] [--no-bos]  ids of many texts, one load: F holds
//                                                                         records "<byte length>\n<bytes>";
//                                                                         prints {"ids": [[...], ...]}
//   llamacpp_ref bench GGUF --prompt P --decode D [--threads N] [--reps R] [--depth K]
//                                                                         prefill and decode tokens/s
//   llamacpp_ref bench-parallel GGUF --streams B --prompt P --decode D [--threads N] [--reps R] [--kv-per-seq]
//       B sequences in one context (n_seq_max B): one llama_decode prefills the B prompts, then each of D steps
//       is one llama_decode of B tokens, one per sequence (argmax per sequence). Decode steps/s, aggregate
//       decode tokens/s (B per step) and prefill tokens/s, timed apart. The KV cache is unified, B*(P+D+8)
//       cells, or P+D+8 per sequence with --kv-per-seq. Decode runs at depth P: --streams 1 costs what
//       `bench --prompt P --depth P` costs
//   llamacpp_ref quantize GGUF --out F --ftype N [--threads N]          llama_model_quantize to llama_ftype N
//                                                                         (30: IQ4_XS), no importance matrix
// Output: one JSON object on stdout. Errors: a message on stderr and exit 1.
#include <llama.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <ggml-backend.h>

namespace {

struct Args {
  std::string cmd, model, text, logits_out, ids_text, texts_file, out;
  std::vector<int32_t> ids;
  int threads = 2, n = 0, prompt = 512, decode = 64, reps = 3, depth = 0, ctx = 0, streams = 1, ftype = -1;
  bool special = true, bos = true, kv_f32 = false, kv_per_seq = false;
  bool random_decode = false;  // bench: decode uniformly random tokens (varied routing) instead of the argmax
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "llamacpp_ref: %s\n", msg.c_str());
  std::exit(1);
}

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> out;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t comma = s.find(',', pos);
    const std::string tok = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    char* end = nullptr;
    const long id = std::strtol(tok.c_str(), &end, 10);
    if (!tok.empty() && (*end != '\0' || id < 0 || id > INT32_MAX))
      die("--ids expects comma-separated token ids, found '" + tok + "'");
    if (!tok.empty()) out.push_back(static_cast<int32_t>(id));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

Args parse(int argc, char** argv) {
  if (argc < 3) die("usage: llamacpp_ref eval|greedy|tokenize|bench|bench-parallel|quantize GGUF [options]");
  Args a;
  a.cmd = argv[1];
  a.model = argv[2];
  for (int i = 3; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + k);
      return argv[++i];
    };
    auto next_int = [&]() {  // a whole number, or a message naming the option (never an uncaught throw)
      const std::string v = next();
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < INT32_MIN || n > INT32_MAX)
        die(k + " expects an integer, found '" + v + "'");
      return static_cast<int>(n);
    };
    if (k == "--ids")
      a.ids = parse_ids(next());
    else if (k == "--text")
      a.text = next();
    else if (k == "--texts-file")
      a.texts_file = next();
    else if (k == "--logits-out")
      a.logits_out = next();
    else if (k == "--threads")
      a.threads = next_int();
    else if (k == "-n")
      a.n = next_int();
    else if (k == "--prompt")
      a.prompt = next_int();
    else if (k == "--decode")
      a.decode = next_int();
    else if (k == "--reps")
      a.reps = next_int();
    else if (k == "--depth")
      a.depth = next_int();
    else if (k == "--ctx")
      a.ctx = next_int();
    else if (k == "--streams")
      a.streams = next_int();
    else if (k == "--out")
      a.out = next();
    else if (k == "--ftype")
      a.ftype = next_int();
    else if (k == "--kv-per-seq")
      a.kv_per_seq = true;
    else if (k == "--random-decode")
      a.random_decode = true;
    else if (k == "--no-special")
      a.special = false;
    else if (k == "--no-bos")
      a.bos = false;
    else if (k == "--kv-f32")
      a.kv_f32 = true;
    else
      die("unknown option " + k);
  }
  return a;
}

void quiet_log(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

struct Model {
  llama_model* model = nullptr;
  llama_context* ctx = nullptr;
  const llama_vocab* vocab = nullptr;
  int n_vocab = 0;
  double load_s = 0;
  ~Model() {
    if (ctx) llama_free(ctx);
    if (model) llama_model_free(model);
  }
};

// The context's shape: cells, the largest llama_decode (n_batch) and compute step (n_ubatch), sequences.
struct ContextShape {
  int n_ctx = 0, n_batch = 0, n_ubatch = 0, n_seq_max = 1;
  bool kv_unified = false;
};

ContextShape single_sequence(int n_ctx) { return {n_ctx, std::max(n_ctx, 1), std::max(n_ctx, 1), 1, false}; }

void open_model(Model& m, const Args& a, bool vocab_only, const ContextShape& shape) {
  const auto t0 = std::chrono::steady_clock::now();
  llama_model_params mp = llama_model_default_params();
  mp.vocab_only = vocab_only;
  m.model = llama_model_load_from_file(a.model.c_str(), mp);
  if (!m.model) die("llama.cpp could not load " + a.model);
  m.vocab = llama_model_get_vocab(m.model);
  m.n_vocab = llama_vocab_n_tokens(m.vocab);
  if (vocab_only) return;
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = static_cast<uint32_t>(shape.n_ctx);
  cp.n_batch = static_cast<uint32_t>(shape.n_batch);
  cp.n_ubatch = static_cast<uint32_t>(shape.n_ubatch);
  cp.n_seq_max = static_cast<uint32_t>(shape.n_seq_max);
  cp.kv_unified = shape.kv_unified;
  cp.n_threads = cp.n_threads_batch = a.threads;
  cp.no_perf = true;
  if (a.kv_f32) cp.type_k = cp.type_v = GGML_TYPE_F32;  // accuracy comparisons: no f16 rounding of K and V
  m.ctx = llama_init_from_model(m.model, cp);
  if (!m.ctx) die("llama.cpp could not create a context for " + a.model);
  m.load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs tokens [0, n) of ids at positions past..past+n-1 (all logits kept when `all`).
void decode(Model& m, const std::vector<int32_t>& ids, int past, bool all) {
  llama_batch b = llama_batch_init(static_cast<int32_t>(ids.size()), 0, 1);
  for (size_t i = 0; i < ids.size(); ++i) {
    b.token[i] = ids[i];
    b.pos[i] = past + static_cast<int32_t>(i);
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = 0;
    b.logits[i] = all || i + 1 == ids.size();
  }
  b.n_tokens = static_cast<int32_t>(ids.size());
  const int rc = llama_decode(m.ctx, b);
  llama_batch_free(b);
  if (rc != 0) die("llama_decode failed with " + std::to_string(rc));
}

int argmax(const float* v, int n) { return static_cast<int>(std::max_element(v, v + n) - v); }

int cmd_eval(const Args& a) {
  if (a.ids.empty()) die("eval needs --ids");
  Model m;
  open_model(m, a, false, single_sequence(static_cast<int>(a.ids.size())));
  decode(m, a.ids, 0, true);
  std::vector<float> logits;
  for (size_t i = 0; i < a.ids.size(); ++i) {
    const float* row = llama_get_logits_ith(m.ctx, static_cast<int32_t>(i));
    logits.insert(logits.end(), row, row + m.n_vocab);
  }
  if (!a.logits_out.empty()) {
    std::ofstream out(a.logits_out, std::ios::binary);
    out.write(reinterpret_cast<const char*>(logits.data()), static_cast<std::streamsize>(logits.size() * 4));
    if (!out) die("cannot write " + a.logits_out);
  }
  std::printf("{\"tokens\": %zu, \"vocab\": %d, \"argmax_last\": %d}\n", a.ids.size(), m.n_vocab,
              argmax(logits.data() + (a.ids.size() - 1) * m.n_vocab, m.n_vocab));
  return 0;
}

int cmd_greedy(const Args& a) {
  if (a.ids.empty() || a.n < 1) die("greedy needs --ids and -n");
  Model m;
  open_model(m, a, false, single_sequence(static_cast<int>(a.ids.size()) + a.n));
  decode(m, a.ids, 0, false);
  std::vector<int32_t> out;
  int past = static_cast<int>(a.ids.size());
  for (int s = 0; s < a.n; ++s) {
    const int next = argmax(llama_get_logits_ith(m.ctx, -1), m.n_vocab);
    out.push_back(next);
    if (s + 1 < a.n) decode(m, {next}, past++, false);
  }
  std::printf("{\"greedy_ids\": [");
  for (size_t i = 0; i < out.size(); ++i) std::printf("%s%d", i ? ", " : "", out[i]);
  std::printf("]}\n");
  return 0;
}

std::vector<llama_token> tokenize(const Model& m, const std::string& text, const Args& a) {
  std::vector<llama_token> ids(text.size() + 16);
  int n = llama_tokenize(m.vocab, text.data(), static_cast<int32_t>(text.size()), ids.data(),
                         static_cast<int32_t>(ids.size()), a.bos, a.special);
  if (n < 0) {
    ids.resize(static_cast<size_t>(-n));
    n = llama_tokenize(m.vocab, text.data(), static_cast<int32_t>(text.size()), ids.data(),
                       static_cast<int32_t>(ids.size()), a.bos, a.special);
  }
  ids.resize(static_cast<size_t>(std::max(n, 0)));
  return ids;
}

// Records "<byte length>\n<bytes>", one per text.
std::vector<std::string> read_texts(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) die("cannot open " + path);
  std::vector<std::string> texts;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::string text(static_cast<size_t>(std::stoull(line)), '\0');
    if (!in.read(text.data(), static_cast<std::streamsize>(text.size()))) die("truncated record in " + path);
    texts.push_back(std::move(text));
  }
  return texts;
}

void print_ids(const std::vector<llama_token>& ids) {
  std::printf("[");
  for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? ", " : "", ids[i]);
  std::printf("]");
}

int cmd_tokenize(const Args& a) {
  Model m;
  open_model(m, a, true, {});
  std::printf("{\"ids\": ");
  if (a.texts_file.empty()) {
    print_ids(tokenize(m, a.text, a));
  } else {
    const std::vector<std::string> texts = read_texts(a.texts_file);
    std::printf("[");
    for (size_t i = 0; i < texts.size(); ++i) {
      std::printf("%s", i ? ",\n" : "");
      print_ids(tokenize(m, texts[i], a));
    }
    std::printf("]");
  }
  std::printf("}\n");
  return 0;
}

double peak_rss_gb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) * 1024.0 * 1e-9;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Prefill `prompt` tokens, then `decode` single tokens after `depth` cached ones; medians over reps.
int cmd_bench(const Args& a) {
  Model m;
  open_model(m, a, false, single_sequence(std::max(a.prompt, a.depth) + a.decode + 8));
  std::vector<int32_t> prompt(static_cast<size_t>(a.prompt)), filler(static_cast<size_t>(a.depth));
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 13) % size_t(m.n_vocab));
  for (size_t i = 0; i < filler.size(); ++i) filler[i] = static_cast<int32_t>((i * 104729 + 7) % size_t(m.n_vocab));
  std::vector<double> pp, tg;
  for (int r = 0; r < a.reps; ++r) {
    llama_memory_clear(llama_get_memory(m.ctx), true);
    auto t0 = std::chrono::steady_clock::now();
    decode(m, prompt, 0, false);
    pp.push_back(a.prompt / seconds_since(t0));
    llama_memory_clear(llama_get_memory(m.ctx), true);
    int past = 0;
    if (a.depth > 0) {
      decode(m, filler, 0, false);
      past = a.depth;
    }
    int tok = 1;
    uint64_t rng = 88172645463325252ull + uint64_t(r);  // xorshift64 for --random-decode
    t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < a.decode; ++s) {
      decode(m, {tok}, past++, false);
      if (a.random_decode) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        tok = static_cast<int>(rng % uint64_t(m.n_vocab));
      } else {
        tok = argmax(llama_get_logits_ith(m.ctx, -1), m.n_vocab);
      }
    }
    tg.push_back(a.decode / seconds_since(t0));
  }
  std::printf(
      "{\"prefill_tokens_per_s\": %.3f, \"decode_tokens_per_s\": %.3f, \"load_s\": %.3f, \"peak_rss_gb\": %.3f, "
      "\"prompt\": %d, \"decode\": %d, \"depth\": %d, \"threads\": %d}\n",
      median(pp), median(tg), m.load_s, peak_rss_gb(), a.prompt, a.decode, a.depth, a.threads);
  return 0;
}

// A batch of tokens, each in one sequence, filled with add() and handed to llama_decode.
class SeqBatch {
 public:
  explicit SeqBatch(int capacity) : b_(llama_batch_init(capacity, 0, 1)) {}
  ~SeqBatch() { llama_batch_free(b_); }
  SeqBatch(const SeqBatch&) = delete;
  SeqBatch& operator=(const SeqBatch&) = delete;
  void clear() { b_.n_tokens = 0; }
  void add(int32_t token, int32_t pos, int32_t seq, bool logits) {
    const int i = b_.n_tokens++;
    b_.token[i] = token;
    b_.pos[i] = pos;
    b_.n_seq_id[i] = 1;
    b_.seq_id[i][0] = seq;
    b_.logits[i] = logits;
  }
  void run(llama_context* ctx) const {
    const int rc = llama_decode(ctx, b_);
    if (rc == 1) die("llama_decode found no KV cache slot for " + std::to_string(b_.n_tokens) + " tokens");
    if (rc != 0) die("llama_decode failed with " + std::to_string(rc));
  }

 private:
  llama_batch b_;
};

// B streams in one context: one llama_decode prefills all B prompts (split into ubatches of at most P tokens,
// the compute step of `bench`), then each decode step is one llama_decode of B tokens, one per sequence, each
// followed by its own argmax. Prefill and decode are timed apart; medians over reps.
int cmd_bench_parallel(const Args& a) {
  const int n_streams = a.streams, n_prompt = a.prompt, n_decode = a.decode;
  if (n_streams < 1 || n_prompt < 1 || n_decode < 1 || a.reps < 1)
    die("bench-parallel needs --streams, --prompt, --decode and --reps of at least 1");
  const int per_seq = n_prompt + n_decode + 8;
  Model m;
  open_model(m, a, false,
             {n_streams * per_seq, n_streams * n_prompt, std::max(n_prompt, n_streams), n_streams, !a.kv_per_seq});
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(n_streams));
  for (size_t s = 0; s < prompts.size(); ++s)
    for (size_t i = 0; i < size_t(n_prompt); ++i)
      prompts[s].push_back(static_cast<int32_t>((i * 7919 + 13 + s * 104729) % size_t(m.n_vocab)));
  SeqBatch prefill(n_streams * n_prompt), step(n_streams);
  std::vector<int32_t> next(static_cast<size_t>(n_streams));
  std::vector<double> pp, steps;
  for (int r = 0; r < a.reps; ++r) {
    llama_memory_clear(llama_get_memory(m.ctx), true);
    prefill.clear();
    for (int s = 0; s < n_streams; ++s)
      for (int i = 0; i < n_prompt; ++i) prefill.add(prompts[size_t(s)][size_t(i)], i, s, i + 1 == n_prompt);
    auto t0 = std::chrono::steady_clock::now();
    prefill.run(m.ctx);
    for (int s = 0; s < n_streams; ++s)  // stream s's output: its last prompt token, batch row s*P + P-1
      next[size_t(s)] = argmax(llama_get_logits_ith(m.ctx, s * n_prompt + n_prompt - 1), m.n_vocab);
    pp.push_back(double(n_streams) * n_prompt / seconds_since(t0));
    t0 = std::chrono::steady_clock::now();
    for (int d = 0; d < n_decode; ++d) {
      step.clear();
      for (int s = 0; s < n_streams; ++s) step.add(next[size_t(s)], n_prompt + d, s, true);
      step.run(m.ctx);
      for (int s = 0; s < n_streams; ++s) next[size_t(s)] = argmax(llama_get_logits_ith(m.ctx, s), m.n_vocab);
    }
    steps.push_back(n_decode / seconds_since(t0));
  }
  const double steps_per_s = median(steps);
  std::printf(
      "{\"streams\": %d, \"decode_steps_per_s\": %.3f, \"aggregate_decode_tokens_per_s\": %.3f, "
      "\"prefill_tokens_per_s\": %.3f, \"prompt\": %d, \"decode\": %d, \"threads\": %d, \"load_s\": %.3f, "
      "\"peak_rss_gb\": %.3f, \"reps\": %d, \"kv_unified\": %s}\n",
      n_streams, steps_per_s, steps_per_s * n_streams, median(pp), n_prompt, n_decode, a.threads, m.load_s,
      peak_rss_gb(), a.reps, a.kv_per_seq ? "false" : "true");
  return 0;
}

// llama.cpp's own quantizer (llama-quantize's library call): GGUF -> --out at llama_ftype --ftype, its
// per-tensor type choices included, so tests can read files llama.cpp wrote.
int cmd_quantize(const Args& a) {
  if (a.out.empty() || a.ftype < 0) die("quantize needs --out FILE and --ftype N");
  llama_model_quantize_params p = llama_model_quantize_default_params();
  p.nthread = a.threads;
  p.ftype = static_cast<llama_ftype>(a.ftype);
  if (llama_model_quantize(a.model.c_str(), a.out.c_str(), &p) != 0) die("llama_model_quantize failed on " + a.model);
  std::printf("{\"out\": \"%s\", \"ftype\": %d}\n", a.out.c_str(), a.ftype);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  llama_log_set(quiet_log, nullptr);
#ifdef MOE_LLAMACPP_LIB_DIR
  ggml_backend_load_all_from_path(MOE_LLAMACPP_LIB_DIR);
#endif
  llama_backend_init();
  try {
    if (a.cmd == "eval") return cmd_eval(a);
    if (a.cmd == "greedy") return cmd_greedy(a);
    if (a.cmd == "tokenize") return cmd_tokenize(a);
    if (a.cmd == "bench") return cmd_bench(a);
    if (a.cmd == "bench-parallel") return cmd_bench_parallel(a);
    if (a.cmd == "quantize") return cmd_quantize(a);
  } catch (const std::exception& e) {
    die(e.what());
  }
  die("unknown command " + a.cmd);
}
