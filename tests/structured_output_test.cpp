// Structured output through the HTTP API: Ollama `format` ("json" or a
// schema), OpenAI `response_format` (json_object, json_schema strict) and the
// raw `grammar` field, on an RWKV-7 (RWKV World trie tokenizer, trained
// fixture), the random byte-vocabulary RWKV-7 and stories260K (SentencePiece
// llama). Sampled at temperature 1 with several seeds so the mask, not the
// model's habits, is what keeps the text valid; every reply is checked by
// Debian's python3-jsonschema.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "schema_validator.h"
#include "server_test_support.h"
#include "util/log.h"

namespace flatline {
namespace {

using test::json;
using test::TestServer;
using ojson = nlohmann::ordered_json;

const char* kPersonSchema = R"({"type":"object","properties":{
  "name":{"type":"string","minLength":1,"maxLength":16},
  "age":{"type":"integer","minimum":0,"maximum":120},
  "pets":{"type":"array","items":{"enum":["cat","dog","bee"]},"minItems":1,"maxItems":3},
  "home":{"type":"object","properties":{"city":{"type":"string","maxLength":10},"zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["city","zip"]},
  "nick":{"anyOf":[{"type":"string","maxLength":8},{"type":"null"}]},
  "kind":{"const":"person"},
  "born":{"type":"string","format":"date"}},
  "required":["name","age","pets","home","nick","kind","born"],"additionalProperties":false})";

class StructuredOutputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    set_log_level(LogLevel::Warn);
    dir_ = new test::TempDir("structured-output");
    has_shared_ = test::make_models_dir(dir_->path());
    const std::string stories = test::shared_model("stories260K/stories260K.gguf");
    if (!stories.empty()) std::filesystem::copy_file(stories, dir_->file("stories.gguf"));
    server_ = new TestServer(test::test_server_options(dir_->path()));
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    set_log_level(LogLevel::Info);
  }
  static const TestServer& srv() { return *server_; }
  static std::vector<std::string> models() {
    std::vector<std::string> m = {"random"};
    if (has_shared_) m.insert(m.end(), {"tiny", "stories"});
    return m;
  }

  // Ollama /api/chat, non-streaming: the reply's content.
  static std::string ollama_chat(const std::string& model, const json& format, int seed, int num_predict = 160) {
    json body = {{"model", model},
                 {"messages", json::array({json{{"role", "user"}, {"content", "Describe a person as JSON."}}})},
                 {"stream", false},
                 {"format", format},
                 {"options", {{"temperature", 1.0}, {"seed", seed}, {"num_predict", num_predict}}}};
    auto r = test::post(srv(), "/api/chat", body);
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) return "";
    return r.js()["message"]["content"].get<std::string>();
  }

  static test::TempDir* dir_;
  static TestServer* server_;
  static bool has_shared_;
};
test::TempDir* StructuredOutputTest::dir_ = nullptr;
TestServer* StructuredOutputTest::server_ = nullptr;
bool StructuredOutputTest::has_shared_ = false;

void expect_all_valid(const json& schema, const std::vector<std::string>& texts, const std::string& what) {
  ojson cases = ojson::array({ojson{{"schema", ojson::parse(schema.dump())}, {"texts", texts}}});
  const auto results = test::validate_with_python(cases);
  ASSERT_EQ(results.size(), 1u);
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(results[0][i], "") << what << ": " << texts[i];
}

TEST_F(StructuredOutputTest, OllamaFormatSchemaAlwaysValidates) {
  if (!test::python_jsonschema_available()) GTEST_SKIP() << "/usr/bin/python3 cannot import jsonschema (python3-jsonschema)";
  const json schema = json::parse(kPersonSchema);
  for (const std::string& model : models()) {
    std::vector<std::string> texts;
    for (int seed : {1, 2, 3}) texts.push_back(ollama_chat(model, schema, seed));
    expect_all_valid(schema, texts, model);
  }
}

// A budget too small for a free-running reply: the mask steers towards the
// end in time, so the text is still complete.
TEST_F(StructuredOutputTest, TightNumPredictStillGivesACompleteText) {
  if (!test::python_jsonschema_available()) GTEST_SKIP() << "/usr/bin/python3 cannot import jsonschema (python3-jsonschema)";
  const json schema = json::parse(R"({"type":"object","properties":{"a":{"type":"string"},"b":{"type":"array","items":{"type":"integer"}}},"required":["a","b"]})");
  std::vector<std::string> texts;
  for (int seed : {4, 5}) texts.push_back(ollama_chat("random", schema, seed, 24));
  expect_all_valid(schema, texts, "random, num_predict 24");
}

TEST_F(StructuredOutputTest, OllamaFormatJsonGivesAnObject) {
  for (const std::string& model : models()) {
    const std::string text = ollama_chat(model, "json", 7, 96);
    json value;
    ASSERT_NO_THROW(value = json::parse(text)) << model << ": " << text;
    EXPECT_TRUE(value.is_object()) << model << ": " << text;
  }
}

