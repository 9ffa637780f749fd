// OpenAI's `n` choices, and `logprobs` / `top_logprobs` in both APIs: one entry per generated token,
// {token, logprob, bytes, top_logprobs}, the same values the generator
// records in process (checked against a float64 replay in logprobs_test),
// streamed chunk by chunk with the same total as without streaming.
#include <gtest/gtest.h>

#include <set>

#include "server_test_support.h"

namespace flatline {
namespace {

using test::json;
using test::TestServer;

class ServerLogprobsTest : public ::testing::Test {
 protected:
  void SetUp() override { test::write_random_rwkv7(dir_.path() + "/random.gguf", 7); }
  server::ServerOptions options() const { return test::test_server_options(dir_.path()); }
  test::TempDir dir_{"server-logprobs"};
};

json generate_body(bool stream) {
  return json{{"model", "random"},      {"prompt", "The bees"}, {"raw", true},
              {"stream", stream},       {"logprobs", true},     {"top_logprobs", 3},
              {"options", {{"temperature", 0}, {"num_predict", 10}}}};
}

// Greedy: every token is its own best alternative, and the tokens spell the reply.
void expect_greedy_entries(const json& entries, const std::string& text) {
  std::string joined;
  for (const json& e : entries) {
    joined += e["token"].get<std::string>();
    EXPECT_LE(e["logprob"].get<double>(), 0.0);
    ASSERT_EQ(e["top_logprobs"].size(), 3u) << e.dump();
    EXPECT_EQ(e["top_logprobs"][0]["token"], e["token"]);
    EXPECT_DOUBLE_EQ(e["top_logprobs"][0]["logprob"].get<double>(), e["logprob"].get<double>());
    EXPECT_GE(e["top_logprobs"][0]["logprob"].get<double>(), e["top_logprobs"][1]["logprob"].get<double>());
    ASSERT_EQ(e["bytes"].size(), e["token"].get<std::string>().size());
  }
  EXPECT_EQ(joined, text);
}

TEST_F(ServerLogprobsTest, OllamaGenerateGivesOneEntryPerTokenWithTheInProcessValues) {
  TestServer s(options());
  auto r = test::post(s, "/api/generate", generate_body(false));
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.js();
  ASSERT_EQ(j["logprobs"].size(), j["eval_count"].get<size_t>());
  expect_greedy_entries(j["logprobs"], j["response"]);

  // The same request in process.
  auto lm = test::load(dir_.path() + "/random.gguf");
  Engine engine(*lm);
  Conversation conv = engine.new_conversation(4096);
  GenerateOptions g;
  g.sampling.temperature = 0;
  g.num_predict = 10;
  g.top_logprobs = 3;
  g.use_template_stops = false;
  const GenerateResult want = engine.generate(conv, "The bees", g);
  ASSERT_EQ(want.logprobs.size(), j["logprobs"].size());
  for (size_t i = 0; i < want.logprobs.size(); ++i)
    EXPECT_NEAR(j["logprobs"][i]["logprob"].get<double>(), want.logprobs[i].logprob, 1e-6) << i;

  // Streaming: the lines' entries add up to the same list.
  auto stream = test::post(s, "/api/generate", generate_body(true));
  ASSERT_EQ(stream.status, 200);
  json streamed = json::array();
  for (const json& line : test::ndjson_lines(stream.body))
    if (line.contains("logprobs"))
      for (const json& e : line["logprobs"]) streamed.push_back(e);
  EXPECT_EQ(streamed, j["logprobs"]);
}

TEST_F(ServerLogprobsTest, OpenAiChatPutsThemInChoicesLogprobsContent) {
  TestServer s(options());
  json body = {{"model", "random"},
               {"messages", json::array({json{{"role", "user"}, {"content", "What is beekeeping?"}}})},
               {"temperature", 0},
               {"max_tokens", 10},
               {"logprobs", true},
               {"top_logprobs", 3}};
  auto r = test::post(s, "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const json choice = r.js()["choices"][0];
  const json& content = choice["logprobs"]["content"];
  EXPECT_EQ(content.size(), r.js()["usage"]["completion_tokens"].get<size_t>());
  expect_greedy_entries(content, choice["message"]["content"]);

  body["stream"] = true;
  auto sse = test::post(s, "/v1/chat/completions", body);
  ASSERT_EQ(sse.status, 200);
  json streamed = json::array();
  for (const std::string& event : test::sse_events(sse.body)) {
    if (event == "[DONE]") continue;
    const json c = json::parse(event);
    if (c["choices"].empty() || !c["choices"][0].contains("logprobs")) continue;
    for (const json& e : c["choices"][0]["logprobs"]["content"]) streamed.push_back(e);
  }
  EXPECT_EQ(streamed, content);

  // Not asked for: null, as OpenAI sends it.
  body.erase("logprobs");
  body.erase("top_logprobs");
  body["stream"] = false;
  auto plain = test::post(s, "/v1/chat/completions", body);
  ASSERT_EQ(plain.status, 200);
  EXPECT_TRUE(plain.js()["choices"][0]["logprobs"].is_null());
}

TEST_F(ServerLogprobsTest, BadValuesAreRefusedWithTheirRange) {
  TestServer s(options());
  json body = generate_body(false);
  body["top_logprobs"] = 21;
  auto r = test::post(s, "/api/generate", body);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"], "top_logprobs must be between 0 and 20 (got 21)");
  body["top_logprobs"] = 2;
  body["logprobs"] = false;
  r = test::post(s, "/api/generate", body);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"], "top_logprobs needs logprobs: true");
  body.erase("logprobs");
  body.erase("top_logprobs");
  r = test::post(s, "/api/generate", body);
  ASSERT_EQ(r.status, 200);
  EXPECT_FALSE(r.js().contains("logprobs"));
}

// n > 1: each choice is its own generation of the same prompt (seed + i),
// the prompt is evaluated once (the others start from its cached state).
TEST_F(ServerLogprobsTest, OpenAiNChoicesAreSeparateSamplesOfOnePrompt) {
  TestServer s(options());
  json body = {{"model", "random"},
               {"messages", json::array({json{{"role", "user"}, {"content", "What is beekeeping?"}}})},
               {"temperature", 1.0},
               {"seed", 5},
               {"max_tokens", 12},
               {"n", 3}};
  auto r = test::post(s, "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.js();
  ASSERT_EQ(j["choices"].size(), 3u);
  std::set<std::string> texts;
  int64_t tokens = 0;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(j["choices"][i]["index"], i);
    texts.insert(j["choices"][i]["message"]["content"].get<std::string>());
  }
  EXPECT_EQ(texts.size(), 3u) << "three seeds, three different samples: " << r.body;
  // Choice i is what a single request with seed 5 + i gives.
  for (int i = 0; i < 3; ++i) {
    json single = body;
    single["n"] = 1;
    single["seed"] = 5 + i;
    auto one = test::post(s, "/v1/chat/completions", single);
    ASSERT_EQ(one.status, 200);
    EXPECT_EQ(one.js()["choices"][0]["message"]["content"], j["choices"][i]["message"]["content"]) << i;
    tokens += one.js()["usage"]["completion_tokens"].get<int64_t>();
  }
  EXPECT_EQ(j["usage"]["completion_tokens"], tokens);
  body["n"] = 9;
  auto bad = test::post(s, "/v1/chat/completions", body);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.js()["error"]["message"], "n must be between 1 and 8 (got 9)");
  body["n"] = 2;
  body["stream"] = true;
  EXPECT_EQ(test::post(s, "/v1/chat/completions", body).status, 400);
}

}  // namespace
}  // namespace flatline
