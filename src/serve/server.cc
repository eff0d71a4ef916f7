// The OpenAI-compatible server (see server.h): request fields to GenerateOptions, generations
// submitted to the batching Scheduler, JSON or server-sent-event responses.
#include "serve/server.h"

#include <httplib.h>

#include <atomic>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>

#include "chat/chat_session.h"
#include "model/generate.h"
#include "serve/metrics.h"
#include "util/error.h"
#include "util/log.h"

namespace moe::serve {
namespace {

using nlohmann::ordered_json;

// A request the client got wrong: 400 (or `status`) with an OpenAI-style error body.
struct RequestError {
  RequestError(int s, std::string m, std::string p = "", std::string t = "invalid_request_error", std::string c = "")
      : status(s), message(std::move(m)), param(std::move(p)), type(std::move(t)), code(std::move(c)) {}
  int status;
  std::string message, param, type, code;
};

[[noreturn]] void bad(const std::string& param, const std::string& message, int status = 400) {
  throw RequestError{status, message, param};
}

ordered_json error_body(const RequestError& e) {
  ordered_json err{{"message", e.message},
                   {"type", e.type},
                   {"param", e.param.empty() ? ordered_json() : ordered_json(e.param)},
                   {"code", e.code.empty() ? ordered_json() : ordered_json(e.code)}};
  return {{"error", err}};
}

void send_json(httplib::Response& res, int status, const ordered_json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, ordered_json::error_handler_t::replace), "application/json");
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

// The parts of a request every endpoint shares.
struct Request {
  ordered_json body;
  GenerateOptions gen;
  bool stream = false;
  bool include_usage = false;
  int64_t logprobs = -1;  // alternatives per token; -1: no logprobs
};

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

ordered_json usage(int64_t prompt, int64_t completion) {
  return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

std::string sse(const ordered_json& j) {
  return "data: " + j.dump(-1, ' ', false, ordered_json::error_handler_t::replace) + "\n\n";
}

}  // namespace

struct Server::Impl {
  Decoder& model;
  const Tokenizer* tok;
  std::optional<ChatTemplate> tmpl;
  ServerOptions opt;
  httplib::Server http;
  Scheduler sched;
  std::atomic<uint64_t> next_id{1};
  std::mutex counters_mu;
  HttpCounters counters;

  Impl(Decoder& m, const Tokenizer* t, std::optional<ChatTemplate> c, ServerOptions o)
      : model(m), tok(t), tmpl(std::move(c)), opt(std::move(o)), sched(m, t, opt.batching) {}

  void count(const std::string& endpoint, int status) {
    std::lock_guard<std::mutex> lock(counters_mu);
    ++counters.requests[{endpoint, status}];
  }

  std::string token_text(int32_t id) const {
    if (tok != nullptr) return tok->decode(std::vector<int32_t>{id});
    return model.spec().vocab == 256 ? std::string(1, static_cast<char>(id)) : fmt::format("<{}>", id);
  }

  std::vector<int32_t> completion_prompt(const ordered_json& b) const {
    if (!b.contains("prompt")) bad("prompt", "'prompt' is required");
    const ordered_json& p = b["prompt"];
    if (p.is_array() && p.size() == 1 && p[0].is_string()) return completion_prompt({{"prompt", p[0]}});
    if (p.is_string()) {
      const std::string& text = p.get_ref<const std::string&>();
      if (tok != nullptr) return tok->encode_prompt(text);
      if (model.spec().vocab != 256) bad("prompt", "the model has no tokenizer: give the prompt as token ids");
      return std::vector<int32_t>(text.begin(), text.end());
    }
    if (p.is_array()) {
      std::vector<int32_t> ids;
      for (const auto& x : p) {
        if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= model.spec().vocab)
          bad("prompt", fmt::format("'prompt' as token ids must hold integers from 0 to {}", model.spec().vocab - 1));
        ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
      }
      return ids;
    }
    bad("prompt", "'prompt' must be a string, a list with one string, or a list of token ids");
  }

  std::vector<int32_t> chat_prompt(const ordered_json& b) const {
    if (!tmpl || tok == nullptr) bad("messages", "the model has no chat template; use /v1/completions");
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
    if (b.contains("chat_template_kwargs") && b["chat_template_kwargs"].is_object())
      o.extra = b["chat_template_kwargs"];
    try {
      return chat_prompt_ids(*tok, *tmpl, messages, o);
    } catch (const Error& e) {
      bad("messages", e.what());
    }
  }