TEST_F(StructuredOutputTest, GenerateAndStreamingHonourFormat) {
  const json schema = json::parse(R"({"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]})");
  json body = {{"model", "random"}, {"prompt", "n?"}, {"stream", true}, {"format", schema},
               {"options", {{"temperature", 1.0}, {"seed", 3}, {"num_predict", 40}}}};
  auto r = test::post(srv(), "/api/generate", body);
  ASSERT_EQ(r.status, 200) << r.body;
  std::string text;
  for (const json& line : test::ndjson_lines(r.body)) text += line["response"].get<std::string>();
  json value;
  ASSERT_NO_THROW(value = json::parse(text)) << text;
  EXPECT_TRUE(value["n"].is_number_integer()) << text;
}

TEST_F(StructuredOutputTest, OpenAIResponseFormatJsonSchemaAndJsonObject) {
  if (!test::python_jsonschema_available()) GTEST_SKIP() << "/usr/bin/python3 cannot import jsonschema (python3-jsonschema)";
  const json schema = json::parse(kPersonSchema);
  for (const std::string& model : models()) {
    std::vector<std::string> texts;
    for (int seed : {11, 12}) {
      json body = {{"model", model},
                   {"messages", json::array({json{{"role", "user"}, {"content", "A person, please."}}})},
                   {"temperature", 1.0},
                   {"seed", seed},
                   {"max_tokens", 160},
                   {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "person"}, {"strict", true}, {"schema", schema}}}}}};
      auto r = test::post(srv(), "/v1/chat/completions", body);
      ASSERT_EQ(r.status, 200) << r.body;
      texts.push_back(r.js()["choices"][0]["message"]["content"].get<std::string>());
    }
    expect_all_valid(schema, texts, model);
    json body = {{"model", model},
                 {"messages", json::array({json{{"role", "user"}, {"content", "Any JSON."}}})},
                 {"temperature", 1.0},
                 {"seed", 5},
                 {"max_tokens", 80},
                 {"stream", true},
                 {"response_format", {{"type", "json_object"}}}};
    auto r = test::post(srv(), "/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    std::string text;
    for (const std::string& e : test::sse_events(r.body)) {
      if (e == "[DONE]") break;
      const json c = json::parse(e);
      if (c["choices"].empty()) continue;
      const json& d = c["choices"][0]["delta"];
      if (d.contains("content")) text += d["content"].get<std::string>();
    }
    json value;
    ASSERT_NO_THROW(value = json::parse(text)) << model << ": " << text;
    EXPECT_TRUE(value.is_object()) << text;
  }
}

TEST_F(StructuredOutputTest, RawGrammarField) {
  const std::string gbnf = "root ::= \"answer: \" (\"yes\" | \"no\") \" (\" [0-9] [0-9]? \"%)\"";
  for (const char* path : {"/api/generate", "/v1/completions"}) {
    json body = {{"model", "random"}, {"prompt", "Is it?"}, {"stream", false}, {"grammar", gbnf},
                 {"temperature", 1.0}, {"seed", 9}, {"options", {{"temperature", 1.0}, {"seed", 9}}}};
    auto r = test::post(srv(), path, body);
    ASSERT_EQ(r.status, 200) << r.body;
    const std::string text = std::string(path) == "/api/generate" ? r.js()["response"].get<std::string>()
                                                                  : r.js()["choices"][0]["text"].get<std::string>();
    static const std::regex re(R"(answer: (yes|no) \([0-9][0-9]?%\))");
    EXPECT_TRUE(std::regex_match(text, re)) << path << ": " << text;
  }
}

TEST_F(StructuredOutputTest, BadFormatsAreRefusedWithTheReason) {
  auto chat = [&](const std::string& field, const json& value) {
    json body = {{"model", "random"}, {"messages", json::array({json{{"role", "user"}, {"content", "x"}}})}, {"stream", false},
                 {field, value}};
    return test::post(srv(), field == "response_format" ? "/v1/chat/completions" : "/api/chat", body);
  };
  auto r = chat("format", "yaml");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"], "invalid format: \"yaml\"; expected \"json\" or a valid JSON Schema object");
  r = chat("format", json::parse(R"({"type":"object","properties":{"a":{"$ref":"#/$defs/missing"}}})"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.js()["error"].get<std::string>().find("invalid JSON schema in format"), std::string::npos) << r.body;
  EXPECT_NE(r.js()["error"].get<std::string>().find("missing"), std::string::npos) << r.body;
  r = chat("grammar", "root ::= undefined_rule");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.js()["error"].get<std::string>().find("invalid grammar"), std::string::npos) << r.body;
  EXPECT_NE(r.js()["error"].get<std::string>().find("undefined_rule"), std::string::npos) << r.body;
  r = chat("response_format", json{{"type", "xml"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"]["message"], "response_format.type must be \"text\", \"json_object\" or \"json_schema\", got \"xml\"");
  r = chat("response_format", json{{"type", "json_schema"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.js()["error"]["message"].get<std::string>().find("json_schema is required"), std::string::npos) << r.body;
  json both = {{"model", "random"}, {"messages", json::array({json{{"role", "user"}, {"content", "x"}}})}, {"stream", false},
               {"format", "json"}, {"grammar", "root ::= \"a\""}};
  r = test::post(srv(), "/api/chat", both);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.js()["error"].get<std::string>().find("both format json and grammar"), std::string::npos) << r.body;
  // "text" and an empty format mean no constraint.
  EXPECT_EQ(chat("response_format", json{{"type", "text"}}).status, 200);
  EXPECT_EQ(chat("format", "").status, 200);
}

}  // namespace
}  // namespace flatline
