// The state cache's sharing: KV pages shared between the snapshots of one
// conversation counted once, message-boundary snapshots, the regenerated
// reply that extends the earlier one, one state directory shared by several
// servers (replicas), and hybrids over HTTP with and without a restart.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "models/state/kv_part.h"
#include "runtime/chat_service.h"
#include "runtime/state_cache.h"
#include "server_raw_support.h"
#include "server_test_support.h"
#include "server_turns_support.h"
#include "util/log.h"

namespace flatline {
namespace {

namespace fs = std::filesystem;
using test::json;
using test::TempDir;
using test::TestServer;

using test::greedy;
using test::load;

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& f : fs::directory_iterator(dir))
    if (f.is_regular_file()) out.push_back(f.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

json chat_body(const std::string& model, const std::vector<std::pair<std::string, std::string>>& history, int n) {
  json messages = json::array();
  for (const auto& [role, content] : history) messages.push_back(json{{"role", role}, {"content", content}});
  return json{{"model", model},
              {"messages", messages},
              {"stream", false},
              {"options", {{"temperature", 0}, {"num_predict", n}}}};
}

// A copy of a ../shared fixture with a chat template that renders every
// message verbatim ("role:content\n"), as real models' templates do between
// their role markers. The random fixtures have no template, and the plain
// fallback writes "Assistant: " + the trimmed reply, which never extends
// what the model generated after "Assistant:", so no reply could be reused.
std::string with_verbatim_template(const std::string& fixture, const std::string& dst) {
  test::copy_gguf(fixture, dst, [](gguf::Writer&, const std::string& key) { return key == "tokenizer.chat_template"; },
                  [](gguf::Writer& w) {
                    w.add_string("tokenizer.chat_template",
                                 "{% for m in messages %}{{ m['role'] }}:{{ m['content'] }}\n{% endfor %}"
                                 "{% if add_generation_prompt %}assistant:{% endif %}");
                  });
  return dst;
}

// ---------------------------------------------------------------------------
// Regenerate: the earlier reply a prefix of the new one

TEST(StateSharing, ARegeneratedReplyThatExtendsTheEarlierOneStillStartsFromThePrompt) {
  // Before the fix: prompt_eval_count 29, 0, 29. The second reply (greedy,
  // longer) extends the first, so the first looked like the step before it
  // and the prompt end was dropped as superseded; the third request had to
  // process the whole prompt again.
  set_log_level(LogLevel::Warn);
  TempDir models("sharing-regen-models");
  test::write_random_rwkv7(models.file("random.gguf"), 1);
  TestServer s(test::test_server_options(models.path()));
  const std::vector<std::pair<std::string, std::string>> history = {{"user", "Tell me about bees."}};
  const int64_t prompt_tokens = static_cast<int64_t>(test::rwkv_render(history).size());  // one token per byte
  std::vector<int64_t> evals;
  std::vector<std::string> replies;
  for (int n : {3, 6, 6}) {
    auto r = test::post(s, "/api/chat", chat_body("random", history, n));
    ASSERT_EQ(r.status, 200) << r.body;
    evals.push_back(r.js()["prompt_eval_count"]);
    replies.push_back(r.js()["message"]["content"]);
  }
  ASSERT_EQ(replies[1].compare(0, replies[0].size(), replies[0]), 0) << "the test needs the first reply to be a prefix";
  EXPECT_EQ(evals, (std::vector<int64_t>{prompt_tokens, 0, 0}));
  EXPECT_EQ(replies[2], replies[1]);
  set_log_level(LogLevel::Info);
}

// ---------------------------------------------------------------------------
// Shared KV pages, on a hybrid (attention KV + Mamba-2 recurrent parts)

TEST(StateSharing, SnapshotsOfOneHybridConversationShareTheirKvPages) {
  REQUIRE_SHARED_MODEL(fixture, "random/granitehybrid.gguf");
  TempDir dir("sharing-kv");
  auto model = load(with_verbatim_template(fixture, dir.file("granitehybrid.gguf")));
  Engine engine(*model);
  StateCache cache(StateCacheOptions{});
  ChatService service(cache);
  std::vector<ChatMessage> messages;
  TurnResult last;
  int64_t previous_prompt_end = 0;
  for (size_t turn = 0; turn < test::kBeekeepingQuestions.size(); ++turn) {
    messages.push_back({"user", test::kBeekeepingQuestions[turn]});
    TurnResult r = service.chat(engine, 2048, messages, greedy(12));
    if (turn > 0) {
      // Resumed past the previous prompt's end, from the previous reply.
      EXPECT_GT(r.cached_tokens, previous_prompt_end) << "turn " << turn + 1;
    }
    previous_prompt_end = r.cached_tokens + r.generation.prompt_eval_count;
    messages.push_back({"assistant", r.generation.text});
    last = std::move(r);
  }
  const StateCacheStats st = cache.stats();
  std::optional<Conversation> newest = cache.lookup(*model, 2048, ChatService::render(*model, messages));
  ASSERT_TRUE(newest);
  const StateMemory final_state = newest->state->memory();
  // The KV of every snapshot is a prefix of the newest one's: counted once
  // it is one KV plus the partly written last page each older snapshot
  // kept (copied when the conversation wrote on into it), while each
  // snapshot holding its own copy would be several.
  const uint64_t page_bytes = KvPart::kPageRows * model->traits().state_bytes_per_token;
  EXPECT_GE(st.entries, 2u);
  EXPECT_GT(st.kv_shared_bytes, 0u);
  EXPECT_LT(st.kv_bytes, st.kv_unshared_bytes_equivalent);
  EXPECT_LE(st.kv_bytes, final_state.kv + (st.entries - 1) * page_bytes);
  EXPECT_EQ(st.bytes, st.fixed_bytes + st.kv_bytes);
  // Issue #11: the cache's peak for one 10-turn conversation stays below
  // twice the conversation's final state.
  EXPECT_LT(st.peak_bytes, 2 * newest->memory_bytes()) << "peak " << st.peak_bytes << ", final state "
                                                        << newest->memory_bytes();
}

// ---------------------------------------------------------------------------
// Message boundaries and rewritten history

class BoundaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_random_rwkv7(dir_.file("r.gguf"), 5);
    model_ = load(dir_.file("r.gguf"));
  }
  TempDir dir_{"sharing-boundary"};
  std::unique_ptr<LoadedModel> model_;
};

