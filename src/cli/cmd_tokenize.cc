// `moe tokenize` (text -> ids) and `moe detokenize` (ids -> text) with a model's own tokenizer
// (a tokenizer.json, or a model folder that contains one).
#include <fmt/format.h>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/command.h"
#include "cli/output.h"
#include "cli/run_common.h"
#include "io/paths.h"
#include "runtime/timer.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace moe::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer;
  std::string text;
  std::string text_file;
  bool add_special = false;
  bool stats = false;
};

struct DetokenizeOptions {
  std::string tokenizer;
  std::string ids;
  std::string ids_file;
  bool skip_special = false;
};

// CPU time of this thread: on a shared machine the wall clock also measures the neighbours.
double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

void run_tokenize(const TokenizeOptions& o, const GlobalOptions& global) {
  const std::string text = o.text_file.empty() ? o.text : read_input_file(o.text_file, "--text-file", "cli");
  const auto tok = load_tokenizer(o.tokenizer);
  Timer timer;
  const double cpu0 = thread_cpu_seconds();
  const std::vector<int32_t> ids = tok->encode(text, o.add_special);
  const double cpu_seconds = thread_cpu_seconds() - cpu0;
  const double seconds = timer.seconds();
  if (global.json) {
    nlohmann::ordered_json j;
    j["ids"] = ids;
    j["n_tokens"] = ids.size();
    j["n_bytes"] = text.size();
    j["encode_s"] = seconds;
    j["encode_cpu_s"] = cpu_seconds;
    j["mb_per_s"] = json_measured(seconds > 0 ? double(text.size()) / 1e6 / seconds : 0.0, seconds > 0);
    print_json_report(j);
    return;
  }
  fmt::print("{}\n", fmt::join(ids, ","));
  if (o.stats)
    std::fprintf(stderr, "moe tokenize: %zu bytes -> %zu tokens in %.3f s (%.1f MB/s); %s\n", text.size(), ids.size(),
                 seconds, seconds > 0 ? double(text.size()) / 1e6 / seconds : 0.0, tok->summary().c_str());
}

void run_detokenize(const DetokenizeOptions& o, const GlobalOptions& global) {
  if (o.ids.empty() && o.ids_file.empty()) fail_usage("cli", "give --ids or --ids-file");
  const std::vector<int32_t> ids = o.ids_file.empty() ? parse_ids(o.ids, "--ids") : read_ids_file(o.ids_file);
  const auto tok = load_tokenizer(o.tokenizer);
  const std::string text = tok->decode(ids, o.skip_special);
  if (global.json) {
    nlohmann::ordered_json j;
    j["text"] = text;
    j["n_tokens"] = ids.size();
    print_json_report(j);
    return;
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
}

}  // namespace

void register_tokenize(CLI::App& app, const GlobalOptions& global) {
  static TokenizeOptions t;
  auto* tok = app.add_subcommand("tokenize", "Text to token ids with a model's tokenizer (tokenizer.json)");
  tok->add_option("--tokenizer", t.tokenizer, "tokenizer.json, or a model folder that contains one")->required();
  auto* text = tok->add_option("--text", t.text, "Text to encode");
  auto* file = tok->add_option("--text-file", t.text_file, "File whose bytes (UTF-8) are encoded; - reads stdin");
  text->excludes(file);
  tok->add_flag("--add-special", t.add_special, "Add what the post-processor adds (e.g. BOS <s> for Llama 2)");
  tok->add_flag("--stats", t.stats, "Report bytes, tokens and encode speed on stderr (always in the JSON of --json)");
  tok->callback([&global, text, file] {
    if (text->count() == 0 && file->count() == 0) fail_usage("cli", "give --text or --text-file");
    run_tokenize(t, global);
  });

  static DetokenizeOptions d;
  auto* detok = app.add_subcommand("detokenize", "Token ids to text with a model's tokenizer (tokenizer.json)");
  detok->add_option("--tokenizer", d.tokenizer, "tokenizer.json, or a model folder that contains one")->required();
  auto* ids = detok->add_option("--ids", d.ids, "Token ids, e.g. 9707,11,1879");
  auto* ids_file = detok->add_option(
      "--ids-file", d.ids_file, "File of token ids (commas and/or whitespace, optionally a JSON array); - reads stdin");
  ids->excludes(ids_file);
  detok->add_flag("--skip-special", d.skip_special, "Drop special tokens from the text");
  detok->callback([&global] { run_detokenize(d, global); });
}

}  // namespace moe::cli
