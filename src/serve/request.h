// The request side of `moe serve` (server.h): an OpenAI request body to the generation it asks for.
// Every field is checked (type, range); a request the client got wrong is a RequestError (HTTP 400
// or its own status) naming the field, never another exception: the HTTP fuzz target
// (fuzz/http_request_fuzz.cc) holds it to that.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "model/generate.h"
#include "serve/server.h"
#include "tokenizer/tokenizer.h"

namespace moe::serve {

// A request the client got wrong: 400 (or `status`) with an OpenAI-style error body.
struct RequestError {
  RequestError(int s, std::string m, std::string p = "", std::string t = "invalid_request_error", std::string c = "")
      : status(s), message(std::move(m)), param(std::move(p)), type(std::move(t)), code(std::move(c)) {}
  int status;
  std::string message, param, type, code;
};

// What the prompt is made with: tok may be null only for a vocab-256 byte model; tmpl null: chat
// requests are refused (400).
struct RequestContext {
  const Tokenizer* tok = nullptr;
  const ChatTemplate* tmpl = nullptr;
  int64_t vocab = 0;
};

struct Request {
  nlohmann::ordered_json body;
  GenerateOptions gen;  // max_new_tokens clipped to the context; sampling, stops, logprobs
  bool stream = false;
  bool include_usage = false;
  int64_t logprobs = -1;        // alternatives per token; -1: no logprobs
  std::vector<int32_t> prompt;  // the ids to continue (chat: the rendered template)
};

// chat: /v1/chat/completions (messages), else /v1/completions (prompt). Throws RequestError only.
Request parse_request(const std::string& body, bool chat, const ServerOptions& options, const RequestContext& ctx);

}  // namespace moe::serve
