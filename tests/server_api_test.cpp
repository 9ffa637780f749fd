// The HTTP API's shape, field for field, against Ollama's documented
// responses (FACTS.md §1, ollama api/types.go, docs/api.md, openai/openai.go):
// every endpoint streaming and not, and the errors clients rely on.
#include <gtest/gtest.h>

#include <regex>

#include "server_test_support.h"
#include "util/log.h"

namespace flatline {
namespace {

using test::json;
using test::TestServer;

class ServerApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    set_log_level(LogLevel::Warn);
    dir_ = new test::TempDir("server-api");
    test::make_models_dir(dir_->path());
    server_ = new TestServer(test::test_server_options(dir_->path()));
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    set_log_level(LogLevel::Info);
  }
  static const TestServer& srv() { return *server_; }

  static json chat_body(const std::string& model, const std::string& text, bool stream, int n = 12) {
    return json{{"model", model},
                {"messages", json::array({json{{"role", "user"}, {"content", text}}})},
                {"stream", stream},
                {"options", {{"temperature", 0}, {"num_predict", n}}}};
  }

  static test::TempDir* dir_;
  static TestServer* server_;
};
test::TempDir* ServerApiTest::dir_ = nullptr;
TestServer* ServerApiTest::server_ = nullptr;

bool is_rfc3339_nano(const std::string& s) {
  static const std::regex re(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z)");
  return std::regex_match(s, re);
}

void expect_metrics(const json& j) {
  for (const char* key : {"total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
                          "eval_count", "eval_duration"}) {
    ASSERT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
    EXPECT_TRUE(j[key].is_number_integer()) << key;
    EXPECT_GE(j[key].get<int64_t>(), 0) << key;
  }
  EXPECT_GE(j["total_duration"].get<int64_t>(), j["eval_duration"].get<int64_t>());
}

TEST_F(ServerApiTest, RootVersionAndUnknownRoutes) {
  auto r = test::get(srv(), "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "Ollama is running");  // the literal banner clients compare
  auto c = srv().client();
  auto head = c->Head("/");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_TRUE(head->body.empty());
  r = test::get(srv(), "/api/version");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.js()["version"].is_string());
  EXPECT_EQ(r.js()["flatline_version"], FLATLINE_VERSION);
  EXPECT_EQ(test::get(srv(), "/api/nothing").status, 404);
  EXPECT_EQ(test::post(srv(), "/api/push", json{{"model", "x"}}).status, 501);
}

TEST_F(ServerApiTest, TagsListEveryModelWithOllamaFields) {
  auto r = test::get(srv(), "/api/tags");
  ASSERT_EQ(r.status, 200);
  json models = r.js()["models"];
  ASSERT_GE(models.size(), 2u);
  bool found = false;
  for (const auto& m : models) {
    for (const char* key : {"name", "model", "modified_at", "size", "digest", "details"}) EXPECT_TRUE(m.contains(key)) << key;
    EXPECT_TRUE(is_rfc3339_nano(m["modified_at"])) << m["modified_at"];
    EXPECT_EQ(m["digest"].get<std::string>().size(), 64u);
    if (m["name"] == "random:latest") {
      found = true;
      EXPECT_EQ(m["size"], std::filesystem::file_size(dir_->file("random.gguf")));
      EXPECT_EQ(m["details"]["format"], "gguf");
      EXPECT_EQ(m["details"]["family"], "rwkv7");
      EXPECT_EQ(m["details"]["families"], json::array({"rwkv7"}));
      EXPECT_EQ(m["details"]["quantization_level"], "F32");
      EXPECT_TRUE(m["details"]["parameter_size"].is_string());
    }
  }
  EXPECT_TRUE(found) << r.body;
}

