// OpenAI's Responses API: a follow-up by previous_response_id resumes the
// stored state (evaluating exactly the new tokens, counted from the RWKV
// World chat format in server_turns_support.h, not from flatline's template
// or cache code), also after a restart with a state directory, and its
// greedy reply equals the same conversation sent in full to
// /v1/chat/completions; the streamed event sequence; GET / DELETE; the
// --max-responses bound; hostile input.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <fstream>

#include "server_test_support.h"
#include "server_turns_support.h"
#include "util/log.h"

namespace flatline {
namespace {

using test::json;
using test::TestServer;
namespace fs = std::filesystem;

using test::Event;
using test::sse_typed_events;

std::string output_text(const json& response) {
  std::string text;
  for (const json& item : response["output"])
    for (const json& part : item["content"]) text += part["text"].get<std::string>();
  return text;
}

int64_t evaluated(const json& response) {
  const json& u = response["usage"];
  return u["input_tokens"].get<int64_t>() - u["input_tokens_details"]["cached_tokens"].get<int64_t>();
}

// The demo model's tokenizer: every byte one token, "\n\n" one (greedy).
int64_t demo_tokens(const std::string& text) {
  int64_t n = 0;
  for (size_t i = 0; i < text.size(); ++i, ++n)
    if (text.compare(i, 2, "\n\n") == 0) ++i;
  return n;
}

constexpr int kDemoTokens = 300;

// What the state cache holds after a demo-model response (the prompt's end,
// and the prompt plus every generated token but the last, which stays
// pending: the "\n\n" end token when the reply completed, else its last
// byte), and so how many tokens a prompt that continues it evaluates.
struct DemoTurn {
  std::string id, prompt, reply, status;
  int64_t expected_eval(const std::string& next) const {
    const std::string after_reply = prompt + (status == "completed" ? reply : reply.substr(0, reply.size() - 1));
    size_t best = 0;
    for (const std::string& snapshot : {prompt, after_reply})
      if (next.compare(0, snapshot.size(), snapshot) == 0) best = std::max(best, snapshot.size());
    return demo_tokens(next.substr(best));
  }
};

class ServerResponsesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_level(LogLevel::Warn);
    test::make_models_dir(models_.path());
    fs::copy_file(test::source_dir() + "/models/flatline-demo-kjv.gguf", models_.file("demo.gguf"));
  }
  void TearDown() override { set_log_level(LogLevel::Info); }
  server::ServerOptions options(const std::string& state_dir = "") const {
    auto o = test::test_server_options(models_.path());
    o.cache.directory = state_dir;
    return o;
  }
  static json request(const std::string& model, json input, int n = 20) {
    return json{{"model", model}, {"input", std::move(input)}, {"temperature", 0}, {"max_output_tokens", n}};
  }
  static json created(const TestServer& s, const json& body) {
    auto r = test::post(s, "/v1/responses", body);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? r.js() : json::object();
  }
  static void expect_error(const test::HttpReply& r, int status, const std::string& needle) {
    EXPECT_EQ(r.status, status) << r.body;
    ASSERT_FALSE(r.body.empty());
    json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << r.body;
    EXPECT_NE(j["error"]["message"].get<std::string>().find(needle), std::string::npos) << r.body;
    EXPECT_TRUE(j["error"]["type"].is_string()) << r.body;
  }

  test::TempDir models_{"server-responses-models"};
};

// The reply a chat completion gives for `messages` (greedy, n tokens), on a
// server that has seen nothing before.
json chat_completion(const TestServer& s, const std::string& model, const json& messages, int n) {
  auto r = test::post(s, "/v1/chat/completions",
                      json{{"model", model}, {"messages", messages}, {"temperature", 0}, {"max_tokens", n}});
  EXPECT_EQ(r.status, 200) << r.body;
  return r.status == 200 ? r.js() : json::object();
}

