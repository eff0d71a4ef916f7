// `moe chat`: an interactive terminal conversation with an instruct model. Each user line is
// added to the history, the history is rendered with the model's chat template and the reply
// streams as it is generated (UTF-8-safe). /reset clears the history, /exit (or end of input) quits.
#include <fmt/format.h>

#include <unistd.h>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "chat/chat_session.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "cli/offload_args.h"
#include "cli/run_common.h"
#include "cli/sampling_args.h"
#include "model/generation_config.h"
#include "util/error.h"

namespace moe::cli {
namespace {

struct ChatArgs {
  std::string model, system, chat_template;
  int64_t max_new_tokens = 512;
  int64_t context = 4096;
  std::string kv_type = "auto";
  SamplingArgs sampling;
};

void run_chat(const ChatArgs& a, const GlobalOptions&) {
  const std::string dir = resolve_model_dir(a.model);
  DecoderOptions options;
  options.kv_type = parse_kv_type(a.kv_type);
  Decoder model(dir, options);
  const std::unique_ptr<Tokenizer> tok = find_tokenizer(dir, model.spec());
  const ChatTemplate tmpl = load_chat_template(tok.get(), a.chat_template);
  const GenerationDefaults defaults = read_generation_defaults(dir, tok.get());
  GenerateOptions opts;
  opts.max_new_tokens = a.max_new_tokens;
  opts.context = a.context;
  opts.sampler = resolve_sampling(a.sampling, defaults);
  if (!a.sampling.ignore_eos) opts.stop_ids = defaults.eos_ids;
  opts.stop_strings = a.sampling.stop;
  // Kept across turns: each turn prefills only what its prompt adds to the conversation cached so far.
  KvCache cache = model.make_cache(a.context);
  opts.cache = &cache;
  opts.on_text = [](std::string_view piece) {
    fmt::print("{}", piece);
    std::fflush(stdout);
  };
  const bool tty = isatty(STDIN_FILENO) != 0;
  auto fresh = [&] {
    nlohmann::ordered_json m = nlohmann::ordered_json::array();
    if (!a.system.empty()) m.push_back({{"role", "system"}, {"content", a.system}});
    return m;
  };
  nlohmann::ordered_json messages = fresh();
  if (tty) fmt::print("moe chat: {} ({} to quit, /reset to start over)\n", dir, "/exit");
  std::string line;
  uint64_t turn = 0;
  while (true) {
    if (tty) fmt::print("> ");
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      messages = fresh();
      fmt::print("[history cleared]\n");
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({{"role", "user"}, {"content", line}});
    GenerateOptions o = opts;
    o.sampler.seed = opts.sampler.seed + turn++;  // each reply its own draws, the whole chat reproducible
    try {
      const GenerateResult r = chat_reply(model, *tok, tmpl, messages, o);
      fmt::print("\n");
      messages.push_back({{"role", "assistant"}, {"content", r.text}});
    } catch (const Error& e) {
      messages.erase(messages.end() - 1);  // the turn did not happen
      fmt::print(stderr, "moe: {}\n", e.what());
    }
  }
}

}  // namespace

void register_chat(CLI::App& app, const GlobalOptions& global) {
  auto args = std::make_shared<ChatArgs>();
  auto* chat =
      app.add_subcommand("chat", "Interactive chat with an instruct model (its chat template, streamed replies)");
  chat->add_option("-m,--model", args->model, "Model folder or .gguf file with a tokenizer and a chat template");
  chat->add_option("--system", args->system, "System message at the start of the conversation");
  chat->add_option("--chat-template", args->chat_template, "Jinja chat template file instead of the model's own");
  add_number(chat, "-n,--max-new-tokens", args->max_new_tokens, "Most tokens per reply", int64_t{1}, int64_t{1} << 24);
  add_number(chat, "-c,--context", args->context, "KV-cache length: the conversation and the reply must fit",
             int64_t{16}, int64_t{1} << 24);
  add_kv_type_option(chat, args->kv_type);
  add_sampling_options(chat, args->sampling);
  chat->callback([args, &global] { run_chat(*args, global); });
}

}  // namespace moe::cli
