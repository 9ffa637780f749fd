// The server's conversation states over HTTP: exact prompt_eval_count over
// ten turns, eviction, persistence across a restart (same greedy tokens as
// without it), corrupt and foreign state files, a client that disconnects,
// concurrent clients, and the memory guard.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "server_test_support.h"
#include "server_turns_support.h"
#include "util/log.h"

namespace flatline {
namespace {

using test::json;
using test::TestServer;

struct Turn {
  std::string reply;
  std::string done_reason;
  int64_t prompt_eval_count = 0;
  int64_t eval_count = 0;
};

// A client conversation: resends the whole history each turn.
class Conversation {
 public:
  Conversation(const TestServer& s, std::string model, int n = 16) : s_(s), model_(std::move(model)), n_(n) {}

  Turn say(const std::string& text) {
    history_.push_back({"user", text});
    json messages = json::array();
    for (const auto& [role, content] : history_) messages.push_back(json{{"role", role}, {"content", content}});
    auto r = test::post(s_, "/api/chat",
                        json{{"model", model_},
                             {"messages", messages},
                             {"stream", false},
                             {"options", {{"temperature", 0}, {"num_predict", n_}}}});
    Turn t;
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) return t;
    json j = r.js();
    t.reply = j["message"]["content"];
    t.done_reason = j["done_reason"];
    t.prompt_eval_count = j["prompt_eval_count"];
    t.eval_count = j["eval_count"];
    history_.push_back({"assistant", t.reply});
    return t;
  }
  const std::vector<std::pair<std::string, std::string>>& history() const { return history_; }
  std::string last_prompt() const {
    auto h = history_;
    h.pop_back();  // the reply
    return test::rwkv_render(h);
  }

 private:
  const TestServer& s_;
  std::string model_;
  int n_;
  std::vector<std::pair<std::string, std::string>> history_;
};

class ServerStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_level(LogLevel::Warn);
    has_tiny_ = test::make_models_dir(models_.path());
  }
  void TearDown() override { set_log_level(LogLevel::Info); }
  server::ServerOptions options() const { return test::test_server_options(models_.path()); }

  test::TempDir models_{"server-state-models"};
  bool has_tiny_ = false;
};

void check_ten_turns_over_http(const TestServer& s, const std::string& model, bool require_reply_hits) {
  Conversation conv(s, model, 24);
  test::ExpectedCache expected;
  int reply_hits = 0;
  for (size_t i = 0; i < test::kBeekeepingQuestions.size(); ++i) {
    auto h = conv.history();
    h.push_back({"user", test::kBeekeepingQuestions[i]});
    const std::string prompt = test::rwkv_render(h);
    bool from_reply = false;
    const int64_t want = expected.expected_eval(prompt, &from_reply);
    Turn t = conv.say(test::kBeekeepingQuestions[i]);
    EXPECT_EQ(t.prompt_eval_count, want) << model << " turn " << i + 1;
    if (i > 0 && from_reply) ++reply_hits;
    expected.after_turn(prompt, t.reply, t.done_reason);
  }
  if (require_reply_hits) {
    EXPECT_EQ(reply_hits, 9) << model << ": turns 2-10 should start from the previous reply's state";
  }
}

TEST_F(ServerStateTest, TenTurnsEvaluateOnlyTheNewTokens) {
  TestServer s(options());
  check_ten_turns_over_http(s, "random", false);
  if (!has_tiny_) GTEST_SKIP() << "fixture ../shared/models/tiny-rwkv7-834K-f32.gguf not found; checked the random model only";
  check_ten_turns_over_http(s, "tiny", true);
}

