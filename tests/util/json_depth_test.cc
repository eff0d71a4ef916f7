// JSON nesting depth by a scan of the text: brackets inside strings (escaped quotes included) do not
// count; the limit names the file.
#include "util/json_depth.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace moe {
namespace {

TEST(JsonDepth, CountsBracketsOutsideStrings) {
  EXPECT_EQ(json_nesting_depth("1"), 0u);
  EXPECT_EQ(json_nesting_depth("{}"), 1u);
  EXPECT_EQ(json_nesting_depth(R"({"a": [1, {"b": [[]]}], "c": {}})"), 5u);
  EXPECT_EQ(json_nesting_depth(R"({"a": "[[[[{{{{"})"), 1u);
  EXPECT_EQ(json_nesting_depth(R"({"a": "\"[[[", "b": [2]})"), 2u);
  EXPECT_EQ(json_nesting_depth(R"(["\\", [[3]]])"), 3u);
  EXPECT_EQ(json_nesting_depth("]]]]["), 1u);  // unbalanced: left to the parser
  EXPECT_NO_THROW(check_json_depth(std::string(kMaxJsonDepth, '['), "t", "f.json"));
  try {
    check_json_depth(std::string(kMaxJsonDepth + 1, '['), "t", "f.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[t] f.json: JSON nests 257 levels deep"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moe