TEST_F(BoundaryTest, AnEditedEarlierMessageResumesFromTheBoundaryBeforeIt) {
  Engine engine(*model_);
  StateCache cache(StateCacheOptions{});
  ChatService service(cache);
  // A history the server has never seen (say, imported from elsewhere).
  std::vector<ChatMessage> messages = {{"user", "First question about hives."},
                                       {"assistant", "A first answer, long enough to matter."},
                                       {"user", "Second question, about swarms."},
                                       {"assistant", "A second answer that the user will edit."},
                                       {"user", "Third question."}};
  TurnResult first = service.chat(engine, 0, messages, greedy(4));
  EXPECT_EQ(first.cached_tokens, 0);
  EXPECT_GT(cache.stats().boundary_entries, 0u);

  messages[3].content = "An edited second answer.";
  const std::string prompt = ChatService::render(*model_, messages);
  const std::string head = model_->chat_template().render({messages.begin(), messages.begin() + 3}, false);
  ASSERT_EQ(prompt.compare(0, head.size(), head), 0);
  TurnResult edited = service.chat(engine, 0, messages, greedy(4));
  // One token per byte: the state after messages[0..2] was reused.
  EXPECT_EQ(edited.cached_tokens, static_cast<int64_t>(head.size()));
  EXPECT_EQ(edited.generation.prompt_eval_count, static_cast<int64_t>(prompt.size() - head.size()));

  // The same reply as with nothing cached.
  StateCache empty(StateCacheOptions{});
  ChatService fresh(empty);
  Engine other(*model_);
  EXPECT_EQ(fresh.chat(other, 0, messages, greedy(4)).generation.text, edited.generation.text);
}

TEST_F(BoundaryTest, AReplyResentRewrittenResumesFromThePromptEnd) {
  // A client that strips the reasoning from replies before resending them:
  // the reply's snapshot no longer matches, the prompt end before it does.
  Engine engine(*model_);
  StateCache cache(StateCacheOptions{});
  ChatService service(cache);
  std::vector<ChatMessage> messages = {{"user", "What do bees eat?"}};
  const std::string prompt1 = ChatService::render(*model_, messages);
  service.chat(engine, 0, messages, greedy(8));
  messages.push_back({"assistant", "Nectar."});  // not what the model said
  messages.push_back({"user", "And in winter?"});
  const std::string prompt2 = ChatService::render(*model_, messages);
  TurnResult r = service.chat(engine, 0, messages, greedy(8));
  EXPECT_EQ(r.cached_tokens, static_cast<int64_t>(prompt1.size()));
  EXPECT_EQ(r.generation.prompt_eval_count, static_cast<int64_t>(prompt2.size() - prompt1.size()));
}

// ---------------------------------------------------------------------------
// One state directory, several servers

class SharedDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_level(LogLevel::Warn);
    test::write_random_rwkv7(dir_.file("a.gguf"), 11);
    model_ = load(dir_.file("a.gguf"));
    options_.directory = states_.path();
  }
  void TearDown() override { set_log_level(LogLevel::Info); }

  Conversation conversation(const std::string& text, int n = 5) {
    Engine engine(*model_);
    Conversation c = engine.new_conversation(0);
    GenerateOptions g;
    g.sampling.temperature = 0;
    g.num_predict = n;
    engine.generate(c, text, g);
    return c;
  }
  std::vector<std::string> state_files() const {
    std::vector<std::string> out;
    for (const std::string& f : files_in(states_.path()))
      if (parse_state_file_name(f)) out.push_back(f);
    return out;
  }

  TempDir dir_{"sharing-dir-model"};
  TempDir states_{"sharing-dir-states"};
  std::unique_ptr<LoadedModel> model_;
  StateCacheOptions options_;
};

TEST_F(SharedDirTest, AReplicaFindsTheLongestPrefixAnotherOneWrote) {
  StateCache a(options_), b(options_);  // both started on an empty directory
  Engine engine(*model_);
  Conversation prompt_end = engine.new_conversation(0);
  engine.feed_prompt(prompt_end, "User: where do bees sleep?\n\nAssistant:");
  a.store(*model_, prompt_end.clone(), true, SnapshotKind::PromptEnd);
  Conversation reply = conversation(prompt_end.fed_text, 6);
  a.store(*model_, reply.clone(), true, SnapshotKind::ReplyEnd);
  EXPECT_EQ(state_files().size(), 2u);

  const std::string next = reply.fed_text + "\n\nUser: and ants?\n\nAssistant:";
  std::optional<Conversation> hit = b.lookup(*model_, 0, next);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->fed_text, reply.fed_text) << "the longest stored prefix";
  EXPECT_EQ(b.stats().disk_hits, 1u);
  EXPECT_EQ(b.stats().files_read, 1u);
  GenerateOptions g;
  g.sampling.temperature = 0;
  g.num_predict = 8;
  g.use_template_stops = false;
  Conversation twin = reply.clone();
  EXPECT_EQ(engine.generate(*hit, next, g).generated, engine.generate(twin, next, g).generated);
  // A prompt that matches only the prompt end gets that one.
  EXPECT_EQ(b.lookup(*model_, 0, prompt_end.fed_text + " Elsewhere")->fed_text, prompt_end.fed_text);
}

TEST_F(SharedDirTest, StartupLeavesOtherServersTempFilesAlone) {
  // A temp file of a live process (this one), one of a finished process and
  // one of another machine, as another server's write in progress leaves
  // them: "<state file>.tmp.<host>.<pid>.<n>".
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::string h(host[0] ? host : "localhost");
  std::replace(h.begin(), h.end(), '.', '_');
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  const std::string base = states_.file("0123456789abcdef-0-5-0123456789abcdef-r.flstate.tmp.");
  const std::string live = base + h + "." + std::to_string(::getpid()) + ".0";
  const std::string dead = base + h + "." + std::to_string(child) + ".0";
  const std::string remote = base + "another_host.4242.0";
  const std::string remote_old = base + "another_host.4243.0";
  for (const std::string& p : {live, dead, remote, remote_old}) std::ofstream(p) << "partial";
  fs::last_write_time(remote_old, fs::file_time_type::clock::now() - std::chrono::hours(2));

  StateCache cache(options_);
  EXPECT_TRUE(fs::exists(live)) << "a live writer's temp file was deleted";
  EXPECT_TRUE(fs::exists(remote)) << "another machine's recent temp file was deleted";
  EXPECT_FALSE(fs::exists(dead)) << "a finished process's temp file was kept";
  EXPECT_FALSE(fs::exists(remote_old)) << "a temp file older than any write was kept";
  EXPECT_EQ(cache.stats().rejected_files, 0u);
}

TEST_F(SharedDirTest, TwoReplicasWritingTheSameSnapshotLeaveOneGoodFile) {
  Conversation c = conversation("User: the same question\n\nAssistant:");
  StateCache a(options_), b(options_);
  for (int round = 0; round < 20; ++round) {
    std::thread ta([&] { a.store(*model_, c.clone(), true, SnapshotKind::ReplyEnd); });
    std::thread tb([&] { b.store(*model_, c.clone(), true, SnapshotKind::ReplyEnd); });
    ta.join();
    tb.join();
  }
  a.flush();
  b.flush();
  EXPECT_EQ(files_in(states_.path()), (std::vector<std::string>{state_file_name(model_->fingerprint(), 0, c.fed_text,
                                                                                SnapshotKind::ReplyEnd)}))
      << "exactly the state file, no temp files";
  StateCache third(options_);
  std::optional<Conversation> hit = third.lookup(*model_, 0, c.fed_text);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->tokens, c.tokens);
  EXPECT_EQ(third.stats().rejected_files, 0u);
}

