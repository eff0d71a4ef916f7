// `moe serve`: the OpenAI-compatible HTTP server (serve/server.h) over one model, with the model's
// generation defaults, the sampling flags of `moe run` as server-wide defaults, and its chat template.
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <memory>
#include <optional>
#include <thread>

#include "chat/chat_session.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "cli/offload_args.h"
#include "cli/run_common.h"
#include "cli/sampling_args.h"
#include "model/generation_config.h"
#include "serve/server.h"
#include "util/error.h"

namespace moe::cli {
namespace {

struct ServeArgs {
  std::string model, host = "127.0.0.1", api_key, name, chat_template;
  int port = 8080;
  int64_t context = 4096;
  int64_t max_tokens = 256;
  int64_t max_body_kib = 1024;
  int64_t parallel = 4, queue = 64, batch_tokens = 512;
  SamplingArgs sampling;
  OffloadArgs offload;
};

std::atomic<bool> g_stop{false};  // set by SIGINT / SIGTERM; a watcher thread stops the server

void run_serve(const ServeArgs& a, const GlobalOptions&) {
  const std::string dir = resolve_model_dir(a.model);
  Decoder model(dir, a.offload.decoder_options());
  const std::unique_ptr<Tokenizer> tok = find_tokenizer(dir, model.spec());
  std::optional<ChatTemplate> tmpl;
  if (tok != nullptr && (!tok->chat_template().empty() || !a.chat_template.empty()))
    tmpl.emplace(load_chat_template(tok.get(), a.chat_template));
  const GenerationDefaults defaults = read_generation_defaults(dir, tok.get());
  serve::ServerOptions o;
  o.host = a.host;
  o.port = a.port;
  o.api_key = a.api_key;
  o.model_name = a.name.empty() ? dir : a.name;
  o.context = a.context;
  o.default_max_tokens = a.max_tokens;
  o.max_body_bytes = static_cast<size_t>(a.max_body_kib) * 1024;
  o.sampler = resolve_sampling(a.sampling, defaults);
  if (!a.sampling.ignore_eos) o.eos_ids = defaults.eos_ids;
  o.batching = {a.parallel, a.queue, a.batch_tokens};
  serve::Server server(model, tok.get(), std::move(tmpl), o);
  const int port = server.bind();
  fmt::print("moe serve: {} on http://{}:{} ({} slots, queue {}, chat template: {}; Ctrl-C stops)\n", o.model_name,
             a.host, port, a.parallel, a.queue, tok && !tok->chat_template().empty() ? "yes" : "no");
  std::fflush(stdout);
  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });
  std::atomic<bool> served{false};
  std::thread watcher([&] {
    while (!served && !g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    server.stop();
  });
  server.run();
  served = true;
  watcher.join();
}

}  // namespace

void register_serve(CLI::App& app, const GlobalOptions& global) {
  auto a = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server: /v1/chat/completions, /v1/completions");
  cmd->add_option("-m,--model", a->model, "Model folder or .gguf file");
  add_offload_options(cmd, a->offload);
  cmd->add_option("--host", a->host, "Address to listen on")->capture_default_str();
  add_number(cmd, "--port", a->port, "Port to listen on", 0, 65535, "0 = any free port");
  cmd->add_option("--api-key", a->api_key, "Require 'Authorization: Bearer KEY' on every request but /health");
  cmd->add_option("--name", a->name, "Model id in /v1/models and responses (default: the --model path)");
  cmd->add_option("--chat-template", a->chat_template, "Jinja chat template file instead of the model's");
  add_number(cmd, "-c,--context", a->context, "Tokens of prompt + completion per request", int64_t{16},
             int64_t{1} << 24);
  add_number(cmd, "-n,--max-new-tokens", a->max_tokens, "Completion tokens when a request gives no max_tokens",
             int64_t{1}, int64_t{1} << 24);
  add_number(cmd, "--max-body-kib", a->max_body_kib, "Largest request body (413 beyond)", int64_t{1}, int64_t{1} << 20);
  add_number(cmd, "--parallel", a->parallel, "Sequences decoded together (continuous batching slots)", int64_t{1},
             int64_t{4096});
  add_number(cmd, "--queue", a->queue, "Requests that may wait for a slot (429 beyond)", int64_t{0}, int64_t{1} << 20);
  add_number(cmd, "--batch-tokens", a->batch_tokens,
             "Most tokens one step carries (one per decoding sequence, prompt chunks in the rest)", int64_t{2},
             int64_t{1} << 20);
  add_sampling_options(cmd, a->sampling);
  cmd->callback([a, &global] { run_serve(*a, global); });
}

}  // namespace moe::cli
