// A model's chat template applied to an OpenAI-style message list, as transformers'
// apply_chat_template does: the Jinja template from tokenizer_config.json "chat_template" (or GGUF
// tokenizer.chat_template) rendered with messages, add_generation_prompt, tools, bos_token,
// eos_token, extra variables (enable_thinking, reasoning_effort, ...) and strftime_now().
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "chat/jinja.h"

namespace moe {

class Tokenizer;

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  nlohmann::ordered_json tools;                                     // null: no tools variable
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // more template variables
  // strftime_now(format) as transformers defines it; the local time when empty.
  std::function<std::string(const std::string& format)> strftime_now;
};

class ChatTemplate {
 public:
  // Throws moe::Error "[template] <name>:<line>: ..." when the template does not parse.
  ChatTemplate(const std::string& source, std::string bos_token, std::string eos_token,
               const std::string& name = "chat_template");
  // The template of a tokenizer (tokenizer_config.json or GGUF metadata), with its BOS / EOS
  // strings; a [chat] error naming the file when it has none.
  static ChatTemplate of(const Tokenizer& tok);

  // messages: [{"role": ..., "content": ..., ...}, ...]. Throws moe::Error "[chat] ..." for a
  // malformed list, "[template] ..." for what the template rejects (raise_exception).
  std::string apply(const nlohmann::ordered_json& messages, const ChatTemplateOptions& options = {}) const;

 private:
  std::shared_ptr<jinja::Template> template_;
  std::string bos_, eos_;
};

}  // namespace moe
