// `moe eval` (score token ids: cross-entropy, logits out) and `moe run` (generate text, stream it,
// then print the activation report of what sparse activation really cost).
#include <fmt/format.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>

#include "chat/chat_session.h"
#include "cli/command.h"
#include "cli/dump_hidden_args.h"
#include "cli/flags.h"
#include "cli/offload_args.h"
#include "cli/output.h"
#include "cli/run_common.h"
#include "cli/sampling_args.h"
#include "io/paths.h"
#include "io/safetensors.h"
#include "kernels/ceilings.h"
#include "model/generate.h"
#include "model/generation_config.h"
#include "model/logit_compare.h"
#include "model/perplexity.h"
#include "model/run_report.h"
#include "model/sampler.h"
#include "runtime/timer.h"
#include "spec/tensor_registry.h"
#include "tokenizer/text_stream.h"
#include "util/error.h"

namespace moe::cli {
namespace {

constexpr int64_t kMaxRunTokens = int64_t{1} << 24;  // prompt + generated tokens one KV cache holds

struct EvalArgs {
  std::string model, ids, ids_file, text_file, logits_out, kl_base;
  std::string dump_hidden;  // --dump-hidden DIR
  int64_t context = 0;      // -c: window length; 0 = the whole text in one pass
  int64_t stride = 0;       // window start every this many tokens; 0 = context (separate chunks)
  bool per_token = false;   // print every prediction's cross-entropy
  parallel::EpArgs ep;
  OffloadArgs offload;
};

struct RunArgs {
  std::string model, prompt, prompt_file, prompt_ids, trace;
  bool chat = false;  // --prompt is one user message, rendered with the chat template
  std::string system, chat_template;
  int64_t max_new_tokens = 64;
  int64_t context = 0;  // 0: prompt + max_new_tokens
  SamplingArgs sampling;
  std::string stop_ids;
  bool no_ceiling = false;
  bool quiet = false;
  parallel::EpArgs ep;
  OffloadArgs offload;
};

std::vector<int32_t> eval_ids(const EvalArgs& a, const std::string& model_dir, const ModelSpec& spec) {
  const int given = !a.ids.empty() + !a.ids_file.empty() + !a.text_file.empty();
  if (given != 1) fail_usage("eval", "give exactly one of --ids, --ids-file, --text-file");
  if (!a.ids.empty()) return parse_ids(a.ids, "--ids");
  if (!a.ids_file.empty()) return read_ids_file(a.ids_file);
  const std::string text = read_input_file(a.text_file, "--text-file", "eval");
  auto tok = find_tokenizer(model_dir, spec);
  if (!tok && spec.vocab != 256) fail("eval", "{}: no tokenizer.json in the model folder for --text-file", model_dir);
  return encode_text(tok.get(), text);
}

// Rank 0's EP section (text or the "ep" JSON key); empty for one process. Collective.
std::optional<parallel::EpReport> ep_report(const RankedModel& m) {
  if (!m.hook) return std::nullopt;
  return parallel::gather_ep_report(*m.hook);
}

// What `moe eval` measured: one pass over the whole text (logits kept), or windows (--context).
struct EvalScores {
  int64_t tokens = 0, scored = 0, forwarded = 0, windows = 1;
  double mean_nll = 0;
  std::vector<double> nll;    // per token (the whole-text pass, or windows with --per-token)
  std::vector<float> logits;  // [T, V], the whole-text pass only
};

// Windowed evals show their progress (windows) on a terminal, on rank 0 only.
EvalScores score(const EvalArgs& a, Decoder& dec, const std::vector<int32_t>& ids, const GlobalOptions& global,
                 bool root) {
  EvalScores s;
  s.tokens = static_cast<int64_t>(ids.size());
  if (a.context == 0) {
    EvalResult r = evaluate(dec, ids);
    s.scored = s.tokens - 1;
    s.forwarded = s.tokens;
    s.mean_nll = r.mean_nll;
    s.nll = std::move(r.nll);
    s.logits = std::move(r.logits);
    return s;
  }
  const int64_t stride = a.stride > 0 ? a.stride : a.context;
  Progress progress("eval", root, global);
  std::function<void(int64_t, int64_t)> on_window;
  if (progress.active())
    on_window = [&](int64_t done, int64_t total) { progress.update(double(done), double(total), "windows"); };
  WindowedEvalResult r = evaluate_windows(dec, ids, a.context, stride, a.per_token, on_window);
  progress.done();
  s.scored = r.scored;
  s.forwarded = r.forwarded;
  s.windows = r.windows;
  s.mean_nll = r.mean_nll;
  s.nll = std::move(r.nll);
  return s;
}

// Flags that need the whole text's logits, or --stride without --context: usage errors.
void check_eval_args(const EvalArgs& a, const std::string& dir) {
  if (a.stride > 0 && a.context == 0)
    fail_usage("eval", "--stride {} needs -c/--context (the window length)", a.stride);
  if (a.stride > a.context) {
    fail_usage("eval", "--stride {} exceeds --context {}: the tokens between windows would not be scored", a.stride,
               a.context);
  }
  if (a.context > 0 && !a.logits_out.empty()) {
    fail_usage("eval",
               "--logits-out writes the logits [T, V] of one pass over the whole text; it cannot be combined "
               "with -c/--context (windows)");
  }
  if (a.context > 0 && !a.kl_base.empty()) {
    fail_usage("eval",
               "--kl-base compares the logits of one pass over the whole text; it cannot be combined with "
               "-c/--context (windows)");
  }
  if (!a.logits_out.empty()) {
    check_output_file(a.logits_out, "--logits-out", {dir, a.ids_file, a.text_file, a.kl_base}, "eval");
  }
  if (!a.kl_base.empty()) require_input_file(a.kl_base, "--kl-base", "eval");
}

std::optional<LogitComparison> compare_with_base(const EvalArgs& a, const std::vector<float>& logits, int64_t T,
                                                 int64_t V) {
  if (a.kl_base.empty()) return std::nullopt;
  std::ifstream in(a.kl_base, std::ios::binary);
  std::vector<float> base(logits.size());
  in.read(reinterpret_cast<char*>(base.data()), static_cast<std::streamsize>(base.size() * sizeof(float)));
  if (!in || in.peek() != std::char_traits<char>::eof()) {
    fail("eval", "{}: --kl-base: expected {} bytes of f32 logits [{}, {}] (a --logits-out of the same ids)", a.kl_base,
         base.size() * sizeof(float), T, V);
  }
  return compare_logits(base, logits, V);
}

void print_eval_text(const EvalArgs& a, const std::string& dir, const Decoder& dec, const EvalScores& s,
                     const std::optional<LogitComparison>& kl) {
  fmt::print("model {}: {} tokens, vocab {}\n", dir, s.tokens, dec.spec().vocab);
  fmt::print("{}", offload_text(dec, s.forwarded));
  fmt::print("mean cross-entropy of the next token: {:.6f} nats (perplexity {:.3f}) over {} predictions\n", s.mean_nll,
             std::exp(s.mean_nll), s.scored);
  if (a.context > 0) {
    fmt::print("{} windows of up to {} tokens, stride {}\n", s.windows, a.context, a.stride > 0 ? a.stride : a.context);
  }
  if (!a.logits_out.empty())
    fmt::print("logits [{}, {}] f32 written to {}\n", s.tokens, dec.spec().vocab, a.logits_out);
  if (kl) {
    fmt::print("against {}: KL mean {:.6f}, median {:.6f}, max {:.6f} nats; same top token {:.2f}%; RMS dp {:.6f}\n",
               a.kl_base, kl->mean_kl, kl->median_kl, kl->max_kl, 100.0 * kl->top1_agreement, kl->rms_dp);
  }
  if (a.per_token) {
    for (size_t i = 0; i < s.nll.size(); ++i) fmt::print("{}{:.6f}", i ? " " : "per-token: ", s.nll[i]);
    fmt::print("\n");
  }
}

// docs/CLI.md: the same keys whatever the flags (null where they do not apply); cross_entropy only
// with --per-token, ep only under --ep.
nlohmann::ordered_json eval_json(const EvalArgs& a, const std::string& dir, const Decoder& dec, const EvalScores& s,
                                 double seconds, const std::optional<LogitComparison>& kl) {
  const bool windowed = a.context > 0;
  nlohmann::ordered_json j{{"model", dir},
                           {"n_tokens", s.tokens},
                           {"vocab", dec.spec().vocab},
                           {"scored", s.scored},
                           {"windows", s.windows},
                           {"context", windowed ? nlohmann::ordered_json(a.context) : nullptr},
                           {"stride", windowed ? nlohmann::ordered_json(a.stride > 0 ? a.stride : a.context) : nullptr},
                           {"mean_cross_entropy", s.mean_nll},
                           {"perplexity", std::exp(s.mean_nll)},
                           {"elapsed_s", seconds},
                           {"kl_base", nullptr},
                           {"offload", nullptr}};
  if (kl) {
    j["kl_base"] = {{"file", a.kl_base},
                    {"mean_kl", kl->mean_kl},
                    {"median_kl", kl->median_kl},
                    {"max_kl", kl->max_kl},
                    {"top1_agreement", kl->top1_agreement},
                    {"rms_dp", kl->rms_dp}};
  }
  if (dec.offload()) j["offload"] = offload_json(dec, s.forwarded);
  if (a.per_token) j["cross_entropy"] = s.nll;
  return j;
}

void run_eval(const EvalArgs& a, const GlobalOptions& global) {
  const std::string dir = resolve_model_dir(a.model);
  check_eval_args(a, dir);
  check_dump_hidden(a.dump_hidden, {dir, a.ids_file, a.text_file, a.kl_base}, "eval");
  std::vector<int32_t> ids;
  RankedModel m = load_ranked_model(
      dir, a.ep, [&](const Decoder& dec) { ids = eval_ids(a, dir, dec.spec()); }, a.offload, &global);
  Decoder& dec = *m.decoder;
  const int64_t trained = dec.spec().max_position, longest = a.context > 0 ? a.context : ssize(ids);
  if (m.is_root() && trained > 0 && longest > trained) {  // a note, not an error: as before, it runs
    std::fprintf(stderr,
                 "moe eval: note: %lld tokens in one pass exceed the model's max_position_embeddings %lld; use "
                 "-c %lld for windows the model was trained on\n",
                 static_cast<long long>(longest), static_cast<long long>(trained), static_cast<long long>(trained));
  }
  const auto dump = start_hidden_dump(a.dump_hidden, m.is_root(), dec,
                                      {{"command", "eval"},
                                       {"model", dir},
                                       {"ids", ids},
                                       {"context", a.context},
                                       {"stride", a.stride},
                                       {"ep", a.ep.ep}});
  Timer timer;
  const EvalScores s = score(a, dec, ids, global, m.is_root());
  const double seconds = timer.seconds();
  if (dump) dump->finish();
  const std::optional<parallel::EpReport> ep = ep_report(m);
  if (!m.is_root()) return;  // rank 0 prints and writes; the logits are the same on every rank
  check_finite_logits(s.logits, dir);
  if (!a.logits_out.empty()) {
    write_file_atomic(a.logits_out,
                      std::string(reinterpret_cast<const char*>(s.logits.data()), s.logits.size() * sizeof(float)));
  }
  const std::optional<LogitComparison> kl = compare_with_base(a, s.logits, s.tokens, dec.spec().vocab);
  if (global.json) {
    nlohmann::ordered_json j = eval_json(a, dir, dec, s, seconds, kl);
    if (ep) j["ep"] = nlohmann::ordered_json::parse(parallel::ep_report_json(*ep));
    if (dump) j["dump_hidden"] = {{"dir", dump->dir()}, {"n_files", dump->n_files()}};
    print_json_report(j);
    return;
  }
  print_eval_text(a, dir, dec, s, kl);
  if (dump) fmt::print("{} tapped tensors written to {} (index.json)\n", dump->n_files(), dump->dir());
  if (ep) fmt::print("{}", parallel::format_ep_report(*ep));
}

// Each token's experts per layer as JSON lines (rows [first, first + n) of one forward call).
void write_trace(std::string& trace, const ForwardStats& stats, const std::vector<int32_t>& ids, int64_t first,
                 int64_t position) {
  const int64_t n = static_cast<int64_t>(ids.size()) - first;
  for (int64_t row = 0; row < n; ++row) {
    nlohmann::json experts = nlohmann::json::array();
    for (const auto& layer_ids : stats.expert_ids) {
      if (layer_ids.empty()) {
        experts.push_back(nullptr);
        continue;
      }
      const int64_t k = static_cast<int64_t>(layer_ids.size()) / n;
      experts.push_back(std::vector<int32_t>(layer_ids.begin() + row * k, layer_ids.begin() + (row + 1) * k));
    }
    trace += nlohmann::json{{"position", position + row}, {"token", ids[first + row]}, {"experts", experts}}.dump();
    trace += "\n";
  }
}

std::vector<int32_t> prompt_ids(const RunArgs& a, const std::string& dir, const ModelSpec& spec, const Tokenizer* tok) {
  if (a.prompt.empty() && a.prompt_ids.empty()) fail_usage("run", "the prompt is empty: give --prompt or --prompt-ids");
  if (!a.prompt.empty() && !a.prompt_ids.empty()) fail_usage("run", "give only one of --prompt, --prompt-ids");
  if (a.chat && a.prompt.empty()) fail_usage("run", "--chat needs --prompt (the user message)");
  if (a.chat && tok == nullptr) fail("run", "{}: --chat needs the model's tokenizer and chat template", dir);
  if (a.prompt.empty()) return parse_ids(a.prompt_ids, "--prompt-ids");
  if (a.chat) {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    if (!a.system.empty()) messages.push_back({{"role", "system"}, {"content", a.system}});
    messages.push_back({{"role", "user"}, {"content", a.prompt}});
    return chat_prompt_ids(*tok, load_chat_template(tok, a.chat_template), messages);
  }
  return prompt_text_ids(dir, spec, tok, a.prompt);
}

void run_generate(const RunArgs& a, const GlobalOptions& global) {
  const std::string dir = resolve_model_dir(a.model);
  if (!a.trace.empty()) check_output_file(a.trace, "--trace", {dir}, "run");
  std::unique_ptr<Tokenizer> tok;
  std::vector<int32_t> ids;
  RankedModel m = load_ranked_model(
      dir, a.ep,
      [&](const Decoder& dec) {
        tok = find_tokenizer(dir, dec.spec());
        ids = prompt_ids(a, dir, dec.spec(), tok.get());
      },
      a.offload, &global);
  Decoder& dec = *m.decoder;
  const ModelSpec& spec = dec.spec();
  const GenerationDefaults defaults = read_generation_defaults(dir, tok.get());
  GenerateOptions opts =
      run_generate_options(sampling_overrides(a.sampling), defaults, parse_ids(a.stop_ids, "--stop-ids"),
                           a.sampling.stop, a.sampling.ignore_eos, a.sampling.logprobs, a.max_new_tokens, a.context);
  TextStream text(tok.get(), spec.vocab);
  opts.text = &text;
  const bool stream = !global.json && !a.quiet && m.is_root();
  if (stream && !a.chat) fmt::print("{}", a.prompt.empty() ? decode_ids(tok.get(), ids, spec.vocab) : a.prompt);
  opts.on_text = [&](std::string_view piece) {
    if (!stream) return;
    fmt::print("{}", piece);
    std::fflush(stdout);
  };
  const GenerateResult g = generate(dec, ids, opts);
  const std::optional<parallel::EpReport> ep = ep_report(m);
  if (!m.is_root()) return;  // every rank generated the same tokens; rank 0 reports
  if (!a.trace.empty()) {
    std::string trace;  // written whole, atomically: a kill never leaves half a trace
    write_trace(trace, g.prefill, ids, 0, 0);
    std::vector<int32_t> all = ids;
    all.insert(all.end(), g.tokens.begin(), g.tokens.end());
    for (size_t i = 0; i < g.decode.size(); ++i) {
      const int64_t pos = static_cast<int64_t>(ids.size() + i);
      write_trace(trace, g.decode[i], std::vector<int32_t>(all.begin(), all.begin() + pos + 1), pos, pos);
    }
    write_file_atomic(a.trace, trace);
  }
  RunReport report = report_of_generation(g, spec, dir, a.no_ceiling ? 0.0 : read_ceiling_for_run());
  // A saved ceiling this run read faster than was measured on a busier machine: measured again (and saved).
  if (!a.no_ceiling && report.decode_bytes_per_s > 1.05e9 * report.read_gbps_ceiling)
    report = report_of_generation(g, spec, dir, read_ceiling_for_run(/*fresh=*/true));
  const double disk = a.no_ceiling ? 0.0 : offload_disk_ceiling(dec);  // --mem-budget: the disk's read ceiling
  if (global.json) {
    nlohmann::ordered_json out = run_json(g, ids, opts, defaults, tok.get(), spec.vocab, report);
    if (ep) out["ep"] = nlohmann::ordered_json::parse(parallel::ep_report_json(*ep));
    if (dec.offload()) out["offload"] = offload_json(dec, static_cast<int64_t>(ids.size() + g.tokens.size()), disk);
    print_json_report(out);  // generated bytes need not be valid UTF-8: invalid sequences are replaced
    return;
  }
  fmt::print("\n\n{}", format_run_report(report));
  fmt::print("{}", offload_text(dec, static_cast<int64_t>(ids.size() + g.tokens.size()), disk));
  if (ep) fmt::print("{}", parallel::format_ep_report(*ep));
}

}  // namespace

void register_run(CLI::App& app, const GlobalOptions& global) {
  auto eval_args = std::make_shared<EvalArgs>();
  auto* eval = app.add_subcommand("eval", "Score token ids with a model: next-token cross-entropy, logits out");
  eval->add_option(
      "-m,--model", eval_args->model,
      "Model folder (config.json + safetensors), .gguf file or `moe train` output folder; default: embedded model");
  eval->add_option("--ids", eval_args->ids, "Token ids, e.g. 9707,11,1879");
  eval->add_option("--ids-file", eval_args->ids_file,
                   "File of token ids (commas and/or whitespace, optionally a JSON array); - reads stdin");
  eval->add_option("-f,--text-file", eval_args->text_file,
                   "UTF-8 text, encoded with the model's tokenizer; - reads stdin");
  eval->add_option("--logits-out", eval_args->logits_out,
                   "Write logits [T, V] as raw little-endian f32 (one pass over the whole text: not with --context)");
  add_number(eval, "-c,--context", eval_args->context,
             "Perplexity in sliding windows of N tokens (Hugging Face's fixed-length recipe): each window scores "
             "only the tokens the previous one did not",
             int64_t{0}, kMaxRunTokens, "0 = the whole text in one pass");
  add_number(eval, "--stride", eval_args->stride,
             "With --context: a window starts every S tokens (S < N overlaps: N - S tokens of context)", int64_t{0},
             kMaxRunTokens, "0 = --context: separate chunks");
  eval->add_flag("--per-token", eval_args->per_token,
                 "Also print each prediction's cross-entropy (JSON: cross_entropy)");
  eval->add_option("--kl-base", eval_args->kl_base,
                   "Reference logits (a --logits-out of the same ids, e.g. from the bf16 model): report KL "
                   "divergence and top-token agreement against them");
  add_dump_hidden_option(eval, eval_args->dump_hidden);
  add_ep_options(eval, eval_args->ep);
  add_offload_options(eval, eval_args->offload);
  eval->callback([eval_args, &global] { run_eval(*eval_args, global); });

  auto run_args = std::make_shared<RunArgs>();
  auto* run = app.add_subcommand("run", "Generate text with an MoE model and report what activation cost");
  run->add_option(
      "-m,--model", run_args->model,
      "Model folder (config.json + safetensors), .gguf file or `moe train` output folder; default: embedded model");
  run->add_option("-p,--prompt", run_args->prompt, "Prompt text (model tokenizer, or bytes for a vocab-256 model)");
  run->add_option("-f,--prompt-file", run_args->prompt_file, "Prompt text from a file; - reads stdin");
  run->add_option("--prompt-ids", run_args->prompt_ids, "Prompt as token ids, e.g. 9707,11,1879");
  add_number(run, "-n,--max-new-tokens", run_args->max_new_tokens, "Tokens to generate", int64_t{0}, kMaxRunTokens);
  add_number(run, "-c,--context", run_args->context, "KV-cache length", int64_t{0}, kMaxRunTokens,
             "0 = prompt + max new tokens");
  add_sampling_options(run, run_args->sampling);
  run->add_option("--stop-ids", run_args->stop_ids, "Token ids that end generation, e.g. 2,151645");
  run->add_flag("--chat", run_args->chat, "Apply the model's chat template to --prompt as one user message");
  run->add_option("--system", run_args->system, "With --chat: a system message before the prompt");
  run->add_option("--chat-template", run_args->chat_template,
                  "With --chat: a Jinja template file instead of the model's");
  run->add_option("--trace", run_args->trace, "Write each token's experts per layer as JSON lines");
  run->add_flag("--no-ceiling", run_args->no_ceiling, "Skip measuring the read bandwidth for the roofline");
  run->add_flag("--quiet", run_args->quiet, "Do not stream the text");
  add_ep_options(run, run_args->ep);
  add_offload_options(run, run_args->offload);
  run->callback([run_args, &global] {
    if (!run_args->prompt_file.empty()) {
      if (!run_args->prompt.empty()) fail_usage("run", "give only one of --prompt, --prompt-file");
      run_args->prompt = read_input_file(run_args->prompt_file, "--prompt-file", "run");
      if (run_args->prompt.empty()) fail_usage("run", "--prompt-file {}: the file is empty", run_args->prompt_file);
    }
    run_generate(*run_args, global);
  });
}

}  // namespace moe::cli
