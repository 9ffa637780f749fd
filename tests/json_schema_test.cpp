// JSON Schema -> grammar (runtime/json_schema.h). Texts drawn at random
// from each schema's grammar are checked by an outside validator, Debian's
// python3-jsonschema (tests/grammar/validate_json.py); texts that break the
// schema must be refused by the grammar.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "runtime/grammar.h"
#include "runtime/json_schema.h"
#include "schema_validator.h"
#include "test_support.h"
#include "util/error.h"

namespace flatline {
namespace {

using json = nlohmann::ordered_json;

// A random sentence of the grammar: random bytes among those allowed; past
// `soft_limit` bytes only bytes that bring the end closer.
std::string random_sentence(GrammarMatcher& m, std::mt19937& rng, size_t soft_limit) {
  std::string out;
  GrammarMatcher::State s = m.start();
  for (size_t step = 0; step < 100000; ++step) {
    if (m.finished(s)) break;
    if (m.accepts(s) && (out.size() > soft_limit || rng() % 6 == 0)) break;
    std::vector<std::pair<uint8_t, GrammarMatcher::State>> allowed;
    uint32_t best = UINT32_MAX;
    for (int b = 0; b < 256; ++b) {
      const auto n = m.next(s, static_cast<uint8_t>(b));
      if (n == GrammarMatcher::kDead) continue;
      allowed.push_back({static_cast<uint8_t>(b), n});
      best = std::min(best, m.min_remaining(n));
    }
    if (allowed.empty()) ADD_FAILURE() << "dead end after " << out;
    if (allowed.empty()) break;
    if (out.size() > soft_limit) {
      std::erase_if(allowed, [&](auto& a) { return m.min_remaining(a.second) > best; });
    }
    const auto& pick = allowed[rng() % allowed.size()];
    out += static_cast<char>(pick.first);
    s = pick.second;
  }
  return out;
}

using test::python_jsonschema_available;
using test::validate_with_python;

const char* kSchemas[] = {
    R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"ok":{"type":"boolean"}},"required":["name","age","ok"]})",
    R"({"type":"object","properties":{"a":{"type":"string"},"b":{"type":"number"},"c":{"type":"null"},"d":{"type":"integer"}},"required":["b"],"additionalProperties":false})",
    R"({"type":"object","properties":{"x":{"type":"integer"}},"additionalProperties":{"type":"string","maxLength":5}})",
    R"({"type":"object","properties":{"color":{"enum":["red","green","blue",null,3]},"kind":{"const":"fixed"}},"required":["color","kind"]})",
    R"({"type":"array","items":{"type":"integer","minimum":0,"maximum":255},"minItems":2,"maxItems":4})",
    R"({"type":"array","items":{"type":"array","items":{"type":"string","minLength":1,"maxLength":3},"maxItems":2},"minItems":1})",
    R"({"type":"object","properties":{"v":{"anyOf":[{"type":"string"},{"type":"integer"},{"type":"array","items":{"type":"boolean"}}]},"w":{"oneOf":[{"type":"object","properties":{"k":{"const":1}},"required":["k"]},{"type":"null"}]}},"required":["v","w"]})",
    R"({"type":["string","null","integer"]})",
    R"({"$defs":{"node":{"type":"object","properties":{"value":{"type":"integer"},"children":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":2}},"required":["value","children"],"additionalProperties":false}},"$ref":"#/$defs/node"})",
    R"({"type":"object","properties":{"d":{"type":"string","format":"date"},"t":{"type":"string","format":"time"},"dt":{"type":"string","format":"date-time"},"u":{"type":"string","format":"uuid"},"e":{"type":"string","format":"email"},"ip":{"type":"string","format":"ipv4"}},"required":["d","t","dt","u","e","ip"]})",
    R"({"type":"object","properties":{"code":{"type":"string","pattern":"^[A-Z]{2}-\\d{3,5}$"},"word":{"type":"string","pattern":"(cat|dog)s?"},"any":{"type":"string","pattern":"^a.c[^x]\"\\\\$"}},"required":["code","word","any"]})",
    R"({"type":"object","properties":{"i1":{"type":"integer","minimum":-50,"maximum":50},"i2":{"type":"integer","exclusiveMinimum":10,"exclusiveMaximum":1000},"i3":{"type":"integer","minimum":1000},"i4":{"type":"integer","maximum":-3},"i5":{"type":"integer","minimum":0}},"required":["i1","i2","i3","i4","i5"]})",
    R"({"type":"object","properties":{"n1":{"type":"number","minimum":0,"maximum":1},"n2":{"type":"number","minimum":-2.5,"maximum":3.5},"n3":{"type":"number","exclusiveMinimum":0},"n4":{"type":"number","maximum":-1}},"required":["n1","n2","n3","n4"]})",
    R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":{"type":"boolean"},"maxItems":4})",
    R"({"allOf":[{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]},{"properties":{"b":{"type":"integer"}},"required":["b"]}]})",
    // zod-to-json-schema's shape (openai's zodResponseFormat, AI SDK generateObject).
    R"({"type":"object","properties":{"name":{"type":"string"},"tags":{"type":"array","items":{"type":"string"}},"nick":{"anyOf":[{"type":"string"},{"type":"null"}]}},"required":["name","tags","nick"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"})",
    R"({"type":"object"})",
    R"({"type":"object","properties":{"s":{"type":"string","minLength":3}},"required":["s"]})",
    R"(true)",
};

