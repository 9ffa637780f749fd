// Tool calls and thinking through the HTTP APIs, on random-weight RWKV-7
// models: "random" (RWKV World format, so the generic tool prompt), "qwen"
// (the same weights with Qwen 3's chat template: Hermes calls, <think>) and
// "r1" (a template that opens <think> in the prompt, as DeepSeek R1's does). With
// garbage weights only constrained replies say something: with tool_choice
// required or a named function the reply must parse into calls whose
// arguments validate against the tool's schema (python3-jsonschema), at
// temperature 1 over several seeds.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "schema_validator.h"
#include "server_test_support.h"
#include "util/log.h"

namespace flatline {
namespace {

using test::json;
using test::TestServer;
using ojson = nlohmann::ordered_json;

const char* kWeatherParameters = R"({"type": "object", "properties": {
  "city": {"type": "string", "minLength": 1, "maxLength": 12},
  "unit": {"enum": ["celsius", "fahrenheit"]},
  "days": {"type": "integer", "minimum": 1, "maximum": 7}},
  "required": ["city", "unit", "days"]})";

json weather_tools() {
  return json::array({json{{"type", "function"},
                           {"function",
                            {{"name", "get_weather"},
                             {"description", "The weather forecast for a city"},
                             {"parameters", json::parse(kWeatherParameters)}}}},
                      json{{"type", "function"},
                           {"function",
                            {{"name", "get_time"},
                             {"description", "The time now"},
                             {"parameters", {{"type", "object"}, {"properties", json::object()}}}}}}});
}

// A ChatML template that opens <think> in the generation prompt unless
// thinking is turned off, as DeepSeek R1's does (whose full-width
// "<｜Assistant｜>" the byte vocabulary of the random model cannot spell).
const char* kOpensThinkTemplate =
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is not defined or enable_thinking %}<think>\n{% endif %}{% endif %}";

std::string template_file(const std::string& file) {
  std::ifstream in(test::source_dir() + "/tests/data/chat_templates/" + file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ServerToolsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    set_log_level(LogLevel::Warn);
    dir_ = new test::TempDir("server-tools");
    test::write_random_rwkv7(dir_->file("random.gguf"), 1);
    test::write_random_rwkv7(dir_->file("qwen.gguf"), 3, 2,
                             {{"tokenizer.chat_template", template_file("shared-qwen3.jinja")}});
    test::write_random_rwkv7(dir_->file("r1.gguf"), 4, 2, {{"tokenizer.chat_template", kOpensThinkTemplate}});
    server_ = new TestServer(test::test_server_options(dir_->path()));
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    set_log_level(LogLevel::Info);
  }
  static const TestServer& srv() { return *server_; }

  static json ollama_body(const std::string& model, const json& messages, int seed) {
    return json{{"model", model},
                {"messages", messages},
                {"stream", false},
                {"tools", weather_tools()},
                {"parallel_tool_calls", false},
                {"options", {{"temperature", 1.0}, {"seed", seed}, {"num_predict", 200}}}};
  }
  static json openai_body(const std::string& model, const json& messages, int seed) {
    return json{{"model", model}, {"messages", messages}, {"tools", weather_tools()}, {"parallel_tool_calls", false},
                {"temperature", 1.0}, {"seed", seed}, {"max_tokens", 200}};
  }

  static test::TempDir* dir_;
  static TestServer* server_;
};
test::TempDir* ServerToolsTest::dir_ = nullptr;
TestServer* ServerToolsTest::server_ = nullptr;

json user(const std::string& text) { return json::array({json{{"role", "user"}, {"content", text}}}); }

void expect_arguments_valid(const std::vector<std::string>& arguments) {
  if (!test::python_jsonschema_available()) return;
  ojson cases = ojson::array({ojson{{"schema", ojson::parse(kWeatherParameters)}, {"texts", arguments}}});
  const auto results = test::validate_with_python(cases);
  ASSERT_EQ(results.size(), 1u);
  for (size_t i = 0; i < arguments.size(); ++i) EXPECT_EQ(results[0][i], "") << arguments[i];
}

