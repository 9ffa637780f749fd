// Anthropic's Messages API (POST /v1/messages): the reply equals /api/chat's
// for the same conversation (greedy), usage counts the prompt from the RWKV
// World chat format (server_turns_support.h) with cache reads apart,
// stop_sequences cut the greedy reply where the sequence first appears in
// it, the streamed event sequence, the x-api-key header, hostile input.
#include <gtest/gtest.h>

#include <filesystem>

#include "server_test_support.h"
#include "server_turns_support.h"
#include "util/log.h"

namespace flatline {
namespace {

using test::json;
using test::TestServer;

using test::Event;
using test::sse_typed_events;

json user(const std::string& text) { return json{{"role", "user"}, {"content", text}}; }

json message_body(json messages, int n = 16) {
  return json{{"model", "random"}, {"max_tokens", n}, {"temperature", 0}, {"messages", std::move(messages)}};
}

class ServerMessagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_level(LogLevel::Warn);
    test::make_models_dir(models_.path());
  }
  void TearDown() override { set_log_level(LogLevel::Info); }
  server::ServerOptions options() const { return test::test_server_options(models_.path()); }

  static json sent(const TestServer& s, const json& body) {
    auto r = test::post(s, "/v1/messages", body);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? r.js() : json::object();
  }
  static std::string chat_reply(const TestServer& s, const json& messages, int n) {
    auto r = test::post(s, "/api/chat",
                        json{{"model", "random"}, {"messages", messages}, {"stream", false},
                             {"options", {{"temperature", 0}, {"num_predict", n}}}});
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? r.js()["message"]["content"].get<std::string>() : "";
  }
  static void expect_error(const test::HttpReply& r, int status, const std::string& type, const std::string& needle) {
    EXPECT_EQ(r.status, status) << r.body;
    json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.body;
    EXPECT_EQ(j["type"], "error") << r.body;
    EXPECT_EQ(j["error"]["type"], type) << r.body;
    EXPECT_NE(j["error"]["message"].get<std::string>().find(needle), std::string::npos) << r.body;
  }

  test::TempDir models_{"server-messages-models"};
};

TEST_F(ServerMessagesTest, TheReplyAndUsageMatchAChatOfTheSameConversation) {
  TestServer s(options());
  json body = message_body(json::array({user("What is beekeeping?")}));
  body["system"] = "Answer briefly.";
  json m = sent(s, body);
  EXPECT_EQ(m["type"], "message");
  EXPECT_EQ(m["role"], "assistant");
  EXPECT_EQ(m["model"], "random");
  EXPECT_EQ(m["id"].get<std::string>().rfind("msg_", 0), 0u);
  ASSERT_EQ(m["content"].size(), 1u);
  EXPECT_EQ(m["content"][0]["type"], "text");
  EXPECT_EQ(m["stop_reason"], "max_tokens");
  EXPECT_EQ(m["stop_sequence"], nullptr);
  const std::string prompt = test::rwkv_render({{"system", "Answer briefly."}, {"user", "What is beekeeping?"}});
  EXPECT_EQ(m["usage"]["input_tokens"], prompt.size());
  EXPECT_EQ(m["usage"]["cache_read_input_tokens"], 0);
  EXPECT_EQ(m["usage"]["output_tokens"], 16);

  TestServer other(options());
  const std::string reference = chat_reply(
      other, json::array({json{{"role", "system"}, {"content", "Answer briefly."}}, user("What is beekeeping?")}), 16);
  EXPECT_EQ(m["content"][0]["text"], reference);

  // The next turn resends the history: the cached state serves all but the new text.
  const std::string reply = m["content"][0]["text"];
  test::ExpectedCache expected;
  expected.after_turn(prompt, reply, "length");
  json next = message_body(json::array({user("What is beekeeping?"), json{{"role", "assistant"}, {"content", reply}},
                                        user("And Layens hives?")}));
  next["system"] = json::array({json{{"type", "text"}, {"text", "Answer briefly."}}});
  json m2 = sent(s, next);
  const std::string prompt2 = test::rwkv_render(
      {{"system", "Answer briefly."}, {"user", "What is beekeeping?"}, {"assistant", reply}, {"user", "And Layens hives?"}});
  EXPECT_EQ(m2["usage"]["input_tokens"], expected.expected_eval(prompt2));
  EXPECT_EQ(m2["usage"]["input_tokens"].get<int64_t>() + m2["usage"]["cache_read_input_tokens"].get<int64_t>(),
            static_cast<int64_t>(prompt2.size()));
}

TEST_F(ServerMessagesTest, ContentBlocksReadAsTheirJoinedText) {
  TestServer s(options());
  json blocks = json::array({json{{"role", "user"},
                                  {"content", json::array({json{{"type", "text"}, {"text", "What is "}},
                                                           json{{"type", "text"}, {"text", "beekeeping?"}}})}}});
  json a = sent(s, message_body(blocks));
  TestServer other(options());
  json b = sent(other, message_body(json::array({user("What is beekeeping?")})));
  EXPECT_EQ(a["content"][0]["text"], b["content"][0]["text"]);
  EXPECT_EQ(a["usage"]["input_tokens"], b["usage"]["input_tokens"]);
}

