// ChatTemplate (see chat_template.h).
#include "chat/chat_template.h"

#include <ctime>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace moe {

ChatTemplate::ChatTemplate(const std::string& source, std::string bos, std::string eos, const std::string& name)
    : template_(std::make_shared<jinja::Template>(source, name)), bos_(std::move(bos)), eos_(std::move(eos)) {}

ChatTemplate ChatTemplate::of(const Tokenizer& tok) {
  if (tok.chat_template().empty())
    fail("chat",
         "{}: the tokenizer has no chat template (tokenizer_config.json \"chat_template\" or GGUF "
         "tokenizer.chat_template); is this a base model rather than an instruct one?",
         tok.path());
  const std::string bos = tok.bos_id() ? tok.id_to_token(*tok.bos_id()) : "";
  const std::string eos = tok.eos_id() ? tok.id_to_token(*tok.eos_id()) : "";
  return ChatTemplate(tok.chat_template(), bos, eos, tok.path() + " chat_template");
}

std::string ChatTemplate::apply(const nlohmann::ordered_json& messages, const ChatTemplateOptions& o) const {
  if (!messages.is_array()) fail("chat", "messages must be a list of {{\"role\": ..., \"content\": ...}} objects");
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      fail("chat", "messages[{}] must be an object with a string \"role\", found {}", i, m.dump().substr(0, 200));
  }
  std::map<std::string, jinja::Value> vars;
  vars["messages"] = jinja::Value::from_json(messages);
  vars["add_generation_prompt"] = jinja::Value(o.add_generation_prompt);
  vars["bos_token"] = jinja::Value(bos_);
  vars["eos_token"] = jinja::Value(eos_);
  if (!o.tools.is_null()) vars["tools"] = jinja::Value::from_json(o.tools);
  if (o.extra.is_object())
    for (auto it = o.extra.begin(); it != o.extra.end(); ++it) vars[it.key()] = jinja::Value::from_json(it.value());
  auto now = std::make_shared<jinja::Callable>();
  auto clock = o.strftime_now;
  now->call = [clock](const jinja::CallArgs& a) {
    const std::string format = a.positional.empty() ? "%Y-%m-%d" : a.positional[0].to_string();
    if (clock) return jinja::Value(clock(format));
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[256];
    const size_t n = std::strftime(buf, sizeof(buf), format.c_str(), &tm);
    return jinja::Value(std::string(buf, n));
  };
  vars["strftime_now"] = jinja::Value::callable(now);
  return template_->render(vars);
}

}  // namespace moe
