// Bad templates get clear errors: a parse error names the line, the column
// and what was expected; a render error names the line and the problem; a
// hostile template (one from a downloaded GGUF) hits a documented limit
// instead of hanging or exhausting memory.
#include <gtest/gtest.h>

#include <string>

#include "jinja/template.h"

namespace flatline {
namespace {

using ojson = nlohmann::ordered_json;

std::string parse_error(const std::string& source) {
  try {
    jinja::Template::parse(source);
  } catch (const jinja::Error& e) {
    return e.what();
  }
  return "(parsed without error)";
}

std::string render_error(const std::string& source, const ojson& context = ojson::object(),
                         const jinja::RenderOptions& options = {}) {
  try {
    jinja::Template::parse(source).render(context, options);
  } catch (const jinja::Error& e) {
    return e.what();
  }
  return "(rendered without error)";
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

TEST(JinjaErrors, ParseErrorsNameLineColumnAndWhatWasExpected) {
  const struct {
    const char* source;
    const char* message;
  } cases[] = {
      {"{% if x %}", "line 1, column 11: unexpected end of template: the 'if' on line 1 needs 'elif' or 'else' or 'endif'"},
      {"{% if a %}\n{% for x in y %}\n{% endif %}", "line 3, column 4: unknown tag 'endif'; the 'for' on line 2 needs 'endfor' or 'else'"},
      {"{{ 1 + }}", "line 1, column 8: unexpected '}}', expected an expression"},
      {"{{ 1 2 }}", "line 1, column 6: expected '}}', found integer 2"},
      {"{% unknown %}", "line 1, column 4: unknown tag 'unknown'"},
      {"{% do x %}", "unknown tag 'do'"},  // jinja2.ext.do is not in HF's environment
      {"ok\n{{ 'open }}", "line 2, column 4: unterminated string literal"},
      {"{# never closed", "line 1, column 1: missing end of comment tag '#}'"},
      {"{{ x", "line 1, column 1: unexpected end of template, expected '}}' to close the tag opened here"},
      {"{% macro m(a=1, b) %}{% endmacro %}", "non-default argument follows default argument"},
      {"{% break %}", "'break' outside of a for loop"},
      {"{{ (1 }}", "line 1, column 7: unexpected '}', expected ')'"},
      {"{{ x | }}", "line 1, column 8: expected a name, found '}}'"},
      {"{% set 1 = 2 %}", "can't assign to integer 1"},
      {"{% include 'other.jinja' %}", "the 'include' tag is not supported"},
      {"{{ 'a' @ 'b' }}", "unexpected character '@'"},
      {"{{ 99999999999999999999 }}", "does not fit in 64 bits"},
      {"{% raw %}never closed", "missing end of raw directive"},
  };
  for (const auto& c : cases) {
    const std::string message = parse_error(c.source);
    EXPECT_CONTAINS(message, "template syntax error at ");
    EXPECT_CONTAINS(message, c.message);
  }
}

TEST(JinjaErrors, RenderErrorsNameTheLineAndTheProblem) {
  const struct {
    const char* source;
    const char* context;
    const char* message;
  } cases[] = {
      {"line 1\n{{ 'x'|no_such_filter }}", "{}", "template error at line 2: no filter named 'no_such_filter'"},
      {"{{ 1 is no_such_test }}", "{}", "no test named 'no_such_test'"},
      {"{{ 'text'() }}", "{}", "'str' object is not callable"},
      {"{{ messages[0].content + 1 }}", R"({"messages": [{"content": "hi"}]})", "can only concatenate str (not \"int\") to str"},
      {"{{ message.content.strip() }}", R"({"message": {"content": null}})", "'None' has no attribute 'strip'"},
      {"{{ missing.attribute }}", "{}", "'missing' is undefined"},
      {"{{ tools|length }}", R"({"tools": null})", "object of type 'NoneType' has no len()"},
      {"{% for t in tools %}{% endfor %}", R"({"tools": null})", "'NoneType' object is not iterable"},
      {"{{ messages.append(1) }}", R"({"messages": []})", "access to attribute 'append' of 'list' object is unsafe."},
      {"{% set x = 1 %}{% set x.y = 2 %}", "{}", "cannot assign attribute 'y' on 'x': it is not a namespace() object"},
      // A namespace inside itself would be a reference cycle never freed (found by fuzz_jinja as a leak).
      {"{% set ns = namespace(n=0) %}{% set ns.n = ns %}", "{}", "cannot assign 'ns.n': the value contains 'ns' itself"},
      {"{% set a = namespace() %}{% set b = namespace(x=[{'k': a}]) %}{% set a.y = b %}", "{}",
       "cannot assign 'a.y': the value contains 'a' itself"},
      {"{{ 1 / 0 }}", "{}", "division by zero"},
      {"{{ 9223372036854775807 + 1 }}", "{}", "integer overflow"},
      {"{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "{}", "macro 'm' takes not more than 1 argument(s)"},
      {"{{ x|tojson }}", "{}", "Object of type Undefined is not JSON serializable"},
  };
  for (const auto& c : cases) EXPECT_CONTAINS(render_error(c.source, ojson::parse(c.context)), c.message);
  EXPECT_CONTAINS(render_error("{{ x }}", ojson::array()), "the template context must be a JSON object, found array");
}

TEST(JinjaErrors, RaiseExceptionCarriesTheTemplatesMessage) {
  const jinja::Template t = jinja::Template::parse(
      "{% for m in messages %}\n{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
      "{% endfor %}");
  try {
    t.render(ojson{{"messages", {{{"role", "system"}, {"content", "x"}}}}});
    FAIL() << "expected a TemplateRaisedError";
  } catch (const jinja::TemplateRaisedError& e) {
    EXPECT_EQ(e.raised_message(), "System role not supported");
    EXPECT_STREQ(e.what(), "the template raised an error at line 2: System role not supported");
  }
}

TEST(JinjaErrors, SelfRecursiveMacroStopsAtTheRecursionLimit) {
  const std::string source = "{% macro down(n) %}{{ down(n + 1) }}{% endmacro %}{{ down(0) }}";
  const std::string message = render_error(source);
  EXPECT_CONTAINS(message, "macro 'down' was called more than 100 levels deep (jinja::RenderOptions::max_recursion_depth)");
  jinja::RenderOptions shallow;
  shallow.max_recursion_depth = 5;
  EXPECT_CONTAINS(render_error(source, ojson::object(), shallow), "more than 5 levels deep");
  // Legitimate recursion below the limit works.
  EXPECT_EQ(jinja::Template::parse("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}")
                .render(ojson::object()),
            "54321");
}

TEST(JinjaErrors, HugeLoopsStopAtTheIterationLimit) {
  // 10^10 iterations if unbounded; stops after max_loop_iterations.
  EXPECT_CONTAINS(render_error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
                  "the template ran more than 1000000 loop iterations (jinja::RenderOptions::max_loop_iterations)");
  EXPECT_CONTAINS(render_error("{{ range(1000000000) }}"), "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  EXPECT_CONTAINS(render_error("{{ ([1, 2] * 1000000000)|length }}"), "loop iterations");
  jinja::RenderOptions few;
  few.max_loop_iterations = 10;
  EXPECT_CONTAINS(render_error("{% for i in range(11) %}{% endfor %}", ojson::object(), few), "more than 10 loop iterations");
  EXPECT_EQ(jinja::Template::parse("{% for i in range(10) %}{% endfor %}ok").render(ojson::object(), few), "ok");
}

TEST(JinjaErrors, HugeOutputAndStringsStopAtTheSizeLimits) {
  EXPECT_CONTAINS(render_error("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}"),
                  "the template's output exceeds 16777216 bytes (jinja::RenderOptions::max_output_bytes)");
  // No allocation of a terabyte: the size is checked before building the string.
  EXPECT_CONTAINS(render_error("{{ 'x' * 1000000000000 }}"), "max_output_bytes");
  // Doubling a string in a loop stops at the string size limit.
  EXPECT_CONTAINS(render_error("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"),
                  "the template built a string of");
  // Many large strings that are never printed still count.
  EXPECT_CONTAINS(render_error("{% for i in range(100000) %}{% set x = 'y' * 10000 %}{% endfor %}"),
                  "bytes of text in total (jinja::RenderOptions::max_total_bytes)");
  jinja::RenderOptions small;
  small.max_output_bytes = 10;
  EXPECT_CONTAINS(render_error("{{ 'hello world' }}", ojson::object(), small), "exceeds 10 bytes");
  EXPECT_CONTAINS(render_error("{{ ('a' * 8)|center(100) }}", ojson::object(), small), "max_output_bytes");
}

TEST(JinjaErrors, DeeplyNestedTemplatesAreRefusedNotAStackOverflow) {
  const std::string parens = "{{ " + std::string(2000, '(') + "1" + std::string(2000, ')') + " }}";
  EXPECT_CONTAINS(parse_error(parens), "nests expressions or statements deeper than 256 levels");
  const std::string lists = "{{ " + std::string(2000, '[') + std::string(2000, ']') + " }}";
  EXPECT_CONTAINS(parse_error(lists), "deeper than 256 levels");
  std::string ifs;
  for (int i = 0; i < 1000; ++i) ifs += "{% if true %}";
  EXPECT_CONTAINS(parse_error(ifs), "deeper than 256 levels");
  std::string nots = "{{ " ;
  for (int i = 0; i < 5000; ++i) nots += "not ";
  EXPECT_CONTAINS(parse_error(nots + "x }}"), "deeper than 256 levels");
}

}  // namespace
}  // namespace flatline