TEST_F(SharedDirTest, TheDirectoryLimitCountsEveryReplicasFilesAndDropsTheOldestFirst) {
  std::vector<Conversation> convs;
  for (const char* q : {"User: one\n\nAssistant:", "User: two\n\nAssistant:", "User: three\n\nAssistant:"})
    convs.push_back(conversation(q));
  const uint64_t file_bytes = encode_state_file(convs[0], model_->fingerprint()).size();
  options_.disk_limit = file_bytes * 2 + file_bytes / 2;  // room for two
  StateCache a(options_), b(options_);
  a.store(*model_, convs[0].clone(), true);
  const std::string first = state_files().at(0);
  fs::last_write_time(states_.file(first), fs::file_time_type::clock::now() - std::chrono::minutes(10));
  b.store(*model_, convs[1].clone(), true);
  a.store(*model_, convs[2].clone(), true);  // a has to count b's file to see the directory is full
  const std::vector<std::string> left = state_files();
  EXPECT_EQ(left.size(), 2u);
  EXPECT_EQ(std::count(left.begin(), left.end(), first), 0) << "the oldest file should have gone";
  uint64_t total = 0;
  for (const std::string& f : left) total += fs::file_size(states_.file(f));
  EXPECT_LE(total, options_.disk_limit);
  EXPECT_EQ(a.stats().files_deleted, 1u);
}

TEST_F(SharedDirTest, ABadFileWithAGoodNameIsMovedAsideAndLogged) {
  Conversation c = conversation("User: bad file\n\nAssistant:");
  const std::string name = state_file_name(model_->fingerprint(), 0, c.fed_text, SnapshotKind::ReplyEnd);
  std::ofstream(states_.file(name)) << "FLSTATE but nothing else";
  StateCache cache(options_);
  testing::internal::CaptureStderr();
  EXPECT_FALSE(cache.lookup(*model_, 0, c.fed_text + " more"));
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("rejected"), std::string::npos) << log;
  EXPECT_NE(log.find(name), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(states_.file(name)));
  EXPECT_TRUE(fs::exists(states_.file("rejected/" + name))) << "moved aside for inspection";
  EXPECT_EQ(cache.stats().rejected_files, 1u);
  // The next lookup does not try it again.
  EXPECT_FALSE(cache.lookup(*model_, 0, c.fed_text + " more"));
  EXPECT_EQ(cache.stats().rejected_files, 1u);
}

// ---------------------------------------------------------------------------
// Hybrids and SSMs over HTTP: ten turns, with and without restarts

struct HttpTurn {
  int64_t prompt_eval_count = 0;
  int64_t eval_count = 0;
  std::string reply;
};

// Ten turns resending the whole history; with `restart_each_turn` every turn
// goes to a freshly started server on the same state directory.
std::vector<HttpTurn> ten_http_turns(const std::string& models_dir, const std::string& states_dir,
                                     const std::string& model, bool restart_each_turn) {
  auto options = test::test_server_options(models_dir);
  options.cache.directory = states_dir;
  std::unique_ptr<TestServer> s = std::make_unique<TestServer>(options);
  std::vector<std::pair<std::string, std::string>> history;
  std::vector<HttpTurn> out;
  for (const std::string& q : test::kBeekeepingQuestions) {
    if (restart_each_turn && !out.empty()) {
      s.reset();
      s = std::make_unique<TestServer>(options);
    }
    history.push_back({"user", q});
    auto r = test::post(*s, "/api/chat", chat_body(model, history, 8));
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) break;
    HttpTurn t;
    t.prompt_eval_count = r.js()["prompt_eval_count"];
    t.eval_count = r.js()["eval_count"];
    t.reply = r.js()["message"]["content"];
    history.push_back({"assistant", t.reply});
    out.push_back(t);
  }
  return out;
}

// How many tokens each turn's new text takes: the whole prompt's tokens
// minus those of the previous turn's prompt and reply (what the reply-end
// state held, its last sampled token still pending). A reply that is not
// valid UTF-8 (random weights emit stray byte tokens) reaches the client
// with U+FFFD in their place, so the client resends other text than the
// model wrote: then only the previous prompt is reusable.