TEST_F(ServerResponsesTest, AFollowUpAfterARestartEvaluatesOnlyTheNewTokens) {
  test::TempDir states("server-responses-states");
  const std::string q1 = "What is beekeeping?", q2 = "What are Layens hives?";
  json first;
  {
    TestServer s(options(states.path()));
    first = created(s, request("random", q1));
    ASSERT_EQ(first["status"], "incomplete") << "the random model never ends its turn";
    EXPECT_EQ(first["usage"]["input_tokens"], test::rwkv_render({{"user", q1}}).size());
    EXPECT_EQ(first["usage"]["input_tokens_details"]["cached_tokens"], 0);
  }
  const std::string reply1 = output_text(first);
  test::ExpectedCache expected;
  expected.after_turn(test::rwkv_render({{"user", q1}}), reply1, "length");
  const std::string prompt2 = test::rwkv_render({{"user", q1}, {"assistant", reply1}, {"user", q2}});

  TestServer s2(options(states.path()));
  json body = request("random", q2);
  body["previous_response_id"] = first["id"];
  json second = created(s2, body);
  EXPECT_EQ(second["previous_response_id"], first["id"]);
  EXPECT_EQ(second["usage"]["input_tokens"], prompt2.size());
  // The random model's reply need not start with the space the template
  // puts after "Assistant:", so the snapshot it resumes may be the prompt's
  // end; either way exactly the text after the stored one is evaluated.
  EXPECT_EQ(evaluated(second), expected.expected_eval(prompt2))
      << "the follow-up should evaluate only the text after the stored state";
  EXPECT_GE(s2.get().cache().stats().disk_hits, 1u);

  // The same conversation sent in full to a server with no state.
  TestServer fresh(options());
  json messages = json::array({json{{"role", "user"}, {"content", q1}}, json{{"role", "assistant"}, {"content", reply1}},
                               json{{"role", "user"}, {"content", q2}}});
  json reference = chat_completion(fresh, "random", messages, 20);
  EXPECT_EQ(output_text(second), reference["choices"][0]["message"]["content"]);
  EXPECT_EQ(second["usage"]["input_tokens"], reference["usage"]["prompt_tokens"]);
  EXPECT_EQ(reference["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
}

TEST_F(ServerResponsesTest, TheDemoModelResumesAcrossThreeTurnsWithARestartBeforeEach) {
  test::TempDir states("server-responses-demo");
  const std::vector<std::string> questions = {"Who made the heaven?", "And the earth?", "What came after?"};
  std::string last_id;
  std::vector<std::pair<std::string, std::string>> history;
  std::optional<DemoTurn> last;
  for (size_t i = 0; i < questions.size(); ++i) {
    TestServer s(options(states.path()));
    json body = request("demo", questions[i], kDemoTokens);
    if (last) body["previous_response_id"] = last->id;
    json r = created(s, body);
    history.push_back({"user", questions[i]});
    const std::string prompt = test::rwkv_render(history);
    json messages = json::array();
    for (const auto& [role, content] : history) messages.push_back(json{{"role", role}, {"content", content}});
    TestServer fresh(options());
    json reference = chat_completion(fresh, "demo", messages, kDemoTokens);
    EXPECT_EQ(output_text(r), reference["choices"][0]["message"]["content"]) << "turn " << i;
    EXPECT_EQ(r["usage"]["input_tokens"], demo_tokens(prompt)) << "turn " << i;
    EXPECT_EQ(r["usage"]["input_tokens"], reference["usage"]["prompt_tokens"]) << "turn " << i;
    if (last) {
      EXPECT_EQ(evaluated(r), last->expected_eval(prompt)) << "turn " << i << ": " << r["usage"].dump();
      EXPECT_LT(evaluated(r), 40) << "turn " << i;
      EXPECT_GE(s.get().cache().stats().disk_hits, 1u) << "turn " << i;
    }
    last = DemoTurn{r["id"], prompt, output_text(r), r["status"]};
    history.push_back({"assistant", output_text(r)});
  }
}

TEST_F(ServerResponsesTest, InstructionsAreNotCarriedOverButResentOnesKeepTheState) {
  TestServer s(options());
  json body = request("demo", "Who made the heaven?", kDemoTokens);
  body["instructions"] = "Answer briefly.";
  json first = created(s, body);
  const std::string reply = output_text(first);
  EXPECT_EQ(first["instructions"], "Answer briefly.");
  EXPECT_EQ(first["usage"]["input_tokens"],
            demo_tokens(test::rwkv_render({{"system", "Answer briefly."}, {"user", "Who made the heaven?"}})));

  json same = request("demo", "More?", kDemoTokens);
  same["instructions"] = "Answer briefly.";
  same["previous_response_id"] = first["id"];
  json resumed = created(s, same);
  EXPECT_LT(evaluated(resumed), 40) << resumed["usage"].dump();

  json without = request("demo", "More?", kDemoTokens);
  without["previous_response_id"] = first["id"];
  json plain = created(s, without);
  EXPECT_EQ(plain["instructions"], nullptr);
  EXPECT_EQ(plain["usage"]["input_tokens"],
            demo_tokens(test::rwkv_render({{"user", "Who made the heaven?"}, {"assistant", reply}, {"user", "More?"}})));
}

TEST_F(ServerResponsesTest, StreamingSendsTheResponsesEventSequence) {
  TestServer s(options());
  // Sampled with a seed (greedy loops on this toy model): the verse ends.
  json body = request("demo", "Who made the heaven and the earth?", kDemoTokens);
  body["temperature"] = 0.8;
  body["top_p"] = 0.9;
  body["seed"] = 7;
  json plain = created(s, body);
  body["stream"] = true;
  body["store"] = true;
  std::string raw;
  const int status = test::post_streaming(s, "/v1/responses", body, [&](const std::string& d) {
    raw += d;
    return true;
  });
  ASSERT_EQ(status, 200);
  const std::vector<Event> events = sse_typed_events(raw);
  ASSERT_GE(events.size(), 9u) << raw;
  const std::vector<std::string> head = {"response.created", "response.in_progress", "response.output_item.added",
                                         "response.content_part.added"};
  const std::vector<std::string> tail = {"response.output_text.done", "response.content_part.done",
                                         "response.output_item.done", "response.completed"};
  std::string deltas;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].data["type"], events[i].type);
    EXPECT_EQ(events[i].data["sequence_number"], static_cast<int64_t>(i));
    if (i < head.size()) {
      EXPECT_EQ(events[i].type, head[i]);
    } else if (i >= events.size() - tail.size()) {
      EXPECT_EQ(events[i].type, tail[i - (events.size() - tail.size())]);
    } else {
      ASSERT_EQ(events[i].type, "response.output_text.delta");
      deltas += events[i].data["delta"].get<std::string>();
    }
  }
  EXPECT_EQ(events[0].data["response"]["status"], "in_progress");
  const json& done = events.back().data["response"];
  EXPECT_EQ(done["status"], "completed");
  EXPECT_EQ(deltas, output_text(plain));
  EXPECT_EQ(output_text(done), deltas);
  EXPECT_EQ(events[events.size() - 4].data["text"], deltas);
  EXPECT_EQ(done["usage"]["output_tokens"], plain["usage"]["output_tokens"]);
  EXPECT_EQ(done["usage"]["input_tokens"], plain["usage"]["input_tokens"]);
  auto stored = test::get(s, "/v1/responses/" + done["id"].get<std::string>());
  ASSERT_EQ(stored.status, 200) << stored.body;
  EXPECT_EQ(stored.js(), done);
}

