// Chat templates of real models (Qwen3, DeepSeek-V3, gpt-oss harmony, Mixtral, Llama 3 and 3.1)
// rendered by moe's Jinja interpreter byte-identical to @huggingface/jinja over the message lists
// of tests/reference/fixtures/chat_templates/cases.json (make chat-fixtures regenerates
// expected.json); the template's own exceptions are errors here too.
#include "chat/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/error.h"

namespace moe {
namespace {

using nlohmann::ordered_json;

const std::string kDir = std::string(MOE_TEST_DATA_DIR) + "/reference/fixtures/chat_templates/";

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class RealTemplate : public ::testing::TestWithParam<const char*> {};

TEST_P(RealTemplate, RendersAsHuggingFaceJinja) {
  const std::string name = GetParam();
  const ordered_json cases = ordered_json::parse(read(kDir + "cases.json"));
  const ordered_json expected = ordered_json::parse(read(kDir + "expected.json"))["templates"][name];
  ASSERT_TRUE(expected.is_object()) << name;
  const ChatTemplate t(read(kDir + name + ".jinja"), cases["bos_token"][name], cases["eos_token"][name], name);
  int rendered = 0;
  for (const ordered_json& c : cases["cases"]) {
    const std::string case_name = c["name"];
    const ordered_json& want = expected[case_name];
    ChatTemplateOptions o;
    o.add_generation_prompt = c["add_generation_prompt"];
    if (c.contains("tools")) o.tools = c["tools"];
    if (c.contains("extra")) o.extra = c["extra"];
    o.strftime_now = [](const std::string&) { return std::string("2025-06-28"); };
    if (want.contains("error")) {
      EXPECT_THROW(t.apply(c["messages"], o), Error) << name << " / " << case_name << ": " << want["error"];
      continue;
    }
    try {
      EXPECT_EQ(t.apply(c["messages"], o), want["text"].get<std::string>()) << name << " / " << case_name;
      ++rendered;
    } catch (const Error& e) {
      ADD_FAILURE() << name << " / " << case_name << ": " << e.what();
    }
  }
  EXPECT_GE(rendered, 10) << name;
}

INSTANTIATE_TEST_SUITE_P(Models, RealTemplate,
                         ::testing::Values("qwen3", "deepseek_v3", "gpt_oss", "mixtral", "llama3", "llama3_1"));

}  // namespace
}  // namespace moe