std::vector<int64_t> new_tokens_per_turn(const std::string& model_path, const std::vector<HttpTurn>& turns) {
  auto model = load(model_path);
  Engine engine(*model);
  std::vector<ChatMessage> messages;
  std::vector<int64_t> out;
  int64_t before = 0;
  for (size_t i = 0; i < turns.size(); ++i) {
    messages.push_back({"user", test::kBeekeepingQuestions[i]});
    const int64_t full = engine.count_prompt_tokens(ChatService::render(*model, messages));
    out.push_back(full - before);
    const bool resent_as_generated = turns[i].reply.find("\xEF\xBF\xBD") == std::string::npos;
    before = resent_as_generated ? full + turns[i].eval_count - 1 : full;
    messages.push_back({"assistant", turns[i].reply});
  }
  return out;
}

class HybridHttpTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HybridHttpTest, TenTurnsProcessOnlyTheNewTokensWithAndWithoutRestarts) {
  const std::string file = "random/" + GetParam() + ".gguf";
  REQUIRE_SHARED_MODEL(path, file);
  set_log_level(LogLevel::Warn);
  TempDir models("hybrid-http-models");
  with_verbatim_template(path, models.file(GetParam() + ".gguf"));
  TempDir states_a("hybrid-http-states-a"), states_b("hybrid-http-states-b");
  const std::vector<HttpTurn> steady = ten_http_turns(models.path(), states_a.path(), GetParam(), false);
  const std::vector<HttpTurn> restarted = ten_http_turns(models.path(), states_b.path(), GetParam(), true);
  ASSERT_EQ(steady.size(), test::kBeekeepingQuestions.size());
  ASSERT_EQ(restarted.size(), steady.size());
  const std::vector<int64_t> fresh = new_tokens_per_turn(models.file(GetParam() + ".gguf"), steady);
  for (size_t i = 0; i < steady.size(); ++i) {
    // Each turn evaluates its new text; a tokenizer may join a token or two
    // across the seam between the cached text and the new one.
    EXPECT_NEAR(steady[i].prompt_eval_count, fresh[i], i == 0 ? 0 : 2) << GetParam() << " turn " << i + 1;
    EXPECT_EQ(restarted[i].prompt_eval_count, steady[i].prompt_eval_count) << GetParam() << " turn " << i + 1
                                                                            << " after a restart";
    EXPECT_EQ(restarted[i].reply, steady[i].reply) << GetParam() << " turn " << i + 1;
  }
  set_log_level(LogLevel::Info);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HybridHttpTest, ::testing::Values("granitehybrid", "mamba2"));

TEST(StateSharing, ApiPsShowsTheStateAsFixedAndKvParts) {
  REQUIRE_SHARED_MODEL(path, "random/granitehybrid.gguf");
  set_log_level(LogLevel::Warn);
  TempDir models("ps-split-models");
  fs::copy_file(path, models.file("granitehybrid.gguf"));
  TestServer s(test::test_server_options(models.path()));
  auto chat = test::post(s, "/api/chat", chat_body("granitehybrid", {{"user", "hi"}}, 2));
  ASSERT_EQ(chat.status, 200) << chat.body;
  auto ps = test::get(s, "/api/ps");
  ASSERT_EQ(ps.status, 200);
  const json m = ps.js()["models"].at(0);
  const json st = m["flatline_state"];
  // The fixture (README.md): one attention layer of 2 KV heads of 32 dims,
  // K and V in f16; three Mamba-2 layers with d_inner 256 (8 heads of 32),
  // d_state 16, n_group 2, d_conv 4, in f32.
  EXPECT_EQ(st["kv_bytes_per_token"].get<uint64_t>(), 1u * 2 * (32 + 32) * 2);
  const uint64_t recurrent = 3 * 4 * (8 * 32 * 16 + (4 - 1) * (256 + 2 * 2 * 16));
  EXPECT_GE(st["fixed_bytes"].get<uint64_t>(), recurrent);
  EXPECT_LT(st["fixed_bytes"].get<uint64_t>(), recurrent + 4096);
  const int64_t n_ctx = m["context_length"];
  EXPECT_GE(st["kv_bytes"].get<uint64_t>(), static_cast<uint64_t>(n_ctx) * 256);
  EXPECT_EQ(st["bytes"].get<uint64_t>(), st["fixed_bytes"].get<uint64_t>() + st["kv_bytes"].get<uint64_t>());
  EXPECT_GT(ps.js()["flatline_state_cache"]["entries"].get<uint64_t>(), 0u);
  // The memory guard reserves the file, the workspace and this state, its
  // KV part for the whole context.
  EXPECT_GE(m["size"].get<uint64_t>(), fs::file_size(path) + st["bytes"].get<uint64_t>());
  set_log_level(LogLevel::Info);
}

}  // namespace
}  // namespace flatline