TEST_F(ServerResponsesTest, TextFormatJsonSchemaConstrainsTheReply) {
  TestServer s(options());
  const json schema = {{"type", "object"},
                       {"properties", {{"n", {{"type", "integer"}}}}},
                       {"required", json::array({"n"})},
                       {"additionalProperties", false}};
  json body = request("random", "A number, please.", 60);
  body["temperature"] = 1.0;
  body["seed"] = 3;
  body["text"] = {{"format", {{"type", "json_schema"}, {"name", "number"}, {"strict", true}, {"schema", schema}}}};
  json r = created(s, body);
  EXPECT_EQ(r["text"]["format"]["name"], "number");
  json value = json::parse(output_text(r), nullptr, false);
  ASSERT_TRUE(value.is_object()) << output_text(r);
  EXPECT_EQ(value.size(), 1u) << output_text(r);
  EXPECT_TRUE(value["n"].is_number_integer()) << output_text(r);
  body["text"] = {{"format", {{"type", "xml"}}}};
  expect_error(test::post(s, "/v1/responses", body), 400, "xml");
}

TEST_F(ServerResponsesTest, GetDeleteAndStoreFalse) {
  TestServer s(options());
  json r = created(s, request("random", "What is beekeeping?", 8));
  const std::string id = r["id"];
  EXPECT_EQ(r["object"], "response");
  EXPECT_EQ(r["store"], true);
  EXPECT_EQ(r["output"][0]["role"], "assistant");
  EXPECT_EQ(r["output"][0]["content"][0]["type"], "output_text");
  auto got = test::get(s, "/v1/responses/" + id);
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.js(), r);

  auto c = s.client();
  auto del = c->Delete(("/v1/responses/" + id).c_str());
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200);
  EXPECT_EQ(json::parse(del->body), (json{{"id", id}, {"object", "response"}, {"deleted", true}}));
  expect_error(test::get(s, "/v1/responses/" + id), 404, "not found");
  auto again = c->Delete(("/v1/responses/" + id).c_str());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 404);
  json follow = request("random", "More?");
  follow["previous_response_id"] = id;
  expect_error(test::post(s, "/v1/responses", follow), 404, id);

  json unstored = request("random", "What is beekeeping?", 8);
  unstored["store"] = false;
  json u = created(s, unstored);
  EXPECT_EQ(u["store"], false);
  expect_error(test::get(s, "/v1/responses/" + u["id"].get<std::string>()), 404, "not found");
}