  void check_length(const std::vector<int32_t>& ids, Request& r) const {
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

  ordered_json chat_logprobs(const std::vector<TokenLogprobs>& lps) const {
    ordered_json content = ordered_json::array();
    auto one = [&](const TokenLogprob& t) {
      const std::string s = token_text(t.token);
      return ordered_json{{"token", s}, {"logprob", t.logprob}, {"bytes", std::vector<int>(s.begin(), s.end())}};
    };
    for (const TokenLogprobs& l : lps) {
      ordered_json j = one(l.chosen);
      j["top_logprobs"] = ordered_json::array();
      for (const TokenLogprob& t : l.top) j["top_logprobs"].push_back(one(t));
      content.push_back(std::move(j));
    }
    return {{"content", content}};
  }

  ordered_json completion_logprobs(const std::vector<TokenLogprobs>& given) const {
    ordered_json tokens = ordered_json::array(), lps = ordered_json::array(), tops = ordered_json::array();
    for (const TokenLogprobs& l : given) {
      tokens.push_back(token_text(l.chosen.token));
      lps.push_back(l.chosen.logprob);
      ordered_json top = ordered_json::object();
      for (const TokenLogprob& t : l.top) top[token_text(t.token)] = t.logprob;
      tops.push_back(std::move(top));
    }
    return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}};
  }

  void handle(bool chat, const httplib::Request& req, httplib::Response& res) {
    Request r = parse_common(req.body, opt, chat);
    const std::vector<int32_t> ids = chat ? chat_prompt(r.body) : completion_prompt(r.body);
    check_length(ids, r);
    const std::string id = fmt::format("{}-{}", chat ? "chatcmpl" : "cmpl", next_id++);
    const int64_t created = static_cast<int64_t>(std::time(nullptr));
    const char* object = chat ? "chat.completion" : "text_completion";
    if (!r.stream) {
      const std::shared_ptr<Ticket> ticket = sched.submit(ids, r.gen);
      const GenerateResult& g = ticket->result();
      ordered_json choice{{"index", 0}};
      if (chat) {
        choice["message"] = {{"role", "assistant"}, {"content", g.text}};
        choice["logprobs"] = r.logprobs >= 0 ? chat_logprobs(g.logprobs) : ordered_json();
      } else {
        choice["text"] = g.text;
        choice["logprobs"] = r.logprobs >= 0 ? completion_logprobs(g.logprobs) : ordered_json();
      }
      choice["finish_reason"] = finish_reason_name(g.finish_reason);
      send_json(res, 200,
                {{"id", id},
                 {"object", object},
                 {"created", created},
                 {"model", opt.model_name},
                 {"choices", ordered_json::array({choice})},
                 {"usage", usage(static_cast<int64_t>(ids.size()), static_cast<int64_t>(g.tokens.size()))}});
      return;
    }
    const char* chunk_object = chat ? "chat.completion.chunk" : "text_completion";
    // Submitted before the response starts, so a full queue or a shutdown still answers 429 / 503.
    std::shared_ptr<Ticket> ticket = sched.submit(ids, r.gen);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream", [this, r, ids, id, created, chat, chunk_object, ticket](size_t, httplib::DataSink& sink) {
          auto chunk = [&](const ordered_json& choice) {
            return ordered_json{{"id", id},
                                {"object", chunk_object},
                                {"created", created},
                                {"model", opt.model_name},
                                {"choices", ordered_json::array({choice})}};
          };
          bool alive = true;
          auto write = [&](const std::string& s) {
            if (alive && !sink.write(s.data(), s.size())) alive = false;
          };
          if (chat)
            write(sse(chunk(
                {{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}})));
          for (;;) {
            Ticket::Event e = ticket->next();
            if (!e.text.empty() || !e.logprobs.empty()) {
              ordered_json choice{{"index", 0}};
              if (chat) {
                choice["delta"] = {{"content", e.text}};
              } else {
                choice["text"] = e.text;
              }
              if (r.logprobs >= 0)
                choice["logprobs"] = chat ? chat_logprobs(e.logprobs) : completion_logprobs(e.logprobs);
              choice["finish_reason"] = nullptr;
              write(sse(chunk(choice)));
            }
            if (!alive || !sink.is_writable()) ticket->cancel();  // the client is gone
            if (e.done) break;
          }
          try {
            const GenerateResult& g = ticket->result();
            ordered_json last{{"index", 0}, {"finish_reason", finish_reason_name(g.finish_reason)}};
            if (chat) {
              last["delta"] = ordered_json::object();
            } else {
              last["text"] = "";
            }
            ordered_json done = chunk(last);
            if (r.include_usage)
              done["usage"] = usage(static_cast<int64_t>(ids.size()), static_cast<int64_t>(g.tokens.size()));
            write(sse(done));
          } catch (const std::exception& e) {
            write(sse(error_body(RequestError{500, e.what(), "", "server_error"})));
          }
          write("data: [DONE]\n\n");
          sink.done();
          return true;
        });
  }

  void route(bool chat, const httplib::Request& req, httplib::Response& res) {
    try {
      handle(chat, req, res);
    } catch (const RequestError& e) {
      send_json(res, e.status, error_body(e));
    } catch (const QueueFull& q) {
      RequestError e{429,
                     fmt::format("the server is busy: {} requests already wait for one of its {} slots; retry later",
                                 q.waiting, opt.batching.parallel),
                     "", "rate_limit_error", "queue_full"};
      res.set_header("Retry-After", "1");
      send_json(res, 429, error_body(e));
    } catch (const ShuttingDown&) {
      send_json(res, 503,
                error_body(RequestError{503, "the server is shutting down", "", "server_error", "shutting_down"}));
    } catch (const Error& e) {
      send_json(res, 400, error_body(RequestError{400, e.what(), ""}));
    } catch (const std::exception& e) {
      send_json(res, 500, error_body(RequestError{500, e.what(), "", "server_error"}));
    }
  }

  void install() {
    // Every streaming request holds a handler thread while it runs or waits: enough threads for all
    // slots and the whole queue, and a few for /health and /metrics.
    const int64_t threads = std::clamp<int64_t>(opt.batching.parallel + opt.batching.queue + 4, 8, 1024);
    http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    http.set_payload_max_length(opt.max_body_bytes);
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      static const char* known[] = {"/health", "/metrics", "/v1/models", "/v1/completions", "/v1/chat/completions"};
      const bool ok = std::find(std::begin(known), std::end(known), req.path) != std::end(known);
      count(ok ? req.path : "other", res.status);
    });
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (opt.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
      if (req.get_header_value("Authorization") == "Bearer " + opt.api_key)
        return httplib::Server::HandlerResponse::Unhandled;
      RequestError e{401, "invalid or missing API key (Authorization: Bearer <key>)", ""};
      e.type = "authentication_error";
      e.code = "invalid_api_key";
      send_json(res, 401, error_body(e));
      return httplib::Server::HandlerResponse::Handled;
    });
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      RequestError e{res.status,
                     res.status == 404   ? "no route " + req.method + " " + req.path
                     : res.status == 413 ? "the request body is too large"
                                         : "HTTP error " + std::to_string(res.status),
                     ""};
      if (res.status == 404) e.type = "not_found_error";
      send_json(res, res.status, error_body(e));
    });
    http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      send_json(res, 200, {{"status", "ok"}});
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      HttpCounters c;
      {
        std::lock_guard<std::mutex> lock(counters_mu);
        c = counters;
      }
      res.set_content(prometheus_text(model.spec(), sched.options(), sched.stats(), c), "text/plain; version=0.0.4");
    });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      send_json(res, 200,
                {{"object", "list"},
                 {"data", ordered_json::array({{{"id", opt.model_name},
                                                {"object", "model"},
                                                {"created", 0},
                                                {"owned_by", "moe"},
                                                {"context_length", opt.context}}})}});
    });
    http.Post("/v1/completions",
              [this](const httplib::Request& req, httplib::Response& res) { route(false, req, res); });
    http.Post("/v1/chat/completions",
              [this](const httplib::Request& req, httplib::Response& res) { route(true, req, res); });
  }
};

Server::Server(Decoder& model, const Tokenizer* tok, std::optional<ChatTemplate> tmpl, ServerOptions options)
    : impl_(std::make_unique<Impl>(model, tok, std::move(tmpl), std::move(options))) {
  impl_->install();
}

Server::~Server() { stop(); }

int Server::bind() {
  Impl& m = *impl_;
  int port = m.opt.port;
  if (port == 0) {
    port = m.http.bind_to_any_port(m.opt.host);
  } else if (!m.http.bind_to_port(m.opt.host, port)) {
    port = -1;
  }
  if (port <= 0)
    fail("serve", "cannot listen on {}:{} (in use, or not an address of this machine?)", m.opt.host, m.opt.port);
  m.opt.port = port;
  return port;
}

void Server::run() { impl_->http.listen_after_bind(); }

void Server::stop() {
  if (!impl_) return;
  impl_->sched.stop();  // running and waiting generations end (cancelled); their handlers return
  impl_->http.stop();
}

}  // namespace moe::serve
