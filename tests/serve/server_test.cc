// `moe serve` on a loopback port with a tiny instruct model (tests/common/chat_model.h), driven by
// an HTTP client: /health, /v1/models, /v1/completions and /v1/chat/completions streamed (SSE) and
// not, the streamed text equal to the non-streamed one for the same seed, usage counts, logprobs,
// OpenAI-style errors (400, 401, 404, 413, 429), a client that disconnects mid-stream, /metrics,
// and a bounded load test (16 clients x 20 requests, mixed lengths, some cancelled midway).
#include "serve/server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/chat_model.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Running {
  std::unique_ptr<Decoder> model;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<serve::Server> server;
  std::thread thread;
  int port = 0;
  ~Running() {
    server->stop();
    if (thread.joinable()) thread.join();
  }
};

class Serve : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = (fs::temp_directory_path() / ("moe_serve_" + std::to_string(::getpid()))).string();
    testing::write_chat_model(dir_);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  // eos: <|im_end|> ends completions (false: only the length does, for requests that must run long).
  static std::unique_ptr<Running> start(serve::ServerOptions o = {}, bool eos = true) {
    auto r = std::make_unique<Running>();
    r->model = std::make_unique<Decoder>(dir_);
    r->tok = load_tokenizer(dir_);
    o.port = 0;
    o.model_name = "tiny";
    if (eos) o.eos_ids = {257};
    r->server = std::make_unique<serve::Server>(*r->model, r->tok.get(), ChatTemplate::of(*r->tok), o);
    r->port = r->server->bind();
    r->thread = std::thread([s = r->server.get()] { s->run(); });
    httplib::Client c("127.0.0.1", r->port);  // serving once /health answers (stop() before then would be lost)
    for (int i = 0; i < 200 && !c.Get("/health"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return r;
  }
  static std::string dir_;
};
std::string Serve::dir_;

// The JSON payloads of an SSE body, and whether it ended with [DONE].
std::vector<json> events(const std::string& body, bool& done) {
  std::vector<json> out;
  done = false;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    const std::string data = body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    out.push_back(json::parse(data));
  }
  return out;
}

TEST_F(Serve, HealthAndModels) {
  auto s = start();
  httplib::Client c("127.0.0.1", s->port);
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(json::parse(h->body)["status"], "ok");
  auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(json::parse(m->body)["data"][0]["id"], "tiny");
}

TEST_F(Serve, CompletionsStreamedEqualsNotStreamed) {
  auto s = start();
  httplib::Client c("127.0.0.1", s->port);
  json req = {{"prompt", "Hello"}, {"max_tokens", 12}, {"temperature", 0.9}, {"seed", 7}};
  auto r = c.Post("/v1/completions", req.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 5);  // 5 bytes, no BOS
  const int completion = j["usage"]["completion_tokens"];
  EXPECT_GT(completion, 0);
  EXPECT_LE(completion, 12);
  EXPECT_EQ(j["usage"]["total_tokens"], 5 + completion);
  const std::string text = j["choices"][0]["text"];
  const std::string reason = j["choices"][0]["finish_reason"];
  EXPECT_TRUE(reason == "stop" || reason == "length");

  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  auto st = c.Post("/v1/completions", req.dump(), "application/json");
  ASSERT_TRUE(st);
  ASSERT_EQ(st->status, 200);
  EXPECT_NE(st->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  bool done = false;
  const std::vector<json> ev = events(st->body, done);
  EXPECT_TRUE(done);
  ASSERT_FALSE(ev.empty());
  std::string streamed;
  for (const json& e : ev) streamed += e["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(ev.back()["choices"][0]["finish_reason"], reason);
  EXPECT_EQ(ev.back()["usage"]["completion_tokens"], completion);
}

TEST_F(Serve, ChatCompletionsStreamedEqualsNotStreamedWithLogprobs) {
  auto s = start();
  httplib::Client c("127.0.0.1", s->port);
  json req = {
      {"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi 你好"}}}},
      {"max_tokens", 10},
      {"temperature", 0.7},
      {"seed", 11},
      {"logprobs", true},
      {"top_logprobs", 2}};
  auto r = c.Post("/v1/chat/completions", req.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  const std::string text = j["choices"][0]["message"]["content"];
  const int completion = j["usage"]["completion_tokens"];
  ASSERT_EQ(j["choices"][0]["logprobs"]["content"].size(), static_cast<size_t>(completion));
  EXPECT_EQ(j["choices"][0]["logprobs"]["content"][0]["top_logprobs"].size(), 2u);

  req["stream"] = true;  // logprobs stream too, in the chunks of their tokens
  auto st = c.Post("/v1/chat/completions", req.dump(), "application/json");
  ASSERT_TRUE(st);
  bool done = false;
  const std::vector<json> ev = events(st->body, done);
  EXPECT_TRUE(done);
  ASSERT_GE(ev.size(), 2u);
  EXPECT_EQ(ev.front()["object"], "chat.completion.chunk");
  EXPECT_EQ(ev.front()["choices"][0]["delta"]["role"], "assistant");
  std::string streamed;
  json streamed_logprobs = json::array();
  for (const json& e : ev) {
    if (e["choices"][0]["delta"].contains("content"))
      streamed += e["choices"][0]["delta"]["content"].get<std::string>();
    if (e["choices"][0].contains("logprobs") && !e["choices"][0]["logprobs"].is_null())
      for (const json& t : e["choices"][0]["logprobs"]["content"]) streamed_logprobs.push_back(t);
  }
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(streamed_logprobs, j["choices"][0]["logprobs"]["content"]);
  EXPECT_FALSE(ev.back()["choices"][0]["finish_reason"].is_null());
}