TEST_F(ServerResponsesTest, MaxResponsesEvictsTheOldestAlsoAcrossARestart) {
  test::TempDir states("server-responses-evict");
  auto o = options(states.path());
  o.max_responses = 2;
  std::vector<std::string> ids;
  {
    TestServer s(o);
    for (const char* q : {"one", "two", "three"}) ids.push_back(created(s, request("random", q, 4))["id"]);
    expect_error(test::get(s, "/v1/responses/" + ids[0]), 404, "not found");
    EXPECT_EQ(test::get(s, "/v1/responses/" + ids[1]).status, 200);
    EXPECT_EQ(test::get(s, "/v1/responses/" + ids[2]).status, 200);
  }
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(states.file("responses"))) files += e.path().extension() == ".json";
  EXPECT_EQ(files, 2u);
  o.max_responses = 1;
  TestServer s2(o);
  EXPECT_EQ(test::get(s2, "/v1/responses/" + ids[1]).status, 404) << "the older one goes when the bound shrinks";
  EXPECT_EQ(test::get(s2, "/v1/responses/" + ids[2]).status, 200);
}

TEST_F(ServerResponsesTest, HostileInputGetsClearErrors) {
  test::TempDir states("server-responses-hostile");
  TestServer s(options(states.path()));
  auto post = [&](const json& body) { return test::post(s, "/v1/responses", body); };
  auto with = [&](const char* key, json value) {
    json b = request("random", "hello");
    b[key] = std::move(value);
    return b;
  };
  expect_error(post(with("previous_response_id", "../../etc/passwd")), 400, "invalid previous_response_id");
  expect_error(post(with("previous_response_id", "resp_123")), 400, "invalid previous_response_id");
  expect_error(post(with("previous_response_id", 42)), 400, "previous_response_id");
  expect_error(post(with("previous_response_id", "resp_" + std::string(32, 'a'))), 404, "not found");
  expect_error(post(with("input", 42)), 400, "input must be a string or a list");
  expect_error(post(with("input", json::array())), 400, "empty");
  expect_error(post(with("input", "")), 400, "empty");
  expect_error(post(with("input", json::array({"text"}))), 400, "input[0] must be an object");
  expect_error(post(with("input", json::array({json{{"type", "function_call"}, {"name", "f"}}}))), 400,
               "function_call");
  expect_error(post(with("input", json::array({json{{"type", "item_reference"}, {"id", "x"}}}))), 400,
               "previous_response_id");
  expect_error(post(with("input", json::array({json{{"role", "robot"}, {"content", "x"}}}))), 400, "robot");
  expect_error(post(with("input", json::array({json{{"role", "user"}}}))), 400, "content is required");
  expect_error(post(with("input", json::array({json{{"role", "user"}, {"content", 7}}}))), 400, "content");
  expect_error(post(with("input", json::array({json{{"role", "user"},
                                                    {"content", json::array({json{{"type", "input_image"}}})}}}))),
               400, "images");
  expect_error(post(with("input", json::array({json{{"role", "user"},
                                                    {"content", json::array({json{{"type", "input_text"}}})}}}))),
               400, "text must be a string");
  expect_error(post(with("tools", json::array({json{{"type", "function"}, {"name", "f"}}}))), 400, "tools");
  expect_error(post(with("truncation", "sometimes")), 400, "truncation");
  expect_error(post(with("max_output_tokens", -5)), 400, "max_output_tokens");
  expect_error(post(with("temperature", "hot")), 400, "temperature");
  expect_error(post(with("background", true)), 400, "background");
  expect_error(post(with("model", "no-such-model")), 404, "not found");
  json no_model = request("random", "hello");
  no_model.erase("model");
  expect_error(post(no_model), 400, "model is required");
  json no_input = request("random", "hello");
  no_input.erase("input");
  expect_error(post(no_input), 400, "input is required");
  expect_error(test::post(s, "/v1/responses", std::string("{not json")), 400, "");
  expect_error(test::get(s, "/v1/responses/resp_..%2F..%2Fetc%2Fpasswd"), 400, "invalid response id");
  expect_error(test::get(s, "/v1/responses/" + std::string(5000, 'r')), 400, "invalid response id");
  expect_error(test::get(s, "/v1/responses/resp_" + std::string(32, 'b') + "/input_items"), 501, "not supported");

  // A damaged file in the responses folder: a clear 500, no crash.
  json ok = created(s, request("random", "hello", 4));
  const std::string id = ok["id"];
  { std::ofstream(states.file("responses/" + id + ".json"), std::ios::trunc) << "{\"flatline_response\": 1, \"id\":"; }
  expect_error(test::get(s, "/v1/responses/" + id), 500, "unreadable");
  json follow = request("random", "more");
  follow["previous_response_id"] = id;
  expect_error(post(follow), 500, "unreadable");
  EXPECT_EQ(test::get(s, "/health").status, 200);
}

}  // namespace
}  // namespace flatline