TEST_F(ServerStateTest, EvictedConversationsAreRecomputedInFull) {
  // Measure one snapshot of this model, then allow room for four (each
  // turn leaves two: after the prompt and after the reply).
  uint64_t per_snapshot = 0;
  {
    TestServer probe(options());
    Conversation(probe, "random", 4).say("Measure me.");
    const StateCacheStats st = probe.get().cache().stats();
    ASSERT_GT(st.entries, 0u);
    per_snapshot = st.bytes / st.entries;
  }
  auto o = options();
  o.cache.memory_limit = 4 * per_snapshot + per_snapshot / 2;
  TestServer s(o);
  Conversation a(s, "random", 4), b(s, "random", 4), c(s, "random", 4);
  a.say("First conversation, first message.");
  b.say("Second conversation, first message.");
  b.say("Second conversation, second message.");
  // b's second turn superseded its first (a conversation keeps two
  // snapshots), so nothing had to be evicted yet.
  EXPECT_EQ(s.get().cache().stats().evictions, 0u);
  EXPECT_GT(s.get().cache().stats().superseded, 0u);
  c.say("Third conversation, first message.");
  // a's two snapshots were the least recently used and made room for c's.
  EXPECT_GT(s.get().cache().stats().evictions, 0u);
  // c's snapshots are the most recently used and still there.
  Turn u = c.say("Third conversation, second message.");
  EXPECT_LT(u.prompt_eval_count, static_cast<int64_t>(c.last_prompt().size()));
  // a's next turn starts over (checked after c's: a prompt fed from zero
  // across several messages also leaves message-boundary snapshots, which
  // take c's room in turn).
  Turn t = a.say("First conversation, second message.");
  EXPECT_EQ(t.prompt_eval_count, static_cast<int64_t>(a.last_prompt().size()));
}