TEST(JsonSchemaGrammar, RandomTextsValidateWithPythonJsonschema) {
  if (!python_jsonschema_available()) GTEST_SKIP() << "/usr/bin/python3 cannot import jsonschema (install Debian's python3-jsonschema)";
  json cases = json::array();
  std::mt19937 rng(1234);
  for (const char* text : kSchemas) {
    const json schema = json::parse(text);
    const std::string gbnf = json_schema_to_gbnf(schema);
    std::shared_ptr<const Grammar> g;
    ASSERT_NO_THROW(g = Grammar::parse(gbnf)) << gbnf;
    GrammarMatcher m(g);
    json texts = json::array();
    for (int i = 0; i < 40; ++i) {
      const std::string t = random_sentence(m, rng, 60 + 10 * (i % 8));
      // Our own JSON parser agrees that it is JSON.
      EXPECT_NO_THROW((void)json::parse(t)) << t;
      texts.push_back(t);
    }
    cases.push_back(json{{"schema", schema}, {"texts", texts}});
  }
  const auto results = validate_with_python(cases);
  ASSERT_EQ(results.size(), cases.size());
  size_t checked = 0;
  for (size_t c = 0; c < results.size(); ++c)
    for (size_t i = 0; i < results[c].size(); ++i, ++checked)
      EXPECT_EQ(results[c][i], "") << "schema " << cases[c]["schema"].dump() << "\ntext " << cases[c]["texts"][i].dump();
  std::printf("  %zu random texts over %zu schemas validated by python3-jsonschema\n", checked, results.size());
}

bool accepts(const char* schema, const std::string& text) {
  GrammarMatcher m(Grammar::parse(json_schema_to_gbnf(json::parse(schema))));
  const auto s = m.feed(m.start(), text);
  return s != GrammarMatcher::kDead && m.accepts(s);
}

// Found by the server test on the trained RWKV-7: "0000-07-10" passed the
// grammar, but year 0 is no date for python3-jsonschema (nor Python's date).
TEST(JsonSchemaGrammar, DateFormatRefusesYearZero) {
  const char* date = R"({"type":"string","format":"date"})";
  EXPECT_FALSE(accepts(date, R"("0000-07-10")"));
  EXPECT_TRUE(accepts(date, R"("0001-07-10")"));
  EXPECT_TRUE(accepts(date, R"("0099-12-31")"));
  EXPECT_TRUE(accepts(date, R"("2024-02-28")"));
}

