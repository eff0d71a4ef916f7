// OpenAI request bodies to generations (see request.h).
#include "serve/request.h"

#include <fmt/format.h>

#include <algorithm>

#include "chat/chat_session.h"
#include "util/error.h"

namespace moe::serve {
namespace {

using nlohmann::ordered_json;

[[noreturn]] void bad(const std::string& param, const std::string& message, int status = 400) {
  throw RequestError{status, message, param};
}

double number(const ordered_json& j, const char* key, double lo, double hi, double fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const ordered_json& v = j[key];
  if (!v.is_number()) bad(key, fmt::format("'{}' must be a number, found {}", key, v.dump()));
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi)) bad(key, fmt::format("'{}' must be from {} to {}, found {}", key, lo, hi, v.dump()));
  return x;
}

int64_t integer(const ordered_json& j, const char* key, int64_t lo, int64_t hi, int64_t fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const ordered_json& v = j[key];
  if (!v.is_number_integer()) bad(key, fmt::format("'{}' must be an integer, found {}", key, v.dump()));
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) bad(key, fmt::format("'{}' must be from {} to {}, found {}", key, lo, hi, x));
  return x;
}

Request parse_common(const std::string& text, const ServerOptions& s, bool chat) {
  Request r;
  try {
    r.body = ordered_json::parse(text);
  } catch (const ordered_json::exception& e) {
    bad("", std::string("the request body is not valid JSON: ") + e.what());
  }
  const ordered_json& b = r.body;
  if (!b.is_object()) bad("", "the request body must be a JSON object");
  if (b.contains("n") && !b["n"].is_null() && b["n"] != 1) bad("n", "only n = 1 is supported");
  const char* max_key = chat && b.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  r.gen.max_new_tokens = integer(b, max_key, 0, s.context, s.default_max_tokens);
  SamplerOptions& o = r.gen.sampler;
  o = s.sampler;
  o.temperature = static_cast<float>(number(b, "temperature", 0.0, 1000.0, o.temperature));
  o.top_p = static_cast<float>(number(b, "top_p", 1e-9, 1.0, o.top_p));
  o.top_k = integer(b, "top_k", 0, int64_t{1} << 31, o.top_k);
  o.min_p = static_cast<float>(number(b, "min_p", 0.0, 1.0, o.min_p));
  o.presence_penalty = static_cast<float>(number(b, "presence_penalty", -2.0, 2.0, o.presence_penalty));
  o.frequency_penalty = static_cast<float>(number(b, "frequency_penalty", -2.0, 2.0, o.frequency_penalty));
  o.repetition_penalty = static_cast<float>(number(b, "repetition_penalty", 1e-6, 100.0, o.repetition_penalty));
  if (b.contains("seed") && !b["seed"].is_null()) {
    if (!b["seed"].is_number_integer()) bad("seed", "'seed' must be an integer");
    o.seed =
        b["seed"].is_number_unsigned() ? b["seed"].get<uint64_t>() : static_cast<uint64_t>(b["seed"].get<int64_t>());
  }
  if (b.contains("stop") && !b["stop"].is_null()) {
    const ordered_json& st = b["stop"];
    if (st.is_string()) {
      r.gen.stop_strings.push_back(st.get<std::string>());
    } else if (st.is_array()) {
      for (const auto& x : st) {
        if (!x.is_string()) bad("stop", "'stop' must be a string or a list of strings");
        r.gen.stop_strings.push_back(x.get<std::string>());
      }
    } else {
      bad("stop", "'stop' must be a string or a list of strings");
    }
    for (const std::string& x : r.gen.stop_strings)
      if (x.empty()) bad("stop", "a stop string is empty");
  }
  r.gen.stop_ids = s.eos_ids;
  if (b.contains("stream") && !b["stream"].is_null()) {
    if (!b["stream"].is_boolean()) bad("stream", "'stream' must be true or false");
    r.stream = b["stream"].get<bool>();
  }
  if (b.contains("stream_options") && b["stream_options"].is_object())
    r.include_usage = b["stream_options"].value("include_usage", false);
  if (chat) {
    if (b.contains("logprobs") && b["logprobs"].is_boolean() && b["logprobs"].get<bool>())
      r.logprobs = integer(b, "top_logprobs", 0, 20, 0);
  } else if (b.contains("logprobs") && !b["logprobs"].is_null()) {
    r.logprobs = integer(b, "logprobs", 0, 20, 0);
  }
  r.gen.logprobs = r.logprobs;
  return r;
}