TEST_F(ServerApiTest, ShowReportsModelInfo) {
  auto r = test::post(srv(), "/api/show", json{{"model", "random"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.js();
  EXPECT_EQ(j["model_info"]["general.architecture"], "rwkv7");
  EXPECT_EQ(j["model_info"]["rwkv7.embedding_length"], 64);
  EXPECT_EQ(j["model_info"]["tokenizer.ggml.tokens"], json::array());  // arrays only when verbose
  EXPECT_GT(j["model_info"]["general.parameter_count"].get<int64_t>(), 0);
  EXPECT_EQ(j["details"]["family"], "rwkv7");
  EXPECT_EQ(j["capabilities"], json::array({"completion", "embedding"}));
  EXPECT_NE(j["parameters"].get<std::string>().find("stop"), std::string::npos);
  r = test::post(srv(), "/api/show", json{{"model", "random"}, {"verbose", true}});
  EXPECT_EQ(r.js()["model_info"]["tokenizer.ggml.tokens"].size(), test::random_model_vocab().size());
  r = test::post(srv(), "/api/show", json{{"name", "random:latest"}});  // legacy field, tag
  EXPECT_EQ(r.status, 200);
  r = test::post(srv(), "/api/show", json{{"model", "nope"}});
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.js()["error"], "model 'nope' not found");
  EXPECT_EQ(test::post(srv(), "/api/show", json::object()).status, 400);
}

TEST_F(ServerApiTest, ChatNonStreamingHasOllamaShape) {
  auto r = test::post(srv(), "/api/chat", chat_body("random", "Hello there", false, 7));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.content_type.find("application/json"), std::string::npos);
  json j = r.js();
  EXPECT_EQ(j["model"], "random");
  EXPECT_TRUE(is_rfc3339_nano(j["created_at"])) << j["created_at"];
  EXPECT_EQ(j["message"]["role"], "assistant");
  EXPECT_TRUE(j["message"]["content"].is_string());
  EXPECT_EQ(j["done"], true);
  EXPECT_TRUE(j["done_reason"] == "stop" || j["done_reason"] == "length") << j;
  expect_metrics(j);
  if (j["done_reason"] == "length") {
    EXPECT_EQ(j["eval_count"], 7);
  }
  EXPECT_LE(j["eval_count"].get<int>(), 7);
}

TEST_F(ServerApiTest, ChatStreamingIsNdjsonWhoseDeltasAddUpToTheNonStreamedReply) {
  const json body = chat_body("random", "Tell me a story", true, 40);
  auto r = test::post(srv(), "/api/chat", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/x-ndjson");
  auto lines = test::ndjson_lines(r.body);
  ASSERT_GE(lines.size(), 2u);
  std::string text;
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["done"], false);
    EXPECT_EQ(lines[i]["message"]["role"], "assistant");
    EXPECT_FALSE(lines[i].contains("eval_count"));
    text += lines[i]["message"]["content"].get<std::string>();
  }
  const json& last = lines.back();
  EXPECT_EQ(last["done"], true);
  EXPECT_EQ(last["message"]["content"], "");
  expect_metrics(last);
  json nonstream = body;
  nonstream["stream"] = false;
  auto r2 = test::post(srv(), "/api/chat", nonstream);
  EXPECT_EQ(r2.js()["message"]["content"], text);
  EXPECT_EQ(r2.js()["eval_count"], last["eval_count"]);
}