TEST_F(ServerToolsTest, OllamaToolChoiceRequiredGivesACallWhoseArgumentsValidate) {
  for (const std::string model : {"random", "qwen"}) {
    std::vector<std::string> arguments;
    for (int seed : {1, 2, 3}) {
      json body = ollama_body(model, user("Weather in Paris?"), seed);
      body["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
      auto r = test::post(srv(), "/api/chat", body);
      ASSERT_EQ(r.status, 200) << r.body;
      const json m = r.js()["message"];
      EXPECT_EQ(m["content"], "") << model << ": " << m.dump();
      ASSERT_TRUE(m.contains("tool_calls")) << model << ": " << m.dump();
      ASSERT_EQ(m["tool_calls"].size(), 1u) << m.dump();
      const json& fn = m["tool_calls"][0]["function"];
      EXPECT_EQ(fn["name"], "get_weather");
      ASSERT_TRUE(fn["arguments"].is_object()) << fn.dump();  // Ollama: an object
      arguments.push_back(fn["arguments"].dump());
    }
    expect_arguments_valid(arguments);
  }
}

TEST_F(ServerToolsTest, OpenAIToolChoiceRequiredAndNamed) {
  std::vector<std::string> arguments;
  for (const std::string model : {"random", "qwen"}) {
    for (int seed : {4, 5}) {
      json body = openai_body(model, user("Forecast for Rome?"), seed);
      body["tool_choice"] = seed == 4 ? json("required") : json{{"type", "function"}, {"function", {{"name", "get_weather"}}}};
      body["parallel_tool_calls"] = false;
      auto r = test::post(srv(), "/v1/chat/completions", body);
      ASSERT_EQ(r.status, 200) << r.body;
      const json choice = r.js()["choices"][0];
      EXPECT_EQ(choice["finish_reason"], "tool_calls") << choice.dump();
      const json& m = choice["message"];
      EXPECT_TRUE(m["content"].is_null()) << m.dump();
      ASSERT_EQ(m["tool_calls"].size(), 1u) << m.dump();
      const json& call = m["tool_calls"][0];
      EXPECT_EQ(call["type"], "function");
      EXPECT_EQ(call["id"].get<std::string>().rfind("call_", 0), 0u);
      const std::string name = call["function"]["name"];
      EXPECT_TRUE(name == "get_weather" || name == "get_time") << name;
      ASSERT_TRUE(call["function"]["arguments"].is_string());  // OpenAI: a JSON string
      if (name == "get_weather") arguments.push_back(call["function"]["arguments"]);
    }
  }
  EXPECT_FALSE(arguments.empty());
  expect_arguments_valid(arguments);
}

TEST_F(ServerToolsTest, OpenAIStreamingToolCallDeltas) {
  json body = openai_body("random", user("Weather?"), 6);
  body["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
  body["stream"] = true;
  auto r = test::post(srv(), "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  std::string arguments, name, id, finish, content;
  bool saw_role = false;
  for (const std::string& e : test::sse_events(r.body)) {
    if (e == "[DONE]") break;
    const json c = json::parse(e);
    if (c["choices"].empty()) continue;
    const json& ch = c["choices"][0];
    if (ch["finish_reason"].is_string()) finish = ch["finish_reason"];
    const json& d = ch["delta"];
    saw_role = saw_role || d.contains("role");
    if (d.contains("content") && d["content"].is_string()) content += d["content"].get<std::string>();
    if (!d.contains("tool_calls")) continue;
    for (const json& tc : d["tool_calls"]) {
      EXPECT_EQ(tc["index"], 0);
      if (tc.contains("id")) id = tc["id"];
      if (tc["function"].contains("name")) name += tc["function"]["name"].get<std::string>();
      if (tc["function"].contains("arguments")) arguments += tc["function"]["arguments"].get<std::string>();
    }
  }
  EXPECT_TRUE(saw_role);
  EXPECT_EQ(content, "");
  EXPECT_EQ(finish, "tool_calls");
  EXPECT_EQ(name, "get_weather");
  EXPECT_EQ(id.rfind("call_", 0), 0u);
  expect_arguments_valid({arguments});
}

TEST_F(ServerToolsTest, OllamaStreamingSendsTheCallWhole) {
  json body = ollama_body("qwen", user("Weather?"), 7);
  body["tool_choice"] = "required";
  body["stream"] = true;
  auto r = test::post(srv(), "/api/chat", body);
  ASSERT_EQ(r.status, 200) << r.body;
  int call_lines = 0;
  std::string content;
  for (const json& line : test::ndjson_lines(r.body)) {
    content += line["message"]["content"].get<std::string>();
    if (!line["message"].contains("tool_calls")) continue;
    ++call_lines;
    for (const json& c : line["message"]["tool_calls"]) {
      EXPECT_TRUE(c["function"]["arguments"].is_object());
      EXPECT_TRUE(c["function"]["name"] == "get_weather" || c["function"]["name"] == "get_time") << c.dump();
    }
  }
  EXPECT_GE(call_lines, 1);
  EXPECT_EQ(content, "");
}

// Turn 2 resends the history with the call and its result: only the new
// messages are evaluated, the rest comes from the state after the call.
TEST_F(ServerToolsTest, SecondTurnAfterACallEvaluatesOnlyTheNewTokens) {
  for (const std::string model : {"random", "qwen"}) {
    for (const std::string api : {"ollama", "openai"}) {
      const std::string question = "Weather in Oslo, " + api + "?";
      json body = api == "ollama" ? ollama_body(model, user(question), 8) : openai_body(model, user(question), 8);
      body["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
      auto r1 = test::post(srv(), api == "ollama" ? "/api/chat" : "/v1/chat/completions", body);
      ASSERT_EQ(r1.status, 200) << r1.body;
      json messages = user(question);
      int64_t first_eval = 0;
      if (api == "ollama") {
        first_eval = r1.js()["prompt_eval_count"];
        json reply = r1.js()["message"];
        messages.push_back(reply);
        messages.push_back(json{{"role", "tool"}, {"tool_name", "get_weather"}, {"content", "{\"temp\": 21}"}});
      } else {
        first_eval = r1.js()["usage"]["prompt_tokens"];
        json reply = r1.js()["choices"][0]["message"];
        const std::string id = reply["tool_calls"][0]["id"];
        messages.push_back(reply);
        messages.push_back(json{{"role", "tool"}, {"tool_call_id", id}, {"content", "{\"temp\": 21}"}});
      }
      body["messages"] = messages;
      body.erase("tool_choice");
      if (api == "ollama") body["options"]["num_predict"] = 4; else body["max_tokens"] = 4;
      auto r2 = test::post(srv(), api == "ollama" ? "/api/chat" : "/v1/chat/completions", body);
      ASSERT_EQ(r2.status, 200) << r2.body;
      int64_t second_eval = 0, second_prompt = 0;
      if (api == "ollama") {
        second_eval = r2.js()["prompt_eval_count"];
      } else {
        const json u = r2.js()["usage"];
        second_prompt = u["prompt_tokens"];
        second_eval = second_prompt - u["prompt_tokens_details"]["cached_tokens"].get<int64_t>();
        EXPECT_GT(second_prompt, first_eval);
      }
      // The byte vocabulary: tokens are bytes. The first prompt (the tools'
      // description) is several hundred; the tool result with the headers
      // around it is 65 (RWKV World) or 106 (ChatML) bytes.
      EXPECT_GT(first_eval, 300) << model << " " << api;
      // Both templates render the call back exactly as it was generated:
      // only the new messages are evaluated.
      EXPECT_LE(second_eval, model == "random" ? 65 : 106) << model << " " << api << ": " << r2.body;
    }
  }
}

TEST_F(ServerToolsTest, ToolChoiceAutoOnGarbageWeightsStillAnswers) {
  for (const std::string model : {"random", "qwen"}) {
    auto r = test::post(srv(), "/api/chat", ollama_body(model, user("hi"), 9));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_TRUE(r.js()["message"]["content"].is_string());
    json body = openai_body(model, user("hi"), 9);
    body["tool_choice"] = "none";
    r = test::post(srv(), "/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_FALSE(r.js()["choices"][0]["message"].contains("tool_calls"));
    EXPECT_EQ(r.js()["choices"][0]["finish_reason"].get<std::string>() == "tool_calls", false);
  }
}

TEST_F(ServerToolsTest, MalformedToolsAreRefusedWithTheReason) {
  auto ollama = [&](const json& tools, const json& choice = nullptr) {
    json body = {{"model", "random"}, {"messages", user("x")}, {"stream", false}, {"tools", tools}};
    if (!choice.is_null()) body["tool_choice"] = choice;
    return test::post(srv(), "/api/chat", body);
  };
  auto openai = [&](const json& tools, const json& choice = nullptr) {
    json body = {{"model", "random"}, {"messages", user("x")}, {"tools", tools}};
    if (!choice.is_null()) body["tool_choice"] = choice;
    return test::post(srv(), "/v1/chat/completions", body);
  };
  auto r = ollama(json::array({json{{"type", "function"}, {"function", {{"description", "no name"}}}}}));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"], "invalid tools: tools[0].function.name must be a non-empty string");
  r = openai(json::array({json{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", "x"}}}}}));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"]["message"], "invalid tools: tools[0].function.parameters must be a JSON schema object, got \"x\"");
  r = openai(weather_tools(), json{{"type", "function"}, {"function", {{"name", "nope"}}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"]["message"], "tool_choice names the function \"nope\", which is not in tools");
  r = openai(weather_tools(), "sometimes");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.js()["error"]["message"].get<std::string>().find("tool_choice must be \"auto\""), std::string::npos);
  // A schema the grammar cannot follow, when the reply must be a call.
  const json bad_schema = json::array({json{{"type", "function"},
                                            {"function", {{"name", "f"}, {"parameters", {{"$ref", "#/$defs/missing"}}}}}}});
  r = ollama(bad_schema, "required");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.js()["error"].get<std::string>().find("the parameters of tool \"f\" are not a usable JSON schema"),
            std::string::npos) << r.body;
  // Required calls and a response format cannot both hold.
  json body = {{"model", "random"}, {"messages", user("x")}, {"tools", weather_tools()}, {"tool_choice", "required"},
               {"response_format", {{"type", "json_object"}}}};
  r = test::post(srv(), "/v1/chat/completions", body);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.js()["error"]["message"].get<std::string>().find("cannot be combined with"), std::string::npos) << r.body;
  // A history call without a function name.
  body = {{"model", "random"}, {"stream", false},
          {"messages", json::array({json{{"role", "assistant"}, {"content", ""}, {"tool_calls", json::array({json{{"function", json::object()}}})}}})}};
  r = test::post(srv(), "/api/chat", body);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"], "messages[0].tool_calls[0].function.name must be a string");
}

TEST_F(ServerToolsTest, ShowListsToolsAndThinkingOnlyWhereTheTemplateHasThem) {
  auto caps = [&](const std::string& model) { return test::post(srv(), "/api/show", json{{"model", model}}).js()["capabilities"]; };
  EXPECT_EQ(caps("random"), json::array({"completion", "embedding"}));
  EXPECT_EQ(caps("qwen"), json::array({"completion", "embedding", "tools", "thinking"}));
  EXPECT_EQ(caps("r1"), json::array({"completion", "embedding", "thinking"}));
}

// A grammar makes the garbage model write reasoning, then an answer.
const char* kThinkGrammar = R"(root ::= "<think>" [a-z ]{3,20} "</think>\n\n" [a-z]{2,12})";

TEST_F(ServerToolsTest, OllamaThinkSeparatesTheReasoning) {
  json body = {{"model", "qwen"}, {"messages", user("Think first.")}, {"stream", false}, {"think", true},
               {"grammar", kThinkGrammar}, {"options", {{"temperature", 1.0}, {"seed", 3}, {"num_predict", 60}}}};
  auto r = test::post(srv(), "/api/chat", body);
  ASSERT_EQ(r.status, 200) << r.body;
  json m = r.js()["message"];
  ASSERT_TRUE(m.contains("thinking")) << m.dump();
  EXPECT_FALSE(m["thinking"].get<std::string>().empty());
  EXPECT_EQ(m["thinking"].get<std::string>().find('<'), std::string::npos) << m.dump();
  EXPECT_FALSE(m["content"].get<std::string>().empty());
  EXPECT_EQ(m["content"].get<std::string>().find('<'), std::string::npos) << m.dump();
  // Streaming: "thinking" deltas, then content; no tag reaches either.
  body["stream"] = true;
  r = test::post(srv(), "/api/chat", body);
  ASSERT_EQ(r.status, 200) << r.body;
  std::string thinking, content;
  for (const json& line : test::ndjson_lines(r.body)) {
    if (line["message"].contains("thinking")) thinking += line["message"]["thinking"].get<std::string>();
    content += line["message"]["content"].get<std::string>();
  }
  EXPECT_EQ(thinking, m["thinking"]);
  EXPECT_EQ(content, m["content"]);
  // think:false: reasoning the model writes anyway is not returned.
  body["stream"] = false;
  body["think"] = false;
  r = test::post(srv(), "/api/chat", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(r.js()["message"].contains("thinking"));
  EXPECT_EQ(r.js()["message"]["content"].get<std::string>().find('<'), std::string::npos);
  // "high" is accepted as on.
  body["think"] = "high";
  EXPECT_EQ(test::post(srv(), "/api/chat", body).status, 200);
}

TEST_F(ServerToolsTest, ThinkOnAModelWithoutReasoningIsRefused) {
  json body = {{"model", "random"}, {"messages", user("x")}, {"stream", false}, {"think", true}};
  auto r = test::post(srv(), "/api/chat", body);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"], "\"random\" does not support thinking");
  body["think"] = "sideways";
  r = test::post(srv(), "/api/chat", body);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.js()["error"].get<std::string>().find("invalid think value"), std::string::npos);
  body["think"] = false;
  EXPECT_EQ(test::post(srv(), "/api/chat", body).status, 200);
}

// A template that opens <think> in the prompt: the whole reply is
// reasoning until the model closes it.
TEST_F(ServerToolsTest, ReasoningOpenedByTheTemplate) {
  json body = {{"model", "r1"}, {"messages", user("x")}, {"stream", false}, {"think", true},
               {"options", {{"temperature", 1.0}, {"seed", 2}, {"num_predict", 24}}}};
  auto r = test::post(srv(), "/api/chat", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(r.js()["message"]["thinking"].get<std::string>().empty()) << r.body;
  // With a grammar that closes the reasoning, the answer follows it.
  body["grammar"] = R"(root ::= [a-z ]{3,20} "</think>" [a-z]{2,12})";
  r = test::post(srv(), "/api/chat", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(r.js()["message"]["thinking"].get<std::string>().empty()) << r.body;
  EXPECT_FALSE(r.js()["message"]["content"].get<std::string>().empty()) << r.body;
}

TEST_F(ServerToolsTest, ParallelCallsEachValidate) {
  std::vector<std::string> arguments;
  for (int seed : {11, 12, 13}) {
    json body = openai_body("random", user("Weather in two cities?"), seed);
    body.erase("parallel_tool_calls");  // default: true
    body["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
    body["max_tokens"] = 400;
    auto r = test::post(srv(), "/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    const json calls = r.js()["choices"][0]["message"]["tool_calls"];
    ASSERT_GE(calls.size(), 1u) << r.body;
    for (const json& c : calls) arguments.push_back(c["function"]["arguments"]);
  }
  expect_arguments_valid(arguments);
}

TEST_F(ServerToolsTest, GenerateReturnsThinking) {
  json body = {{"model", "qwen"}, {"prompt", "Think."}, {"stream", false}, {"think", true}, {"grammar", kThinkGrammar},
               {"options", {{"temperature", 1.0}, {"seed", 5}, {"num_predict", 60}}}};
  auto r = test::post(srv(), "/api/generate", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(r.js()["thinking"].get<std::string>().empty()) << r.body;
  EXPECT_EQ(r.js()["response"].get<std::string>().find('<'), std::string::npos) << r.body;
}

// Qwen 3 renders an earlier turn without its reasoning, so the state after
// the reply is no prefix of the next prompt; the state the reply started
// from is, and the next turn resumes there: it evaluates the (stripped)
// reply and the new message, not the whole history.
TEST_F(ServerToolsTest, StrippedReasoningResumesWhereTheReplyStarted) {
  const std::string system = "You are a careful assistant. " + std::string(300, 'x');
  json messages = json::array({json{{"role", "system"}, {"content", system}}, json{{"role", "user"}, {"content", "Why?"}}});
  json body = {{"model", "qwen"}, {"messages", messages}, {"stream", false}, {"think", true}, {"grammar", kThinkGrammar},
               {"options", {{"temperature", 1.0}, {"seed", 6}, {"num_predict", 60}}}};
  auto r1 = test::post(srv(), "/api/chat", body);
  ASSERT_EQ(r1.status, 200) << r1.body;
  const json reply = r1.js()["message"];
  ASSERT_TRUE(reply.contains("thinking"));
  messages.push_back(reply);  // with its "thinking", which the template leaves out
  messages.push_back(json{{"role", "user"}, {"content", "And then?"}});
  body["messages"] = messages;
  body.erase("grammar");
  body["options"]["num_predict"] = 2;
  auto r2 = test::post(srv(), "/api/chat", body);
  ASSERT_EQ(r2.status, 200) << r2.body;
  const int64_t evaluated = r2.js()["prompt_eval_count"];
  const std::string new_text = reply["content"].get<std::string>() +
                               "<|im_end|>\n<|im_start|>user\nAnd then?<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(evaluated, static_cast<int64_t>(new_text.size())) << r2.body;
  EXPECT_GT(r1.js()["prompt_eval_count"].get<int64_t>(), 300);
}

TEST_F(ServerToolsTest, OpenAIReasoningContent) {
  json body = {{"model", "qwen"}, {"messages", user("Think.")}, {"reasoning_effort", "high"},
               {"grammar", kThinkGrammar}, {"temperature", 1.0}, {"seed", 4}, {"max_tokens", 60}};
  auto r = test::post(srv(), "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const json m = r.js()["choices"][0]["message"];
  EXPECT_FALSE(m["reasoning_content"].get<std::string>().empty()) << m.dump();
  EXPECT_EQ(m["content"].get<std::string>().find('<'), std::string::npos) << m.dump();
  body["stream"] = true;
  r = test::post(srv(), "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  std::string reasoning, content;
  for (const std::string& e : test::sse_events(r.body)) {
    if (e == "[DONE]") break;
    const json c = json::parse(e);
    if (c["choices"].empty()) continue;
    const json& d = c["choices"][0]["delta"];
    if (d.contains("reasoning_content")) reasoning += d["reasoning_content"].get<std::string>();
    if (d.contains("content") && d["content"].is_string()) content += d["content"].get<std::string>();
  }
  EXPECT_EQ(reasoning, m["reasoning_content"]);
  EXPECT_EQ(content, m["content"]);
  body["reasoning_effort"] = "extreme";
  body["stream"] = false;
  r = test::post(srv(), "/v1/chat/completions", body);
  EXPECT_EQ(r.status, 400);
}

}  // namespace
}  // namespace flatline