TEST_F(ServerMessagesTest, StopSequencesCutTheReplyWhereTheyFirstAppear) {
  TestServer s(options());
  const json messages = json::array({user("What is beekeeping?")});
  const std::string full = sent(s, message_body(messages, 24))["content"][0]["text"];
  ASSERT_GE(full.size(), 12u);
  const std::string stop = full.substr(6, 2);
  const size_t first = full.find(stop);
  json body = message_body(messages, 24);
  body["stop_sequences"] = json::array({"never in this reply \x01", stop});
  json m = sent(s, body);
  EXPECT_EQ(m["content"][0]["text"], full.substr(0, first));
  EXPECT_EQ(m["stop_reason"], "stop_sequence");
  EXPECT_EQ(m["stop_sequence"], stop);
}

TEST_F(ServerMessagesTest, StreamingSendsTheMessageEventSequence) {
  TestServer s(options());
  json body = message_body(json::array({user("What is beekeeping?")}));
  json plain = sent(s, body);
  body["stream"] = true;
  std::string raw;
  ASSERT_EQ(test::post_streaming(s, "/v1/messages", body, [&](const std::string& d) {
              raw += d;
              return true;
            }),
            200);
  const std::vector<Event> events = sse_typed_events(raw);
  ASSERT_GE(events.size(), 7u) << raw;
  const std::vector<std::string> head = {"message_start", "content_block_start", "ping"};
  const std::vector<std::string> tail = {"content_block_stop", "message_delta", "message_stop"};
  std::string text;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].data["type"], events[i].type);
    if (i < head.size()) {
      EXPECT_EQ(events[i].type, head[i]);
    } else if (i >= events.size() - tail.size()) {
      EXPECT_EQ(events[i].type, tail[i - (events.size() - tail.size())]);
    } else {
      ASSERT_EQ(events[i].type, "content_block_delta");
      EXPECT_EQ(events[i].data["index"], 0);
      EXPECT_EQ(events[i].data["delta"]["type"], "text_delta");
      text += events[i].data["delta"]["text"].get<std::string>();
    }
  }
  EXPECT_EQ(text, plain["content"][0]["text"]);
  const json& start = events[0].data["message"];
  EXPECT_EQ(start["content"], json::array());
  EXPECT_EQ(start["stop_reason"], nullptr);
  // The same prompt again: served from the state the first request left.
  EXPECT_EQ(start["usage"]["input_tokens"].get<int64_t>() + start["usage"]["cache_read_input_tokens"].get<int64_t>(),
            plain["usage"]["input_tokens"].get<int64_t>());
  const json& delta = events[events.size() - 2].data;
  EXPECT_EQ(delta["delta"]["stop_reason"], plain["stop_reason"]);
  EXPECT_EQ(delta["usage"]["output_tokens"], plain["usage"]["output_tokens"]);
}

TEST_F(ServerMessagesTest, TheApiKeyMayComeAsXApiKey) {
  auto o = options();
  o.access.api_key = "s3cret-key";
  TestServer s(o);
  auto c = s.client();
  const std::string body = message_body(json::array({user("hi")}), 2).dump();
  auto ok = c->Post("/v1/messages", {{"x-api-key", "s3cret-key"}, {"anthropic-version", "2023-06-01"}}, body,
                    "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  auto bad = c->Post("/v1/messages", {{"x-api-key", "wrong"}}, body, "application/json");
  ASSERT_TRUE(bad);
  expect_error({bad->status, bad->body, ""}, 401, "authentication_error", "x-api-key");
  auto none = c->Post("/v1/messages", body, "application/json");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
}

TEST_F(ServerMessagesTest, HostileInputGetsClearErrors) {
  TestServer s(options());
  auto post = [&](const json& b) { return test::post(s, "/v1/messages", b); };
  auto with = [&](const char* key, json value) {
    json b = message_body(json::array({user("hello")}), 4);
    b[key] = std::move(value);
    return b;
  };
  const std::string bad = "invalid_request_error";
  json no_max = message_body(json::array({user("hello")}));
  no_max.erase("max_tokens");
  expect_error(post(no_max), 400, bad, "max_tokens");
  expect_error(post(with("max_tokens", 0)), 400, bad, "max_tokens");
  expect_error(post(with("max_tokens", "many")), 400, bad, "max_tokens");
  expect_error(post(with("messages", json::array())), 400, bad, "at least one message");
  expect_error(post(with("messages", "hello")), 400, bad, "messages");
  expect_error(post(with("messages", json::array({json{{"role", "system"}, {"content", "x"}}}))), 400, bad, "role");
  expect_error(post(with("messages", json::array({json{{"role", "user"}}}))), 400, bad, "content is required");
  expect_error(post(with("messages", json::array({json{{"role", "user"}, {"content", 5}}}))), 400, bad, "content");
  expect_error(post(with("messages", json::array({json{{"role", "user"},
                                                       {"content", json::array({json{{"type", "image"}}})}}}))),
               400, bad, "images");
  expect_error(post(with("messages", json::array({json{{"role", "user"},
                                                       {"content", json::array({json{{"type", "tool_result"}}})}}}))),
               400, bad, "tools");
  expect_error(post(with("system", 5)), 400, bad, "system");
  expect_error(post(with("stop_sequences", "x")), 400, bad, "stop_sequences");
  expect_error(post(with("stop_sequences", json::array({1}))), 400, bad, "stop_sequences");
  expect_error(post(with("top_k", -3)), 400, bad, "top_k");
  expect_error(post(with("temperature", -1)), 400, bad, "temperature");
  expect_error(post(with("tools", json::array({json{{"name", "f"}}}))), 400, bad, "tools");
  expect_error(post(with("model", "no-such-model")), 404, "not_found_error", "not found");
  expect_error(test::post(s, "/v1/messages", std::string("{not json")), 400, bad, "");
  EXPECT_EQ(test::get(s, "/v1/messages").status, 405);
}

}  // namespace
}  // namespace flatline
