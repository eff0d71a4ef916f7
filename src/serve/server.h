// `moe serve`: an OpenAI-compatible HTTP server over one model (cpp-httplib). Endpoints:
// GET /health, GET /v1/models, GET /metrics (Prometheus), POST /v1/completions and
// POST /v1/chat/completions, each non-streaming or streaming as server-sent events ending in
// `data: [DONE]`. Concurrent requests share decode steps (continuous batching, scheduler.h); a
// streaming client that disconnects cancels its generation. Errors are OpenAI-style JSON:
// {"error": {"message", "type", "param", "code"}}: 400 bad request or context, 401 key, 404 route,
// 413 body size, 429 queue full, 503 shutting down, 500 internal.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "model/decoder.h"
#include "model/generation_config.h"
#include "model/sampler.h"
#include "serve/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace moe::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                 // 0: any free port (tests)
  std::string api_key;             // non-empty: requests need "Authorization: Bearer <key>"
  std::string model_name = "moe";  // the id /v1/models lists and responses carry
  int64_t context = 4096;          // prompt + completion tokens of one request
  int64_t default_max_tokens = 256;
  size_t max_body_bytes = size_t{1} << 20;
  SamplerOptions sampler;        // defaults for fields a request leaves out
  std::vector<int32_t> eos_ids;  // end every completion
  SchedulerOptions batching;     // --parallel, --queue, --batch-tokens
};

class Server {
 public:
  // tok may be null only for a vocab-256 byte model; tmpl null: /v1/chat/completions answers 400.
  Server(Decoder& model, const Tokenizer* tok, std::optional<ChatTemplate> tmpl, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port (port 0: any free one) and returns the port; throws moe::Error "[serve] ..."
  // when the address cannot be bound.
  int bind();
  // Serves until stop() (call bind() first). Blocks.
  void run();
  // The first half of stop(): every waiting and running generation ends (cancelled), and new
  // generation requests are answered 503 "shutting_down" while /health and /metrics still answer.
  void begin_shutdown();
  void stop();  // begin_shutdown(), then the listener stops

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe::serve
