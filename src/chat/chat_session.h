// One conversation with a model: the message history, the chat template, and a reply generated
// from the templated history and streamed as text (`moe chat`, `moe run --chat`, `moe serve`).
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "chat/chat_template.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/generation_config.h"
#include "tokenizer/tokenizer.h"

namespace moe {

// The model's template (tokenizer_config.json / GGUF), or the file given with --chat-template.
ChatTemplate load_chat_template(const Tokenizer* tok, const std::string& template_file);

// The prompt ids of a message list: the template's text encoded without added specials (the
// template writes its own BOS), as transformers' apply_chat_template tokenizes it.
std::vector<int32_t> chat_prompt_ids(const Tokenizer& tok, const ChatTemplate& tmpl,
                                     const nlohmann::ordered_json& messages, const ChatTemplateOptions& options = {});

// Generates the assistant's reply to `messages` (streamed through options.on_text); the EOS ids
// of the model end it. `options.text` is set here.
GenerateResult chat_reply(Decoder& model, const Tokenizer& tok, const ChatTemplate& tmpl,
                          const nlohmann::ordered_json& messages, GenerateOptions options,
                          const ChatTemplateOptions& template_options = {});

}  // namespace moe