std::vector<int32_t> completion_prompt(const ordered_json& b, const RequestContext& ctx) {
  if (!b.contains("prompt")) bad("prompt", "'prompt' is required");
  const ordered_json& p = b["prompt"];
  if (p.is_array() && p.size() == 1 && p[0].is_string()) return completion_prompt({{"prompt", p[0]}}, ctx);
  if (p.is_string()) {
    const std::string& text = p.get_ref<const std::string&>();
    if (ctx.tok != nullptr) return ctx.tok->encode_prompt(text);
    if (ctx.vocab != 256) bad("prompt", "the model has no tokenizer: give the prompt as token ids");
    std::vector<int32_t> ids;  // a byte model: each byte its id (as unsigned: UTF-8 bytes are >= 128)
    for (unsigned char b : text) ids.push_back(b);
    return ids;
  }
  if (p.is_array()) {
    std::vector<int32_t> ids;
    for (const auto& x : p) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= ctx.vocab)
        bad("prompt", fmt::format("'prompt' as token ids must hold integers from 0 to {}", ctx.vocab - 1));
      ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
    }
    return ids;
  }
  bad("prompt", "'prompt' must be a string, a list with one string, or a list of token ids");
}

std::vector<int32_t> chat_prompt(const ordered_json& b, const RequestContext& ctx) {
  if (ctx.tmpl == nullptr || ctx.tok == nullptr) bad("messages", "the model has no chat template; use /v1/completions");
  if (!b.contains("messages") || !b["messages"].is_array() || b["messages"].empty())
    bad("messages", "'messages' must be a non-empty list");
  ordered_json messages = b["messages"];
  for (auto& m : messages) {  // content as a list of parts: the text parts joined, as servers do
    if (m.is_object() && m.contains("content") && m["content"].is_array()) {
      std::string text;
      for (const auto& part : m["content"])
        if (part.is_object() && part.value("type", "") == "text") text += part.value("text", "");
      m["content"] = text;
    }
  }
  ChatTemplateOptions o;
  if (b.contains("tools") && b["tools"].is_array()) o.tools = b["tools"];
  if (b.contains("chat_template_kwargs") && b["chat_template_kwargs"].is_object()) o.extra = b["chat_template_kwargs"];
  try {
    return chat_prompt_ids(*ctx.tok, *ctx.tmpl, messages, o);
  } catch (const Error& e) {
    bad("messages", e.what());
  }
}

void check_length(const std::vector<int32_t>& ids, Request& r, const ServerOptions& opt) {
  if (ids.empty()) bad("prompt", "the prompt is empty");
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n >= opt.context) {
    RequestError e{400, fmt::format("the prompt is {} tokens; this server's context is {} tokens", n, opt.context),
                   "messages"};
    e.code = "context_length_exceeded";
    throw e;
  }
  r.gen.max_new_tokens = std::min(r.gen.max_new_tokens, opt.context - n);
  r.gen.context = 0;  // the KV cache holds this request's prompt + max_tokens, not the whole context
}

}  // namespace

Request parse_request(const std::string& body, bool chat, const ServerOptions& options, const RequestContext& ctx) {
  try {
    Request r = parse_common(body, options, chat);
    r.prompt = chat ? chat_prompt(r.body, ctx) : completion_prompt(r.body, ctx);
    check_length(r.prompt, r, options);
    return r;
  } catch (const RequestError&) {
    throw;
  } catch (const nlohmann::json::exception& e) {  // a field of an unexpected type deep in the body
    throw RequestError{400, std::string("the request has a field of the wrong type: ") + e.what()};
  } catch (const Error& e) {
    throw RequestError{400, e.what()};
  }
}

}  // namespace moe::serve