TEST_F(ServerApiTest, GenerateReturnsContextThatContinuesTheConversation) {
  json body = {{"model", "random"}, {"prompt", "Why is the sky blue?"}, {"stream", false},
               {"options", {{"temperature", 0}, {"num_predict", 5}}}};
  auto r = test::post(srv(), "/api/generate", body);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.js();
  EXPECT_EQ(j["model"], "random");
  EXPECT_TRUE(j["response"].is_string());
  EXPECT_EQ(j["done"], true);
  expect_metrics(j);
  ASSERT_TRUE(j["context"].is_array());
  // Prompt "User: ...\n\nAssistant:" (one token per byte) plus the reply tokens.
  const std::string rendered = "User: Why is the sky blue?\n\nAssistant:";
  EXPECT_GE(j["context"].size(), rendered.size());

  json next = body;
  next["prompt"] = "And at night?";
  next["context"] = j["context"];
  auto r2 = test::post(srv(), "/api/generate", next);
  ASSERT_EQ(r2.status, 200) << r2.body;
  // The context's text is cached, so only the new turn is evaluated.
  const std::string turn2 = "User: And at night?\n\nAssistant:";
  EXPECT_LE(r2.js()["prompt_eval_count"].get<size_t>(), turn2.size() + 3) << r2.body;

  json raw = body;
  raw["raw"] = true;
  raw["prompt"] = "Once upon a time";
  auto r3 = test::post(srv(), "/api/generate", raw);
  ASSERT_EQ(r3.status, 200);
  EXPECT_FALSE(r3.js().contains("context"));
  EXPECT_EQ(r3.js()["prompt_eval_count"], 16);

  raw["system"] = "be brief";
  auto r4 = test::post(srv(), "/api/generate", raw);
  EXPECT_EQ(r4.status, 400);
  EXPECT_EQ(r4.js()["error"], "raw mode does not support template, system, or context");
}

TEST_F(ServerApiTest, GenerateStreamingChunksCarryResponseDeltas) {
  json body = {{"model", "random"}, {"prompt", "Count to three"}, {"options", {{"temperature", 0}, {"num_predict", 9}}}};
  auto r = test::post(srv(), "/api/generate", body);
  ASSERT_EQ(r.status, 200);
  auto lines = test::ndjson_lines(r.body);
  ASSERT_GE(lines.size(), 1u);
  std::string text;
  for (size_t i = 0; i + 1 < lines.size(); ++i) text += lines[i]["response"].get<std::string>();
  EXPECT_EQ(lines.back()["done"], true);
  EXPECT_EQ(lines.back()["response"], "");
  EXPECT_TRUE(lines.back()["context"].is_array());
  body["stream"] = false;
  EXPECT_EQ(test::post(srv(), "/api/generate", body).js()["response"], text);
}