TEST_F(ServerStateTest, ConversationsSurviveARestartWithTheSameGreedyTokens) {
  test::TempDir states("server-states");
  auto o = options();
  o.cache.directory = states.path();
  const std::vector<std::string> questions = {"What is beekeeping?", "What are Layens hives?", "How do you harvest honey?"};

  // Reference: all three turns on one server.
  std::vector<Turn> reference;
  {
    auto plain = options();
    TestServer s(plain);
    Conversation c(s, "random", 20);
    for (const auto& q : questions) reference.push_back(c.say(q));
  }
  // Two turns, restart (states on disk only), third turn.
  std::vector<std::pair<std::string, std::string>> history;
  {
    TestServer s(o);
    Conversation c(s, "random", 20);
    c.say(questions[0]);
    c.say(questions[1]);
    history = c.history();
  }
  TestServer s2(o);
  EXPECT_GE(s2.get().cache().stats().disk_entries, 2u);
  json messages = json::array();
  for (const auto& [role, content] : history) messages.push_back(json{{"role", role}, {"content", content}});
  messages.push_back(json{{"role", "user"}, {"content", questions[2]}});
  auto r = test::post(s2, "/api/chat",
                      json{{"model", "random"}, {"messages", messages}, {"stream", false},
                           {"options", {{"temperature", 0}, {"num_predict", 20}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.js()["message"]["content"], reference[2].reply);
  EXPECT_EQ(r.js()["prompt_eval_count"], reference[2].prompt_eval_count)
      << "after the restart the third turn should evaluate only its new text, as without it";
  EXPECT_EQ(s2.get().cache().stats().disk_hits, 1u);
}

TEST_F(ServerStateTest, CorruptAndForeignStateFilesAreNeverLoaded) {
  test::TempDir states("server-states-bad");
  auto o = options();
  o.cache.directory = states.path();
  std::string question = "Is this state mine?";
  {
    TestServer s(o);
    Conversation c(s, "random2", 8);  // random2's states, then a restart
    c.say(question);
  }
  // Corrupt every saved state in place and add a truncated copy.
  for (const auto& f : std::filesystem::directory_iterator(states.path())) {
    std::fstream io(f.path(), std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(-20, std::ios::end);
    io.put('\x55');
  }
  std::ofstream(states.file("short.flstate")) << "FLSTATE";
  testing::internal::CaptureStderr();
  set_log_level(LogLevel::Info);
  {
    TestServer s(o);
    // "random" never wrote these files: they must not be offered to it, and
    // random2's corrupt one must be rejected, so both start from scratch.
    Conversation other(s, "random", 4);
    Turn t = other.say(question);
    EXPECT_EQ(t.prompt_eval_count, static_cast<int64_t>(other.last_prompt().size()));
    Conversation mine(s, "random2", 4);
    Turn u = mine.say(question);
    EXPECT_EQ(u.prompt_eval_count, static_cast<int64_t>(mine.last_prompt().size()));
  }
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("short.flstate"), std::string::npos) << log;
  EXPECT_NE(log.find("checksum"), std::string::npos) << log;
}

TEST_F(ServerStateTest, AClientThatDisconnectsStopsItsGeneration) {
  TestServer s(options());
  const int64_t asked = 200000;
  testing::internal::CaptureStderr();
  set_log_level(LogLevel::Info);
  // A sampled reply can end on its own ("\n\n"); try seeds until the client
  // really leaves while the reply is still going.
  bool left_mid_reply = false;
  for (int seed = 1; seed <= 20 && !left_mid_reply; ++seed) {
    json body = {{"model", "random"},
                 {"messages", json::array({json{{"role", "user"}, {"content", "Talk forever"}}})},
                 {"options", {{"temperature", 1.0}, {"seed", seed}, {"num_predict", asked}}}};
    int chunks = 0;
    bool saw_done = false;
    test::post_streaming(s, "/api/chat", body, [&](const std::string& data) {
      saw_done |= data.find("\"done\":true") != std::string::npos;
      return ++chunks < 3;
    });
    left_mid_reply = !saw_done && chunks == 3;
  }
  ASSERT_TRUE(left_mid_reply) << "every sampled reply ended within 3 chunks";
  // The next request waits for the model turn, so when it returns the
  // abandoned generation has ended.
  Conversation c(s, "random", 2);
  c.say("Are you free now?");
  const std::string log = testing::internal::GetCapturedStderr();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(generation stopped after (\d+) tokens)"))) << log;
  EXPECT_LT(std::stoll(m[1]), asked);
}

TEST_F(ServerStateTest, ConcurrentClientsGetTheSameAnswersAsSequentialOnes) {
  const std::vector<std::vector<std::string>> scripts = {
      {"What is beekeeping?", "What are Layens hives?", "How do you harvest honey?"},
      {"Tell me about varroa.", "And swarms?", "Summarize."},
      {"Hello!", "How are you?", "Goodbye."},
  };
  auto run_script = [](const TestServer& s, const std::vector<std::string>& script, const std::string& model) {
    Conversation c(s, model, 12);
    std::vector<std::string> replies;
    for (const auto& line : script) replies.push_back(c.say(line).reply);
    return replies;
  };
  std::vector<std::vector<std::string>> sequential;
  {
    TestServer s(options());
    for (size_t i = 0; i < scripts.size(); ++i) sequential.push_back(run_script(s, scripts[i], "random"));
  }
  TestServer s(options());
  std::vector<std::vector<std::string>> concurrent(scripts.size());
  std::vector<std::thread> threads;
  std::atomic<bool> root_ok{true};
  for (size_t i = 0; i < scripts.size(); ++i)
    threads.emplace_back([&, i] { concurrent[i] = run_script(s, scripts[i], "random"); });
  // The server answers other requests while generations are queued.
  for (int i = 0; i < 5; ++i) root_ok = root_ok && test::get(s, "/").status == 200;
  for (auto& t : threads) t.join();
  EXPECT_TRUE(root_ok);
  EXPECT_EQ(concurrent, sequential);
}

TEST_F(ServerStateTest, StreamsStayResponsiveToOtherRequests) {
  TestServer s(options());
  json body = {{"model", "random"},
               {"messages", json::array({json{{"role", "user"}, {"content", "Long reply"}}})},
               {"options", {{"temperature", 1.0}, {"seed", 9}, {"num_predict", 400}}}};
  std::atomic<bool> done{false};
  std::atomic<bool> checked_while_streaming{false};
  test::post_streaming(s, "/api/chat", body, [&](const std::string& data) {
    if (!checked_while_streaming && !done) {
      // While this stream is open and the model is busy, listings answer.
      EXPECT_EQ(test::get(s, "/api/tags").status, 200);
      EXPECT_EQ(test::get(s, "/api/ps").status, 200);
      checked_while_streaming = true;
    }
    if (data.find("\"done\":true") != std::string::npos) done = true;
    return true;
  });
  EXPECT_TRUE(checked_while_streaming);
  EXPECT_TRUE(done);
}

TEST_F(ServerStateTest, RequestsBeyondTheQueueLimitGet503) {
  auto o = options();
  o.models.max_queue = 1;  // one running + one waiting
  TestServer s(o);
  auto entry = s.get().models().catalog().find("random");
  ASSERT_TRUE(entry);
  // The test itself holds the model turn, as a long generation would.
  auto lease = s.get().models().acquire(*entry, 0, std::nullopt);
  const json small = {{"model", "random"},
                      {"messages", json::array({json{{"role", "user"}, {"content", "hi"}}})},
                      {"stream", false},
                      {"options", {{"num_predict", 2}}}};
  int waiting_status = 0;
  std::thread waiter([&] { waiting_status = test::post(s, "/api/chat", small).status; });
  for (int i = 0; i < 20000 && s.get().models().queued() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(s.get().models().queued(), 2u);
  auto busy = s.client()->Post("/api/chat", small.dump(), "application/json");
  ASSERT_TRUE(busy);
  EXPECT_EQ(busy->status, 503);
  EXPECT_EQ(json::parse(busy->body)["error"], "server busy, please try again.  maximum pending requests exceeded");
  // Fairness (#15): the refusal says when to come back.
  const std::string retry_after = busy->get_header_value("Retry-After");
  ASSERT_FALSE(retry_after.empty());
  EXPECT_GE(std::stoi(retry_after), 1);
  EXPECT_LE(std::stoi(retry_after), 3600);
  EXPECT_EQ(test::get(s, "/api/tags").status, 200);  // listings never queue
  lease.reset();
  waiter.join();
  EXPECT_EQ(waiting_status, 200);
}

// Fairness (#15): a request that waits beyond --queue-timeout is refused
// without stalling the ones behind it, and --request-timeout cuts a reply
// short as "length".
TEST_F(ServerStateTest, ARequestWaitingBeyondTheQueueTimeoutGets503AndTheQueueMovesOn) {
  auto o = options();
  o.models.queue_timeout_ms = 200;
  TestServer s(o);
  auto entry = s.get().models().catalog().find("random");
  ASSERT_TRUE(entry);
  auto lease = s.get().models().acquire(*entry, 0, std::nullopt);
  const json small = {{"model", "random"}, {"prompt", "hi"}, {"stream", false}, {"options", {{"num_predict", 2}}}};
  auto gave_up = s.client()->Post("/api/generate", small.dump(), "application/json");
  ASSERT_TRUE(gave_up);
  EXPECT_EQ(gave_up->status, 503);
  EXPECT_EQ(json::parse(gave_up->body)["error"],
            "server busy, please try again.  waited 0.2 s for the model with 1 request(s) still ahead (--queue-timeout)");
  EXPECT_FALSE(gave_up->get_header_value("Retry-After").empty());
  EXPECT_EQ(s.get().models().queued(), 1u);  // the one that gave up no longer counts
  // The ticket it left behind is skipped: the next waiter is served as soon as the turn is free.
  int next_status = 0;
  std::thread next([&] { next_status = test::post(s, "/api/generate", small).status; });
  for (int i = 0; i < 20000 && s.get().models().queued() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  lease.reset();
  next.join();
  EXPECT_EQ(next_status, 200);
  EXPECT_EQ(s.get().models().queued(), 0u);
  EXPECT_EQ(test::post(s, "/api/generate", small).status, 200);
}

TEST_F(ServerStateTest, ARequestTimeoutEndsTheReplyAsLength) {
  auto o = options();
  o.request_timeout_ms = 1;  // already over when the first token could be sampled
  TestServer s(o);
  auto r = test::post(s, "/api/generate",
                      json{{"model", "random"}, {"prompt", "Tell me a long story"}, {"stream", false},
                           {"options", {{"num_predict", 4000}, {"temperature", 0}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.js()["done_reason"], "length");
  EXPECT_LT(r.js()["eval_count"].get<int>(), 4000);
  // Without the timeout the same request is not cut short by the clock.
  TestServer unlimited(options());
  auto full = test::post(unlimited, "/api/generate",
                         json{{"model", "random"}, {"prompt", "Tell me a long story"}, {"stream", false},
                              {"options", {{"num_predict", 40}, {"temperature", 0}}}});
  ASSERT_EQ(full.status, 200) << full.body;
  EXPECT_GT(full.js()["eval_count"].get<int>(), r.js()["eval_count"].get<int>());
}

TEST_F(ServerStateTest, AliasesFromModelsJsonAndOllamaNames) {
  std::ofstream(models_.file("models.json")) << R"({"aliases": {"bees:small": "random", "other": "random2.gguf", "ghost": "missing"}})";
  TestServer s(options());
  auto tags = test::get(s, "/api/tags").js();
  std::vector<std::string> names;
  for (const auto& m : tags["models"]) names.push_back(m["name"]);
  EXPECT_NE(std::find(names.begin(), names.end(), "bees:small"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "other:latest"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "ghost:latest"), names.end()) << "an alias to a missing file is listed";
  for (const char* name : {"bees:small", "other", "other:latest", "RANDOM", "random:latest"}) {
    auto r = test::post(s, "/api/chat",
                        json{{"model", name}, {"stream", false}, {"options", {{"num_predict", 1}}},
                             {"messages", json::array({json{{"role", "user"}, {"content", "hi"}}})}});
    EXPECT_EQ(r.status, 200) << name << ": " << r.body;
    EXPECT_EQ(r.js()["model"], name);
  }
  EXPECT_EQ(test::post(s, "/api/chat", json{{"model", "bees"}, {"messages", json::array()}}).status, 404)
      << "bees means bees:latest, which is not bees:small";
}

TEST_F(ServerStateTest, AMalformedModelsJsonStopsTheServerWithAClearError) {
  std::ofstream(models_.file("models.json")) << R"({"aliases": {"x": 5}})";
  try {
    TestServer s(options());
    FAIL() << "the server started with a malformed models.json";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("models.json"), std::string::npos) << e.what();
  }
}

TEST_F(ServerStateTest, KeepAliveExpiryUnloadsTheModel) {
  TestServer s(options());
  auto r = test::post(s, "/api/generate", json{{"model", "random"}, {"keep_alive", 0.3}});
  ASSERT_EQ(r.js()["done_reason"], "load");
  EXPECT_EQ(test::get(s, "/api/ps").js()["models"].size(), 1u);
  bool unloaded = false;
  for (int i = 0; i < 200 && !unloaded; ++i) {  // the reaper looks twice a second
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    unloaded = test::get(s, "/api/ps").js()["models"].empty();
  }
  EXPECT_TRUE(unloaded);
}

TEST_F(ServerStateTest, ModelsThatDoNotFitTheBudgetAreRefusedBeforeLoading) {
  auto o = options();
  const uint64_t model_bytes = std::filesystem::file_size(models_.file("random.gguf"));
  o.models.max_memory = model_bytes + (1u << 20);
  o.cache.memory_limit = 1u << 20;  // leaves less than the file for the model
  TestServer s(o);
  auto r = test::post(s, "/api/chat",
                      json{{"model", "random"}, {"messages", json::array({json{{"role", "user"}, {"content", "hi"}}})}, {"stream", false}});
  EXPECT_EQ(r.status, 500);
  const std::string error = r.js()["error"];
  EXPECT_NE(error.find("model requires more system memory"), std::string::npos) << error;
  EXPECT_NE(error.find("--max-memory"), std::string::npos) << error;
  EXPECT_TRUE(test::get(s, "/api/ps").js()["models"].empty());
  EXPECT_EQ(test::get(s, "/").status, 200);
}

}  // namespace
}  // namespace flatline
