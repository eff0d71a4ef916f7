// The Jinja subset on its own: statements, whitespace control, filters, tests, methods, slicing,
// scoping (set in a loop, namespace()), macros, and errors with line numbers.
#include "chat/jinja.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace moe::jinja {
namespace {

std::string render(const std::string& src, const nlohmann::ordered_json& vars = nlohmann::ordered_json::object()) {
  std::map<std::string, Value> v;
  for (auto it = vars.begin(); it != vars.end(); ++it) v[it.key()] = Value::from_json(it.value());
  return Template(src, "t").render(v);
}

std::string error_of(const std::string& src) {
  try {
    render(src);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Jinja, StatementsAndWhitespaceControl) {
  EXPECT_EQ(render("a {{ x }} b", {{"x", 1}}), "a 1 b");
  EXPECT_EQ(render("{% if x %}yes{% elif y %}maybe{% else %}no{% endif %}", {{"x", false}, {"y", true}}), "maybe");
  EXPECT_EQ(render("{% for i in xs %}{{ loop.index }}{{ i }}{% if not loop.last %},{% endif %}{% endfor %}",
                   {{"xs", {"a", "b", "c"}}}),
            "1a,2b,3c");
  EXPECT_EQ(render("x  {%- if true -%}  y  {%- endif -%}  z"), "xyz");
  EXPECT_EQ(render("  {% if true %}\nA\n  {% endif %}\nB\n"), "A\nB");  // lstrip_blocks, trim_blocks, last \n
  EXPECT_EQ(render("{{- ' a ' -}}\n"), " a ");
  EXPECT_EQ(render("{# c #}x{#- c -#} y"), "xy");
  EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {{"d", {{"b", 1}, {"a", 2}}}}),
            "b=1;a=2;");
  EXPECT_EQ(render("{% for x in xs if x > 1 %}{{ x }}{{ loop.length }}{% else %}none{% endfor %}", {{"xs", {1, 2, 3}}}),
            "2232");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in [1,2,3,4] %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}"), "12");
}

TEST(Jinja, ScopesNamespacesAndMacros) {
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(render("{% set ns = namespace(x=1) %}{% for i in [1, 2] %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}"),
            "4");
  EXPECT_EQ(render("{% macro greet(name, punct='!') %}hi {{ name }}{{ punct }}{% endmacro %}{{ greet('a') }} "
                   "{{ greet('b', punct='?') }}"),
            "hi a! hi b?");
  EXPECT_EQ(render("{% set s %}inner {{ 1 + 1 }}{% endset %}[{{ s }}]"), "[inner 2]");
}

TEST(Jinja, ExpressionsFiltersTestsAndMethods) {
  EXPECT_EQ(render("{{ 7 // 2 }} {{ 7 % 3 }} {{ -7 // 2 }} {{ 1 / 2 }} {{ 2 ** 3 }} {{ 'a' ~ 1 }} {{ 'ab' * 2 }}"),
            "3 1 -4 0.5 8 a1 abab");
  EXPECT_EQ(render("{{ 'yes' if x else 'no' }} {{ x is defined }} {{ y is none }} {{ z is not defined }}",
                   {{"x", 0}, {"y", nullptr}}),
            "no true true true");
  EXPECT_EQ(render("{{ s[1:] }}|{{ s[:-1] }}|{{ s[::-1] }}|{{ xs[-1] }}|{{ xs[1:]|length }}",
                   {{"s", "hello"}, {"xs", {1, 2, 3}}}),
            "ello|hell|olleh|3|2");
  EXPECT_EQ(render("{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ 'a,b,,c'.split(',')|join('-') }}|"
                   "{{ ' a  b '.split()|length }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}"),
            "a b|a|a-b--c|2|true|true");
  EXPECT_EQ(render("{{ x|tojson }} {{ x|length }} {{ 'Hi'|upper }}{{ 'Hi'|lower }} {{ u|default('d') }} "
                   "{{ ''|default('e', true) }} {{ 'a-b'|replace('-', '+') }} {{ [3, 1]|first }}{{ [3, 1]|last }}",
                   {{"x", {{"a", {1, "é"}}, {"b", nullptr}}}}),
            "{\"a\": [1, \"é\"], \"b\": null} 2 HIhi d e a+b 31");
  EXPECT_EQ(render("{{ x|tojson(indent=2) }}", {{"x", {{"a", {1, 2}}}}}), "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
  EXPECT_EQ(
      render("{{ ms|selectattr('role', 'equalto', 'user')|map(attribute='c')|join }} "
             "{{ ms|rejectattr('role', 'equalto', 'user')|list|length }}",
             {{"ms", {{{"role", "user"}, {"c", "a"}}, {{"role", "bot"}, {"c", "b"}}, {{"role", "user"}, {"c", "c"}}}}}),
      "ac 1");
  EXPECT_EQ(render("{{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in d }} {{ 'z' not in d }} {{ d.get('k') }}",
                   {{"d", {{"k", 5}}}}),
            "true true true true 5");
  EXPECT_EQ(render("{{ x is string }}{{ x is mapping }}{{ d is mapping }}{{ l is iterable }}{{ 3 is odd }}",
                   {{"x", "s"}, {"d", nlohmann::ordered_json::object()}, {"l", {1}}}),
            "truefalsetruetruetrue");
  EXPECT_EQ(render("{{ 1.5 }} {{ 2.0 }} {{ none }}{{ undefined_name }} {{ true }}"), "1.5 2.0  true");
}

TEST(Jinja, ErrorsNameTheLine) {
  EXPECT_NE(error_of("line1\n{{ raise_exception('boom') }}").find("boom"), std::string::npos);
  EXPECT_NE(error_of("a\nb\n{% if x %}").find("t:3: the template ends before"), std::string::npos);
  EXPECT_NE(error_of("a\n{{ x | nosuchfilter }}").find("t:2: unknown filter 'nosuchfilter'"), std::string::npos);
  EXPECT_NE(error_of("{% frobnicate %}").find("unsupported statement"), std::string::npos);
  EXPECT_NE(error_of("{{ 'abc }}").find("not closed"), std::string::npos);
  EXPECT_NE(error_of("\n\n{{ none + 1 }}").find("t:3:"), std::string::npos);
  EXPECT_NE(error_of("{{ f() }}").find("'f' is undefined, not a function"), std::string::npos);
  EXPECT_EQ(error_of("{{ x.y.z }}").rfind("[template] t:1: '.y' of an undefined value", 0), 0u);
}

}  // namespace
}  // namespace moe::jinja