TEST_F(ServerApiTest, EmptyRequestsLoadAndKeepAliveZeroUnloads) {
  auto r = test::post(srv(), "/api/chat", json{{"model", "random2"}, {"messages", json::array()}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.js()["done_reason"], "load");
  EXPECT_EQ(r.js()["done"], true);
  auto ps = test::get(srv(), "/api/ps").js();
  ASSERT_EQ(ps["models"].size(), 1u);
  const json& m = ps["models"][0];
  EXPECT_EQ(m["name"], "random2:latest");
  for (const char* key : {"model", "size", "digest", "details", "expires_at", "size_vram", "context_length"})
    EXPECT_TRUE(m.contains(key)) << key;
  EXPECT_TRUE(is_rfc3339_nano(m["expires_at"]));

  r = test::post(srv(), "/api/generate", json{{"model", "random2"}, {"keep_alive", 0}});
  EXPECT_EQ(r.js()["done_reason"], "unload");
  EXPECT_EQ(r.js()["response"], "");
  EXPECT_TRUE(test::get(srv(), "/api/ps").js()["models"].empty());

  // keep_alive 0 with a prompt: answer, then unload.
  auto body = chat_body("random", "hi", false, 2);
  body["keep_alive"] = 0;
  EXPECT_EQ(test::post(srv(), "/api/chat", body).status, 200);
  EXPECT_TRUE(test::get(srv(), "/api/ps").js()["models"].empty());
  // A negative keep_alive keeps it forever; a Go duration string is accepted.
  body["keep_alive"] = -1;
  EXPECT_EQ(test::post(srv(), "/api/chat", body).status, 200);
  EXPECT_EQ(test::get(srv(), "/api/ps").js()["models"].size(), 1u);
  body["keep_alive"] = "10m";
  EXPECT_EQ(test::post(srv(), "/api/chat", body).status, 200);
}

TEST_F(ServerApiTest, OptionsAreHonoured) {
  // num_predict and done_reason "length".
  auto j = test::post(srv(), "/api/chat", chat_body("random", "Go on", false, 3)).js();
  if (j["done_reason"] == "length") {
    EXPECT_EQ(j["eval_count"], 3);
  }
  // The same seed gives the same sampled text; options of the wrong kind
  // that flatline ignores are still accepted.
  json body = chat_body("random", "Sample something", false, 20);
  body["options"] = {{"temperature", 1.5}, {"seed", 1234}, {"top_k", 50}, {"top_p", 0.95}, {"min_p", 0.01},
                     {"num_predict", 20}, {"repeat_penalty", 1.1}, {"repeat_last_n", 32},
                     {"presence_penalty", 0.2}, {"frequency_penalty", 0.1}, {"num_thread", 4}, {"num_gpu", 0},
                     {"penalize_newline", true}, {"numa", false}, {"typical_p", 1.0}, {"num_ctx", 2048},
                     {"some_future_option", "x"}};
  auto a = test::post(srv(), "/api/chat", body);
  ASSERT_EQ(a.status, 200) << a.body;
  auto b = test::post(srv(), "/api/chat", body);
  EXPECT_EQ(a.js()["message"]["content"], b.js()["message"]["content"]);
  // A stop string ends the reply before it.
  json greedy = chat_body("random", "Say things", false, 40);
  auto full = test::post(srv(), "/api/chat", greedy).js()["message"]["content"].get<std::string>();
  if (full.size() >= 6) {
    const std::string stop = full.substr(3, 2);
    greedy["options"]["stop"] = json::array({stop});
    auto cut = test::post(srv(), "/api/chat", greedy).js();
    EXPECT_EQ(cut["message"]["content"], full.substr(0, full.find(stop)));
    EXPECT_EQ(cut["done_reason"], "stop");
  }
}

TEST_F(ServerApiTest, ErrorsUseOllamaStatusesAndMessages) {
  auto r = test::post(srv(), "/api/chat", std::string("{not json"));
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(r.js()["error"].is_string());
  r = test::post(srv(), "/api/chat", std::string(""));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"], "missing request body");
  r = test::post(srv(), "/api/chat", std::string("[1,2]"));
  EXPECT_EQ(r.status, 400);
  r = test::post(srv(), "/api/chat", chat_body("no-such-model", "hi", false));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.js()["error"], "model \"no-such-model\" not found, try pulling it first");
  r = test::post(srv(), "/api/generate", json{{"prompt", "hi"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"], "model is required");

  json bad = chat_body("random", "hi", false);
  bad["options"]["temperature"] = "hot";
  r = test::post(srv(), "/api/chat", bad);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"], "option \"temperature\" must be of type float32");
  bad = chat_body("random", "hi", false);
  bad["options"]["num_predict"] = "many";
  EXPECT_EQ(test::post(srv(), "/api/chat", bad).js()["error"], "option \"num_predict\" must be of type integer");
  bad = chat_body("random", "hi", false);
  bad["options"]["stop"] = "x";
  EXPECT_EQ(test::post(srv(), "/api/chat", bad).js()["error"], "option \"stop\" must be of type array");
  bad = chat_body("random", "hi", false);
  bad["stream"] = "yes";
  r = test::post(srv(), "/api/chat", bad);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"], "json: cannot unmarshal string into Go struct field ChatRequest.stream of type bool");
  bad = chat_body("random", "hi", false);
  bad["messages"][0]["content"] = 5;
  EXPECT_EQ(test::post(srv(), "/api/chat", bad).status, 400);
  bad = chat_body("random", "hi", false);
  bad["keep_alive"] = "5 minutes";
  r = test::post(srv(), "/api/chat", bad);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.js()["error"].get<std::string>().find("time: "), std::string::npos);
  bad = chat_body("random", "hi", false);
  bad["tools"] = json::array({json{{"type", "function"}}});
  r = test::post(srv(), "/api/chat", bad);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"], "invalid tools: tools[0].function is required (an object with a \"name\")");

  // Oversized body: 413 with a JSON error, and the server is still fine.
  std::string huge(33u << 20, 'a');
  r = test::post(srv(), "/api/chat", huge);
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(r.js()["error"].is_string());
  EXPECT_EQ(test::get(srv(), "/").status, 200);
}

TEST_F(ServerApiTest, OpenAiChatCompletionsNonStreaming) {
  json body = {{"model", "random"},
               {"messages", json::array({json{{"role", "system"}, {"content", "Be short."}},
                                         json{{"role", "user"}, {"content", json::array({json{{"type", "text"}, {"text", "Hi"}}})}}})},
               {"max_tokens", 6},
               {"temperature", 0}};
  auto r = test::post(srv(), "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.js();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_TRUE(j["created"].is_number_integer());
  EXPECT_EQ(j["model"], "random");
  EXPECT_TRUE(j["system_fingerprint"].is_string());
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(j["choices"][0]["finish_reason"] == "stop" || j["choices"][0]["finish_reason"] == "length");
  const json& u = j["usage"];
  const std::string rendered = "System: Be short.\n\nUser: Hi\n\nAssistant:";
  EXPECT_EQ(u["prompt_tokens"], rendered.size());
  EXPECT_LE(u["completion_tokens"].get<int>(), 6);
  EXPECT_EQ(u["total_tokens"], u["prompt_tokens"].get<int>() + u["completion_tokens"].get<int>());
  EXPECT_TRUE(u["prompt_tokens_details"]["cached_tokens"].is_number_integer());
}

TEST_F(ServerApiTest, OpenAiChatCompletionsStreamingIsSse) {
  json body = {{"model", "random"},
               {"messages", json::array({json{{"role", "user"}, {"content", "Stream please"}}})},
               {"max_tokens", 10},
               {"temperature", 0},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  auto r = test::post(srv(), "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "text/event-stream");
  auto events = test::sse_events(r.body);
  ASSERT_GE(events.size(), 4u) << r.body;
  EXPECT_EQ(events.back(), "[DONE]");
  json first = json::parse(events[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  std::string text;
  size_t i = 0;
  for (; i + 3 < events.size(); ++i) {
    json c = json::parse(events[i]);
    if (i > 0) {
      EXPECT_FALSE(c["choices"][0]["delta"].contains("role"));
    }
    text += c["choices"][0]["delta"]["content"].get<std::string>();
    EXPECT_EQ(c["id"], first["id"]);
  }
  json finish = json::parse(events[i]);
  EXPECT_EQ(finish["choices"][0]["delta"], json::object());
  EXPECT_TRUE(finish["choices"][0]["finish_reason"].is_string());
  json usage = json::parse(events[i + 1]);
  EXPECT_EQ(usage["choices"], json::array());
  EXPECT_TRUE(usage["usage"]["completion_tokens"].is_number_integer());
  body["stream"] = false;
  EXPECT_EQ(test::post(srv(), "/v1/chat/completions", body).js()["choices"][0]["message"]["content"], text);
}

TEST_F(ServerApiTest, OpenAiCompletionsAndModels) {
  json body = {{"model", "random"}, {"prompt", "Once"}, {"max_tokens", 5}, {"temperature", 0}};
  auto r = test::post(srv(), "/v1/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.js();
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  EXPECT_TRUE(j["choices"][0]["text"].is_string());
  EXPECT_TRUE(j["usage"]["total_tokens"].is_number_integer());
  body["stream"] = true;
  r = test::post(srv(), "/v1/completions", body);
  auto events = test::sse_events(r.body);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) text += json::parse(events[i])["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(text, j["choices"][0]["text"]);

  auto models = test::get(srv(), "/v1/models").js();
  EXPECT_EQ(models["object"], "list");
  bool found = false;
  for (const auto& m : models["data"]) {
    EXPECT_EQ(m["object"], "model");
    EXPECT_TRUE(m["created"].is_number_integer());
    EXPECT_TRUE(m["owned_by"].is_string());
    found |= m["id"] == "random:latest";
  }
  EXPECT_TRUE(found);
  auto one = test::get(srv(), "/v1/models/random");
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(one.js()["id"], "random");
  auto missing = test::get(srv(), "/v1/models/missing");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.js()["error"]["type"], "not_found_error");
  EXPECT_TRUE(missing.js()["error"]["message"].is_string());
}

TEST_F(ServerApiTest, OpenAiErrorsHaveOpenAiShape) {
  auto r = test::post(srv(), "/v1/chat/completions", json{{"model", "random"}, {"messages", json::array()}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"]["message"], "[] is too short - 'messages'");
  EXPECT_EQ(r.js()["error"]["type"], "invalid_request_error");
  EXPECT_TRUE(r.js()["error"]["param"].is_null());
  r = test::post(srv(), "/v1/chat/completions",
                 json{{"model", "ghost"}, {"messages", json::array({json{{"role", "user"}, {"content", "x"}}})}});
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.js()["error"]["type"], "not_found_error");
  r = test::post(srv(), "/v1/chat/completions", std::string("{{{"));
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(r.js()["error"]["message"].is_string());
  r = test::post(srv(), "/v1/chat/completions",
                 json{{"model", "random"}, {"temperature", "warm"}, {"messages", json::array({json{{"role", "user"}, {"content", "x"}}})}});
  EXPECT_EQ(r.status, 400);
}

// Whatever arrives, the answer is an HTTP error with a JSON message (or a
// normal answer), never a crash or a hang.
TEST_F(ServerApiTest, HostileBodiesGetErrorsAndTheServerStaysUp) {
  std::vector<std::string> bodies = {
      "", " ", "null", "true", "42", "\"text\"", "[]", "{", "}", "{\"model\":}", "{\"model\": \"random\"",
      "{\"model\": \"\xff\xfe\"}",                       // invalid UTF-8 in a string
      "{\"model\": \"random\", \"messages\": {}}",
      "{\"model\": \"random\", \"messages\": [1, 2]}",
      "{\"model\": \"random\", \"messages\": [{\"role\": 1}]}",
      "{\"model\": \"random\", \"prompt\": 12}",
      "{\"model\": \"random\", \"options\": []}",
      "{\"model\": \"random\", \"options\": {\"top_k\": {}}}",
      "{\"model\": \"random\", \"options\": {\"seed\": 1e400}}",
      "{\"model\": \"random\", \"keep_alive\": true}",
      "{\"model\": \"random\", \"keep_alive\": \"-\"}",
      "{\"model\": \"random\", \"context\": [\"a\"]}",
      "{\"model\": \"random\", \"prompt\": \"x\", \"max_tokens\": 2, \"context\": [99999999]}",
      "{\"model\": [\"random\"]}",
      "{\"model\": \"random\", \"stream\": null, \"messages\": null, \"prompt\": null}",
      "{\"model\": \"random\", \"max_tokens\": \"ten\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
      "{\"model\": \"random\", \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}",
      "{\"model\": \"random\", \"stop\": [1], \"prompt\": \"x\", \"options\": {\"num_predict\": 2}, "
      "\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
      std::string(20000, '[') + std::string(20000, ']'),  // deep nesting
      std::string("{\"model\":\"random\",\"x\":") + std::string(20000, '[') + std::string(20000, ']') + "}",
  };
  const std::vector<std::string> paths = {"/api/chat", "/api/generate", "/api/show", "/v1/chat/completions",
                                          "/v1/completions"};
  for (const auto& path : paths) {
    for (const auto& body : bodies) {
      auto r = test::post(srv(), path, body);
      ASSERT_NE(r.status, 0) << path << " did not answer " << body.substr(0, 80);
      EXPECT_LT(r.status, 500) << path << " " << body.substr(0, 80) << " -> " << r.body;
      if (r.status >= 400) {
        json j;
        ASSERT_NO_THROW(j = r.js()) << r.body;
        EXPECT_TRUE(j.contains("error")) << r.body;
      }
    }
  }
  EXPECT_EQ(test::get(srv(), "/").status, 200);
}

}  // namespace
}  // namespace flatline