TEST(JsonSchemaGrammar, RefusesTextsThatBreakTheSchema) {
  const char* person = kSchemas[0];
  EXPECT_TRUE(accepts(person, R"({"name": "Ann", "age": 31, "ok": true})"));
  EXPECT_FALSE(accepts(person, R"({"name": "Ann", "age": 31})"));                  // required
  EXPECT_FALSE(accepts(person, R"({"name": "Ann", "age": "31", "ok": true})"));    // type
  EXPECT_FALSE(accepts(person, R"({"name": "Ann", "age": 31.5, "ok": true})"));    // integer
  EXPECT_FALSE(accepts(person, R"({"name": "Ann", "age": 31, "ok": true, "x": 1})"));  // additional
  const char* optional = kSchemas[1];
  EXPECT_TRUE(accepts(optional, R"({"b": 1.5})"));
  EXPECT_TRUE(accepts(optional, R"({"a": "x", "b": -2, "d": 4})"));
  EXPECT_FALSE(accepts(optional, R"({"a": "x"})"));
  EXPECT_FALSE(accepts(optional, R"({})"));
  EXPECT_FALSE(accepts(kSchemas[3], R"({"color": "pink", "kind": "fixed"})"));  // enum
  EXPECT_FALSE(accepts(kSchemas[3], R"({"color": "red", "kind": "other"})"));   // const
  EXPECT_TRUE(accepts(kSchemas[4], "[0, 255]"));
  EXPECT_FALSE(accepts(kSchemas[4], "[0]"));             // minItems
  EXPECT_FALSE(accepts(kSchemas[4], "[1, 2, 3, 4, 5]"));  // maxItems
  EXPECT_FALSE(accepts(kSchemas[4], "[1, 256]"));         // maximum
  EXPECT_FALSE(accepts(kSchemas[4], "[1, 01]"));          // leading zero
  EXPECT_FALSE(accepts(kSchemas[9], R"({"d": "2024-02-30", "t": "10:00:00Z", "dt": "2024-01-01T00:00:00Z", "u": "0", "e": "a@b.c", "ip": "1.2.3.4"})"));
  EXPECT_TRUE(accepts(kSchemas[10], R"({"code": "AB-12345", "word": "dogs", "any": "abcd\"\\"})"));
  EXPECT_FALSE(accepts(kSchemas[10], R"({"code": "AB-12", "word": "dogs", "any": "abcd\"\\"})"));
  EXPECT_TRUE(accepts(kSchemas[11], R"({"i1": -50, "i2": 11, "i3": 123456, "i4": -3, "i5": 0})"));
  EXPECT_FALSE(accepts(kSchemas[11], R"({"i1": -51, "i2": 11, "i3": 123456, "i4": -3, "i5": 0})"));
  EXPECT_FALSE(accepts(kSchemas[11], R"({"i1": 0, "i2": 10, "i3": 123456, "i4": -3, "i5": 0})"));
  EXPECT_FALSE(accepts(kSchemas[11], R"({"i1": 0, "i2": 11, "i3": 999, "i4": -3, "i5": 0})"));
  EXPECT_FALSE(accepts(kSchemas[11], R"({"i1": 0, "i2": 11, "i3": 1000, "i4": -2, "i5": 0})"));
  EXPECT_FALSE(accepts(kSchemas[11], R"({"i1": 0, "i2": 11, "i3": 1000, "i4": -3, "i5": -1})"));
  EXPECT_FALSE(accepts(kSchemas[12], R"({"n1": 1.5, "n2": 0, "n3": 1, "n4": -1})"));
  EXPECT_FALSE(accepts(kSchemas[12], R"({"n1": 0.5, "n2": 0, "n3": 0, "n4": -1})"));
}

// The layout is json.dumps' (", " and ": "), so a template's tojson
// renders a generated value back to the same text.
TEST(JsonSchemaGrammar, LayoutIsTheOneTojsonPrints) {
  EXPECT_TRUE(accepts(kSchemas[0], R"({"name": "Ann", "age": 31, "ok": true})"));
  EXPECT_FALSE(accepts(kSchemas[0], R"({"name":"Ann","age":31,"ok":true})"));
  EXPECT_FALSE(accepts(kSchemas[0], "{\n  \"name\": \"Ann\", \"age\": 31, \"ok\": true}"));
  EXPECT_EQ(json_compact_text(json::parse(R"({"a":[1,{"b":null}],"c":"\u00e9\n"})")), "{\"a\": [1, {\"b\": null}], \"c\": \"\xc3\xa9\\n\"}");
}

std::string schema_error(const char* schema) {
  try {
    json_schema_to_gbnf(json::parse(schema));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(JsonSchemaGrammar, UnsupportedOrInvalidSchemasSayWhatAndWhere) {
  EXPECT_NE(schema_error(R"({"type":"object","properties":{"a":{"type":"strnig"}}})").find("schema.properties.a.type: unknown type \"strnig\""), std::string::npos);
  EXPECT_NE(schema_error(R"({"$ref":"https://example.org/x.json"})").find("only references inside the schema"), std::string::npos);
  EXPECT_NE(schema_error(R"({"$ref":"#/$defs/missing"})").find("does not point into the schema"), std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"array","minItems":3,"maxItems":1})").find("maxItems (1) is below minItems (3)"), std::string::npos);
  EXPECT_NE(schema_error(R"J({"type":"string","pattern":"(?=x)"})J").find("look-around"), std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"string","pattern":"(a)\\1"})").find("back-references"), std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"integer","minimum":5,"maximum":4})").find("no integer lies between"), std::string::npos);
  EXPECT_NE(schema_error(R"(false)").find("matches nothing"), std::string::npos);
  EXPECT_NE(schema_error(R"({"enum":[]})").find("enum: expected a non-empty array"), std::string::npos);
}

}  // namespace
}  // namespace flatline