TEST_F(Serve, ErrorsAreOpenAIStyleJson) {
  serve::ServerOptions o;
  o.context = 64;
  o.max_body_bytes = 4096;
  auto s = start(o);
  httplib::Client c("127.0.0.1", s->port);
  struct Case {
    std::string path, body;
    int status;
    std::string needle;
  };
  const Case cases[] = {
      {"/v1/completions", "{not json", 400, "not valid JSON"},
      {"/v1/completions", R"({"prompt": "x", "n": 2})", 400, "n = 1"},
      {"/v1/completions", R"({"prompt": "x", "temperature": -1})", 400, "temperature"},
      {"/v1/completions", R"({"max_tokens": 3})", 400, "'prompt' is required"},
      {"/v1/completions", R"({"prompt": [1, 99999]})", 400, "token ids"},
      {"/v1/completions", json({{"prompt", std::string(100, 'a')}}).dump(), 400, "context"},
      {"/v1/chat/completions", R"({"messages": []})", 400, "messages"},
      {"/v1/chat/completions", R"({"messages": [{"content": "no role"}]})", 400, "role"},
      {"/v1/completions", json({{"prompt", std::string(10000, 'a')}}).dump(), 413, "too large"},
  };
  for (const Case& k : cases) {
    auto r = c.Post(k.path, k.body, "application/json");
    ASSERT_TRUE(r) << k.body.substr(0, 60);
    EXPECT_EQ(r->status, k.status) << k.body.substr(0, 60) << ": " << r->body;
    const json j = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << r->body;
    EXPECT_NE(j["error"]["message"].get<std::string>().find(k.needle), std::string::npos) << r->body;
  }
  auto nf = c.Get("/v1/nothing");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404);
  EXPECT_TRUE(json::parse(nf->body).contains("error"));
  // Still serving after all of that.
  auto ok = c.Post("/v1/completions", R"({"prompt": "ok", "max_tokens": 2})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(Serve, ApiKeyIsRequiredButNotForHealth) {
  serve::ServerOptions o;
  o.api_key = "sekrit";
  auto s = start(o);
  httplib::Client c("127.0.0.1", s->port);
  auto no = c.Get("/v1/models");
  ASSERT_TRUE(no);
  EXPECT_EQ(no->status, 401);
  EXPECT_EQ(json::parse(no->body)["error"]["code"], "invalid_api_key");
  auto yes = c.Get("/v1/models", {{"Authorization", "Bearer sekrit"}});
  ASSERT_TRUE(yes);
  EXPECT_EQ(yes->status, 200);
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(Serve, ClientDisconnectMidStreamCancelsAndServingGoesOn) {
  auto s = start();
  {
    httplib::Client c("127.0.0.1", s->port);
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.set_header("Content-Type", "application/json");
    req.body =
        json({{"prompt", "Tell a long story"}, {"max_tokens", 200}, {"stream", true}, {"temperature", 1.0}}).dump();
    int chunks = 0;
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 2; };
    c.send(req);  // aborted by the receiver
    EXPECT_GE(chunks, 1);
  }
  httplib::Client c("127.0.0.1", s->port);
  auto r = c.Post("/v1/chat/completions",
                  json({{"messages", {{{"role", "user"}, {"content", "again"}}}}, {"max_tokens", 3}}).dump(),
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST_F(Serve, ConcurrentRequestsShareStepsAndMatchSequentialAnswers) {
  auto s = start();
  auto body = [](int seed) {
    return json({{"prompt", "Count:"}, {"max_tokens", 8}, {"temperature", 1.0}, {"seed", seed}}).dump();
  };
  std::vector<std::string> sequential(4), concurrent(4);
  {
    httplib::Client c("127.0.0.1", s->port);
    for (int i = 0; i < 4; ++i) {
      auto r = c.Post("/v1/completions", body(i), "application/json");
      ASSERT_TRUE(r);
      sequential[i] = json::parse(r->body)["choices"][0]["text"];
    }
  }
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", s->port);
      auto r = c.Post("/v1/completions", body(i), "application/json");
      if (r && r->status == 200) concurrent[i] = json::parse(r->body)["choices"][0]["text"];
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(concurrent, sequential);
}

// The npm openai client against the server (tests/reference/serve, installed by `make deps`).
TEST_F(Serve, NpmOpenAIClient) {
  const std::string ref = std::string(MOE_TEST_DATA_DIR) + "/reference/serve";
  if (!fs::exists(ref + "/node_modules/openai/package.json"))
    GTEST_SKIP() << "npm openai client not installed: cd tests/reference/serve && npm install (make deps does)";
  auto s = start();
  const std::string cmd =
      "node " + ref + "/openai_client.mjs http://127.0.0.1:" + std::to_string(s->port) + "/v1 tiny 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
}

TEST_F(Serve, QueueLimitAnswers429AndMetricsCountIt) {
  serve::ServerOptions o;
  o.batching = {1, 0, 64};  // one slot, no queue
  auto s = start(o, false);
  std::atomic<bool> started{false}, release{false};
  std::thread holder([&] {  // a long stream in the only slot, dropped once the 429 was seen
    httplib::Client c("127.0.0.1", s->port);
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.set_header("Content-Type", "application/json");
    req.body = json({{"prompt", "Go"}, {"max_tokens", 4000}, {"stream", true}, {"temperature", 1.0}}).dump();
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
      started = true;
      return !release.load();
    };
    c.send(req);
  });
  while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  httplib::Client c("127.0.0.1", s->port);
  auto r = c.Post("/v1/completions", json({{"prompt", "x"}, {"max_tokens", 2}}).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429) << r->body;
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "queue_full");
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  release = true;
  holder.join();
  // The slot frees once the dropped stream is cancelled.
  for (int i = 0; i < 200; ++i) {
    r = c.Post("/v1/completions", json({{"prompt", "x"}, {"max_tokens", 2}}).dump(), "application/json");
    if (r && r->status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_NE(m->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  for (const char* want :
       {"moe_http_requests_total{endpoint=\"/v1/completions\",status=\"429\"}", "moe_requests_cancelled_total 1",
        "moe_queue_length 0", "moe_generated_tokens_total", "moe_distinct_experts_per_step",
        "moe_distinct_experts_predicted", "moe_expert_tokens_total{layer=\"0\",expert=\"0\"}", "moe_batch_size"})
    EXPECT_NE(m->body.find(want), std::string::npos) << want << "\n" << m->body.substr(0, 2000);
}

// Once shutdown began, a generation request gets 503 "shutting_down" (OpenAI-style JSON, streamed or
// not) while /health still answers; the metrics count the 503s.
TEST_F(Serve, ShuttingDownAnswers503) {
  auto s = start();
  s->server->begin_shutdown();
  httplib::Client c("127.0.0.1", s->port);
  for (bool stream : {false, true}) {
    auto r = c.Post("/v1/completions", json({{"prompt", "x"}, {"max_tokens", 2}, {"stream", stream}}).dump(),
                    "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503) << r->body;
    const json e = json::parse(r->body)["error"];
    EXPECT_EQ(e["code"], "shutting_down");
    EXPECT_EQ(e["type"], "server_error");
  }
  auto chat = c.Post("/v1/chat/completions",
                     json({{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 2}}).dump(),
                     "application/json");
  ASSERT_TRUE(chat);
  EXPECT_EQ(chat->status, 503) << chat->body;
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  // A request is counted once its response is written, which may be after the client read it.
  const std::string want = "moe_http_requests_total{endpoint=\"/v1/completions\",status=\"503\"} 2";
  std::string metrics;
  for (int i = 0; i < 200 && metrics.find(want) == std::string::npos; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (auto m = c.Get("/metrics")) metrics = m->body;
  }
  EXPECT_NE(metrics.find(want), std::string::npos) << metrics.substr(0, 2000);
}

// 16 clients x 20 requests against 4 slots: mixed prompts and lengths, streamed and not, every
// fifth one dropped midway. Each answer that completes is whole and equals the answer of the
// same request made alone; nothing is lost or duplicated, and the counters add up.
TEST_F(Serve, LoadSixteenClientsTwentyRequestsWithCancels) {
  serve::ServerOptions o;
  o.batching = {4, 64, 64};
  auto s = start(o);
  const std::vector<std::string> prompts = {"Hi", "Count to ten:", "A much longer prompt about many things, and more",
                                            "x", "The quick brown fox jumps over the lazy dog. Again:"};
  auto request = [&](int k) {
    return json({{"prompt", prompts[k % prompts.size()]},
                 {"max_tokens", 1 + (k * 7) % 24},
                 {"temperature", 0.8},
                 {"seed", k % 11}});
  };
  const int kinds = 5 * 24;  // distinct (prompt, max_tokens, seed) triples cycle with k
  std::vector<std::string> want(kinds);
  {
    httplib::Client c("127.0.0.1", s->port);
    for (int k = 0; k < kinds; ++k) {
      auto r = c.Post("/v1/completions", request(k).dump(), "application/json");
      ASSERT_TRUE(r);
      ASSERT_EQ(r->status, 200) << r->body;
      want[k] = json::parse(r->body)["choices"][0]["text"];
    }
  }
  // unanswered: dropped requests whose connection failed before the server answered (httplib reuses
  // the connection a drop left behind): the server never saw them, so they are not generations.
  std::atomic<int> ok{0}, cancelled{0}, wrong{0}, unanswered{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 16; ++t) {
    clients.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", s->port);
      c.set_read_timeout(60, 0);
      for (int i = 0; i < 20; ++i) {
        const int n = t * 20 + i, k = (n * 13) % kinds;
        json body = request(k);
        const bool stream = n % 2 == 0, cancel = n % 5 == 0;
        if (!stream && !cancel) {
          auto r = c.Post("/v1/completions", body.dump(), "application/json");
          if (r && r->status == 200 && json::parse(r->body)["choices"][0]["text"] == want[k]) {
            ++ok;
          } else {
            ++wrong;
          }
          continue;
        }
        body["stream"] = true;
        body["max_tokens"] = cancel ? 400 : body["max_tokens"].get<int>();
        httplib::Request req;
        req.method = "POST";
        req.path = "/v1/completions";
        req.set_header("Content-Type", "application/json");
        req.body = body.dump();
        std::string got;
        int chunks = 0;
        req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
          got.append(data, len);
          return !cancel || ++chunks < 3;
        };
        c.send(req);
        if (cancel) {
          ++cancelled;
          if (got.empty()) ++unanswered;
          continue;
        }
        bool done = false;
        std::string text;
        for (const json& e : events(got, done)) text += e["choices"][0]["text"].get<std::string>();
        if (done && text == want[k]) {
          ++ok;
        } else {
          ++wrong;
        }
      }
    });
  }
  for (auto& th : clients) th.join();
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(ok + cancelled, 320);
  EXPECT_EQ(cancelled, 64);
  httplib::Client c("127.0.0.1", s->port);
  json health;
  long finished = -1;
  for (int i = 0; i < 500; ++i) {  // the dropped streams end at their next step
    auto m = c.Get("/metrics");
    ASSERT_TRUE(m);
    auto value = [&](const std::string& name) {
      const size_t at = m->body.find("\n" + name + " ");
      return at == std::string::npos ? -1L : std::stol(m->body.substr(at + name.size() + 2));
    };
    // A stream dropped while it was still queued ends once admitted, and a request is counted after
    // its sequence leaves the batch: wait for the queue to drain and the counts to settle.
    finished = value("moe_requests_completed_total") + value("moe_requests_cancelled_total");
    if (m->body.find("moe_active_sequences 0") != std::string::npos &&
        m->body.find("moe_queue_length 0") != std::string::npos && finished == kinds + 320 - unanswered) {
      // A dropped stream may have finished before the server saw the drop: completed or cancelled.
      EXPECT_EQ(finished, kinds + 320 - unanswered);
      EXPECT_GE(value("moe_requests_completed_total"), kinds + ok);
      EXPECT_EQ(value("moe_requests_failed_total"), 0);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(finished, kinds + 320 - unanswered) << "completed + cancelled never reached every answered request";
  ADD_FAILURE() << "sequences still active long after every client finished";
}

}  // namespace
}  // namespace moe
