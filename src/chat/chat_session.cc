// Chat helpers shared by `moe chat`, `moe run --chat` and `moe serve` (see chat_session.h).
#include "chat/chat_session.h"

#include "io/paths.h"
#include "util/error.h"

namespace moe {

ChatTemplate load_chat_template(const Tokenizer* tok, const std::string& template_file) {
  if (tok == nullptr) fail("chat", "the model has no tokenizer (tokenizer.json or GGUF vocabulary): chat needs one");
  if (template_file.empty()) return ChatTemplate::of(*tok);
  const std::string bos = tok->bos_id() ? tok->id_to_token(*tok->bos_id()) : "";
  const std::string eos = tok->eos_id() ? tok->id_to_token(*tok->eos_id()) : "";
  return ChatTemplate(read_input_file(template_file, "--chat-template", "chat"), bos, eos, template_file);
}

std::vector<int32_t> chat_prompt_ids(const Tokenizer& tok, const ChatTemplate& tmpl,
                                     const nlohmann::ordered_json& messages, const ChatTemplateOptions& options) {
  ChatTemplateOptions o = options;
  o.add_generation_prompt = true;
  return tok.encode(tmpl.apply(messages, o), /*add_special=*/false);
}

GenerateResult chat_reply(Decoder& model, const Tokenizer& tok, const ChatTemplate& tmpl,
                          const nlohmann::ordered_json& messages, GenerateOptions options,
                          const ChatTemplateOptions& template_options) {
  const std::vector<int32_t> ids = chat_prompt_ids(tok, tmpl, messages, template_options);
  TextStream text(&tok, model.spec().vocab);
  options.text = &text;
  if (options.context > 0 && static_cast<int64_t>(ids.size()) >= options.context)
    fail("chat", "the conversation is {} tokens, the context {}: /reset to start over", ids.size(), options.context);
  if (options.context > 0)
    options.max_new_tokens =
        std::min<int64_t>(options.max_new_tokens, options.context - static_cast<int64_t>(ids.size()));
  return generate(model, ids, options);
}

}  // namespace moe
