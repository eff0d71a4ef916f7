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
#include "serve/request.h"
#include "util/error.h"
#include "util/log.h"

namespace moe::serve {
namespace {

using nlohmann::ordered_json;

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

  // What every response to one request repeats: the kind of completion, its id and creation time.
  struct Reply {
    bool chat = false;
    std::string id;
    int64_t created = 0;
  };

  void handle(bool chat, const httplib::Request& req, httplib::Response& res) {
    const Request r =
        parse_request(req.body, chat, opt, RequestContext{tok, tmpl ? &*tmpl : nullptr, model.spec().vocab});
    Reply reply{chat, fmt::format("{}-{}", chat ? "chatcmpl" : "cmpl", next_id++),
                static_cast<int64_t>(std::time(nullptr))};
    if (r.stream) {
      respond_stream(r, std::move(reply), res);
    } else {
      respond_whole(r, reply, res);
    }
  }

  // The whole completion in one JSON body, once the generation is over.
  void respond_whole(const Request& r, const Reply& reply, httplib::Response& res) {
    const bool chat = reply.chat;
    const std::shared_ptr<Ticket> ticket = sched.submit(r.prompt, r.gen);
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
              {{"id", reply.id},
               {"object", chat ? "chat.completion" : "text_completion"},
               {"created", reply.created},
               {"model", opt.model_name},
               {"choices", ordered_json::array({choice})},
               {"usage", usage(static_cast<int64_t>(r.prompt.size()), static_cast<int64_t>(g.tokens.size()))}});
  }

  // Server-sent events: a chunk per piece of text as it comes, a last chunk with the finish reason
  // (and usage when asked), then [DONE].
  void respond_stream(const Request& r, Reply reply, httplib::Response& res) {
    // Submitted before the response starts, so a full queue or a shutdown still answers 429 / 503.
    std::shared_ptr<Ticket> ticket = sched.submit(r.prompt, r.gen);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream",
                                     [this, r, reply = std::move(reply), ticket](size_t, httplib::DataSink& sink) {
                                       return stream_events(r, reply, *ticket, sink);
                                     });
  }

  bool stream_events(const Request& r, const Reply& reply, Ticket& ticket, httplib::DataSink& sink) {
    const bool chat = reply.chat;
    auto chunk = [&](const ordered_json& choice) {
      return ordered_json{{"id", reply.id},
                          {"object", chat ? "chat.completion.chunk" : "text_completion"},
                          {"created", reply.created},
                          {"model", opt.model_name},
                          {"choices", ordered_json::array({choice})}};
    };
    bool alive = true;
    auto write = [&](const std::string& s) {
      if (alive && !sink.write(s.data(), s.size())) alive = false;
    };
    if (chat)
      write(
          sse(chunk({{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}})));
    for (;;) {
      Ticket::Event e = ticket.next();
      if (!e.text.empty() || !e.logprobs.empty()) {
        ordered_json choice{{"index", 0}};
        if (chat) {
          choice["delta"] = {{"content", e.text}};
        } else {
          choice["text"] = e.text;
        }
        if (r.logprobs >= 0) choice["logprobs"] = chat ? chat_logprobs(e.logprobs) : completion_logprobs(e.logprobs);
        choice["finish_reason"] = nullptr;
        write(sse(chunk(choice)));
      }
      if (!alive || !sink.is_writable()) ticket.cancel();  // the client is gone
      if (e.done) break;
    }
    try {
      const GenerateResult& g = ticket.result();
      ordered_json last{{"index", 0}, {"finish_reason", finish_reason_name(g.finish_reason)}};
      if (chat) {
        last["delta"] = ordered_json::object();
      } else {
        last["text"] = "";
      }
      ordered_json done = chunk(last);
      if (r.include_usage)
        done["usage"] = usage(static_cast<int64_t>(r.prompt.size()), static_cast<int64_t>(g.tokens.size()));
      write(sse(done));
    } catch (const std::exception& e) {
      write(sse(error_body(RequestError{500, e.what(), "", "server_error"})));
    }
    write("data: [DONE]\n\n");
    sink.done();
    return true;
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

void Server::begin_shutdown() {
  if (impl_) impl_->sched.stop();  // running and waiting generations end (cancelled); their handlers return
}

void Server::stop() {
  if (!impl_) return;
  begin_shutdown();
  impl_->http.stop();
}

}  // namespace moe::serve
