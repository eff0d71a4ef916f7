// Fuzzes `moe serve`'s request side (serve/request.h): the bytes of an HTTP body as
// /v1/completions or /v1/chat/completions would get them (the first byte picks the endpoint and
// whether the model has Qwen3's real tokenizer and chat template or is a byte model without one).
// Every answer must be a request or a RequestError with an HTTP status of 400..499 naming the problem;
// anything else (another exception, which the server would answer 500, a crash, a sanitizer report,
// a hang) is a finding. An accepted request must be a generation the scheduler can run: a prompt of
// ids inside the vocabulary, shorter than the context, and max_tokens within what remains.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "chat/chat_template.h"
#include "fuzz_util.h"
#include "serve/request.h"
#include "tokenizer/tokenizer.h"

namespace {

std::unique_ptr<moe::Tokenizer> g_tok;
std::unique_ptr<moe::ChatTemplate> g_tmpl;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_tok = moe::load_tokenizer(std::string(MOE_TOKENIZER_FIXTURES) + "/qwen3");
  g_tmpl = std::make_unique<moe::ChatTemplate>(moe::ChatTemplate::of(*g_tok));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool chat = (data[0] & 1) != 0, real = (data[0] & 2) != 0;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  moe::serve::ServerOptions options;
  options.context = 256;
  options.default_max_tokens = 16;
  const int64_t vocab = real ? static_cast<int64_t>(g_tok->vocab_size()) : 256;
  const moe::serve::RequestContext ctx{real ? g_tok.get() : nullptr, real ? g_tmpl.get() : nullptr, vocab};
  try {
    const moe::serve::Request r = moe::serve::parse_request(body, chat, options, ctx);
    moe::fuzz::check(!r.prompt.empty(), "an accepted request has a prompt");
    moe::fuzz::check(static_cast<int64_t>(r.prompt.size()) < options.context, "the prompt fits the context");
    for (int32_t id : r.prompt) moe::fuzz::check(id >= 0 && id < vocab, "prompt ids within the vocabulary");
    moe::fuzz::check(
        r.gen.max_new_tokens >= 0 && static_cast<int64_t>(r.prompt.size()) + r.gen.max_new_tokens <= options.context,
        "max_tokens within the context");
    moe::fuzz::check(r.logprobs >= -1 && r.logprobs <= 20, "logprobs from -1 to 20");
  } catch (const moe::serve::RequestError& e) {
    moe::fuzz::check(e.status >= 400 && e.status < 500 && !e.message.empty(), "a 4xx error with a message");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_request: an exception other than RequestError escaped: %s\n", e.what());
    std::abort();
  }
  return 0;
}
