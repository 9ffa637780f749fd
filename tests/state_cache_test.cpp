// The conversation-state cache and its files: round trips, rejection of
// truncated / corrupt / foreign files, LRU eviction, persistence, and the
// 10-turn conversation through the shared chat service with the exact number
// of prompt tokens evaluated per turn (predicted from the RWKV chat format,
// see server_turns_support.h).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "runtime/chat_service.h"
#include "runtime/state_cache.h"
#include "server_test_support.h"
#include "server_turns_support.h"
#include "util/error.h"
#include "util/log.h"

namespace flatline {
namespace {

using test::TempDir;

using test::greedy;
using test::load;

// Greedy continuation of `conv` by `n` tokens.
std::vector<int32_t> continue_greedy(Engine& engine, Conversation& conv, const std::string& more, int n) {
  GenerateOptions g;
  g.sampling.temperature = 0;
  g.num_predict = n;
  g.use_template_stops = false;
  return engine.generate(conv, conv.fed_text + more, g).generated;
}

class StateCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_random_rwkv7(dir_.file("a.gguf"), 11);
    test::write_random_rwkv7(dir_.file("b.gguf"), 12);
    model_a_ = load(dir_.file("a.gguf"));
    model_b_ = load(dir_.file("b.gguf"));
  }

  // A conversation that has read `text` and generated a few tokens.
  Conversation conversation(LoadedModel& model, const std::string& text) {
    Engine engine(model);
    Conversation c = engine.new_conversation(0);
    GenerateOptions g;
    g.sampling.temperature = 0;
    g.num_predict = 5;
    engine.generate(c, text, g);
    return c;
  }

  TempDir dir_{"state-cache"};
  std::unique_ptr<LoadedModel> model_a_, model_b_;
};

TEST_F(StateCacheTest, FileRoundTripContinuesExactlyLikeTheOriginal) {
  Conversation original = conversation(*model_a_, "User: hello there\n\nAssistant:");
  const std::string path = dir_.file("conv.flstate");
  save_state_file(path, original, model_a_->fingerprint());
  Conversation restored = load_state_file(path, *model_a_);
  EXPECT_EQ(restored.fed_text, original.fed_text);
  EXPECT_EQ(restored.tokens, original.tokens);
  EXPECT_EQ(restored.pending_tokens, original.pending_tokens);
  EXPECT_EQ(restored.pending_text, original.pending_text);
  EXPECT_EQ(restored.last_logits, original.last_logits);
  EXPECT_EQ(restored.state->n_past(), original.state->n_past());

  Engine engine(*model_a_);
  Conversation twin = original.clone();
  EXPECT_EQ(continue_greedy(engine, restored, " more", 20), continue_greedy(engine, twin, " more", 20));

  StateFileIndex index = read_state_file_index(path);
  EXPECT_EQ(index.fingerprint, model_a_->fingerprint());
  EXPECT_EQ(index.fed_text, original.fed_text);
  EXPECT_EQ(index.n_tokens, original.tokens.size());
  EXPECT_EQ(index.file_bytes, std::filesystem::file_size(path));
}

TEST_F(StateCacheTest, TruncatedFilesAreRejectedAtEveryLength) {
  Conversation c = conversation(*model_a_, "User: truncate me\n\nAssistant:");
  std::vector<uint8_t> bytes = encode_state_file(c, model_a_->fingerprint());
  for (size_t keep : {size_t{0}, size_t{7}, size_t{79}, size_t{80}, bytes.size() / 2, bytes.size() - 1}) {
    const std::string path = dir_.file("cut" + std::to_string(keep) + ".flstate");
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), keep);
    EXPECT_THROW(load_state_file(path, *model_a_), Error) << keep;
    try {
      read_state_file_index(path);
      ADD_FAILURE() << "a file cut to " << keep << " bytes was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }
  }
  // One byte too many is as wrong as one too few.
  bytes.push_back(0);
  EXPECT_THROW(decode_state_file(bytes, *model_a_), Error);
}

TEST_F(StateCacheTest, CorruptBytesAnywhereAreRejected) {
  Conversation c = conversation(*model_a_, "User: corrupt me\n\nAssistant:");
  const std::vector<uint8_t> good = encode_state_file(c, model_a_->fingerprint());
  ASSERT_NO_THROW(decode_state_file(good, *model_a_));
  // Header field, fingerprint, fed text, tokens, logits, state payload, checksum.
  const size_t fp = 80, text = fp + model_a_->fingerprint().size();
  for (size_t at : {size_t{3}, size_t{9}, size_t{30}, fp + 1, text + 2, text + c.fed_text.size() + 1,
                    good.size() / 2, good.size() - 100, good.size() - 1}) {
    std::vector<uint8_t> bad = good;
    bad[at] ^= 0x40;
    EXPECT_THROW(decode_state_file(bad, *model_a_), Error) << "flipped byte " << at;
  }
  std::vector<uint8_t> bad_magic = good;
  bad_magic[0] = 'X';
  try {
    decode_state_file(bad_magic, *model_a_);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("magic"), std::string::npos) << e.what();
  }
  std::vector<uint8_t> future = good;
  future[8] = 99;  // format version
  try {
    decode_state_file(future, *model_a_);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("version 99"), std::string::npos) << e.what();
  }
}

TEST_F(StateCacheTest, StatesOfAnotherModelAreRejected) {
  ASSERT_NE(model_a_->fingerprint(), model_b_->fingerprint());
  Conversation c = conversation(*model_a_, "User: whose state?\n\nAssistant:");
  const std::string path = dir_.file("a.flstate");
  save_state_file(path, c, model_a_->fingerprint());
  try {
    load_state_file(path, *model_b_);
    FAIL() << "model b loaded model a's state";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another model"), std::string::npos) << e.what();
  }
}

TEST_F(StateCacheTest, LongestMatchingSnapshotOfTheSameModelWins) {
  StateCache cache(StateCacheOptions{});
  const std::string base = "User: one\n\nAssistant:";
  Conversation short_conv = conversation(*model_a_, base);
  Conversation long_conv = conversation(*model_a_, base + " x\n\nUser: two\n\nAssistant:");
  const std::string short_text = short_conv.fed_text, long_text = long_conv.fed_text;
  cache.store(*model_a_, std::move(short_conv), false);
  cache.store(*model_a_, std::move(long_conv), false);

  auto hit = cache.lookup(*model_a_, 0, long_text + " and more");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->fed_text, long_text);
  hit = cache.lookup(*model_a_, 0, short_text + " something else");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->fed_text, short_text);
  EXPECT_FALSE(cache.lookup(*model_a_, 0, "User: unrelated"));
  EXPECT_FALSE(cache.lookup(*model_b_, 0, long_text + " and more")) << "a snapshot of another model was handed out";
  // The copy handed out is independent of the cached snapshot.
  hit = cache.lookup(*model_a_, 0, long_text);
  Engine engine(*model_a_);
  continue_greedy(engine, *hit, "!", 3);
  EXPECT_EQ(cache.lookup(*model_a_, 0, long_text)->fed_text, long_text);
}

TEST_F(StateCacheTest, ARecurrentConversationKeepsItsNewestReplyAndPromptHoweverLongItGets) {
  // RWKV-7 states share no pages: each snapshot costs a whole state, so
  // within the default 1.5x chain budget only the required ones stay (the
  // newest reply end and the prompt end it started from).
  StateCache cache(StateCacheOptions{});
  Engine engine(*model_a_);
  Conversation c = conversation(*model_a_, "User: one\n\nAssistant:");
  std::vector<std::string> prompts, replies;
  for (int turn = 0; turn < 6; ++turn) {
    Conversation prompt_end = c.clone();
    engine.feed_prompt(prompt_end, c.fed_text + "\n\nUser: more\n\nAssistant:");
    prompts.push_back(prompt_end.fed_text);
    cache.store(*model_a_, prompt_end.clone(), false, SnapshotKind::PromptEnd);
    c = std::move(prompt_end);
    continue_greedy(engine, c, "", 2);
    replies.push_back(c.fed_text);
    cache.store(*model_a_, c.clone(), false, SnapshotKind::ReplyEnd);
  }
  EXPECT_EQ(cache.stats().entries, 2u);
  EXPECT_EQ(cache.stats().superseded, 10u);
  EXPECT_EQ(cache.lookup(*model_a_, 0, replies[5] + "x")->fed_text, replies[5]);
  EXPECT_EQ(cache.lookup(*model_a_, 0, prompts[5] + "y")->fed_text, prompts[5]);
  EXPECT_FALSE(cache.lookup(*model_a_, 0, replies[4] + "z"));

  // A regenerated reply to the last prompt replaces the old reply.
  Conversation branch = *cache.lookup(*model_a_, 0, prompts[5]);
  continue_greedy(engine, branch, " another reply", 2);
  ASSERT_NE(branch.fed_text.compare(0, replies[5].size(), replies[5]), 0);
  cache.store(*model_a_, branch.clone(), false, SnapshotKind::ReplyEnd);
  EXPECT_EQ(cache.stats().entries, 2u);
  EXPECT_EQ(cache.lookup(*model_a_, 0, replies[5] + "x")->fed_text, prompts[5]) << "the abandoned reply is gone";
  EXPECT_EQ(cache.lookup(*model_a_, 0, branch.fed_text)->fed_text, branch.fed_text);

  // A next prompt that resends the reply rewritten (say without its
  // reasoning) goes on from the prompt end and drops the unused reply too.
  Conversation rewritten = *cache.lookup(*model_a_, 0, prompts[5]);
  engine.feed_prompt(rewritten, prompts[5] + " short\n\nUser: next\n\nAssistant:");
  cache.store(*model_a_, rewritten.clone(), false, SnapshotKind::PromptEnd);
  EXPECT_EQ(cache.stats().entries, 2u);
  EXPECT_EQ(cache.lookup(*model_a_, 0, branch.fed_text)->fed_text, prompts[5]);
}

TEST_F(StateCacheTest, LeastRecentlyUsedSnapshotsAreEvictedBeyondTheBudget) {
  Conversation a = conversation(*model_a_, "User: a\n\nAssistant:");
  const uint64_t one = a.memory_bytes();
  StateCacheOptions o;
  o.memory_limit = one * 2 + one / 2;  // room for two
  StateCache cache(o);
  Conversation b = conversation(*model_a_, "User: b\n\nAssistant:");
  Conversation c = conversation(*model_a_, "User: c\n\nAssistant:");
  const std::string ta = a.fed_text, tb = b.fed_text, tc = c.fed_text;
  cache.store(*model_a_, std::move(a), false);
  cache.store(*model_a_, std::move(b), false);
  ASSERT_TRUE(cache.lookup(*model_a_, 0, ta));  // a is now the most recently used
  cache.store(*model_a_, std::move(c), false);  // evicts b
  EXPECT_TRUE(cache.lookup(*model_a_, 0, ta));
  EXPECT_FALSE(cache.lookup(*model_a_, 0, tb));
  EXPECT_TRUE(cache.lookup(*model_a_, 0, tc));
  StateCacheStats s = cache.stats();
  EXPECT_EQ(s.entries, 2u);
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_LE(s.bytes, o.memory_limit);
}

TEST_F(StateCacheTest, PersistedSnapshotsSurviveANewCacheAndBadFilesAreIgnored) {
  TempDir states("states");
  StateCacheOptions o;
  o.directory = states.path();
  Conversation c = conversation(*model_a_, "User: remember me\n\nAssistant:");
  const std::string text = c.fed_text;
  Conversation twin = c.clone();
  {
    StateCache cache(o);
    cache.store(*model_a_, std::move(c), /*persist=*/true);
    cache.flush();
    EXPECT_EQ(cache.stats().disk_entries, 1u);
  }
  // Garbage next to the good file: a truncated copy, random bytes, a
  // leftover temp file. None may be loaded; the good one must be.
  std::string good;
  for (const auto& f : std::filesystem::directory_iterator(states.path())) good = f.path().string();
  auto bytes = test::read_file(good);
  std::ofstream(states.file("cut.flstate"), std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), 100);
  std::ofstream(states.file("junk.flstate")) << "not a state";
  std::ofstream(states.file("x.flstate.tmp.123")) << "partial";

  testing::internal::CaptureStderr();
  StateCache reopened(o);
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("cut.flstate"), std::string::npos) << log;
  EXPECT_NE(log.find("junk.flstate"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(states.file("x.flstate.tmp.123")));
  EXPECT_EQ(reopened.stats().disk_entries, 1u);
  EXPECT_EQ(reopened.stats().rejected_files, 2u);

  EXPECT_FALSE(reopened.lookup(*model_b_, 0, text)) << "another model's state was handed out";
  auto hit = reopened.lookup(*model_a_, 0, text + " next");
  ASSERT_TRUE(hit);
  EXPECT_EQ(reopened.stats().disk_hits, 1u);
  Engine engine(*model_a_);
  EXPECT_EQ(continue_greedy(engine, *hit, " next", 20), continue_greedy(engine, twin, " next", 20));
}

TEST_F(StateCacheTest, ACorruptedFileFoundAtLookupIsRejectedAndLogged) {
  TempDir states("states-corrupt");
  StateCacheOptions o;
  o.directory = states.path();
  Conversation c = conversation(*model_a_, "User: flip a bit\n\nAssistant:");
  const std::string text = c.fed_text;
  StateCache(o).store(*model_a_, std::move(c), true);
  std::string path;
  for (const auto& f : std::filesystem::directory_iterator(states.path())) path = f.path().string();
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(path) - 50));
    f.put('\x7f');
  }
  StateCache cache(o);  // the index part is intact, so it is listed ...
  EXPECT_EQ(cache.stats().disk_entries, 1u);
  testing::internal::CaptureStderr();
  EXPECT_FALSE(cache.lookup(*model_a_, 0, text));  // ... but never loaded
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("checksum"), std::string::npos) << log;
  EXPECT_EQ(cache.stats().disk_entries, 0u);
}

// Ten turns through the chat service, each resending the whole history;
// each turn must evaluate exactly the text the cache cannot supply.
void check_ten_turns(const std::string& model_path, int64_t num_predict, bool require_reply_hits) {
  auto model = load(model_path);
  Engine engine(*model);
  StateCache cache(StateCacheOptions{});
  ChatService service(cache);
  test::ExpectedCache expected;
  std::vector<std::pair<std::string, std::string>> history;
  std::vector<ChatMessage> messages;
  int reply_hits = 0;
  for (size_t turn = 0; turn < test::kBeekeepingQuestions.size(); ++turn) {
    const std::string& q = test::kBeekeepingQuestions[turn];
    history.push_back({"user", q});
    messages.push_back({"user", q});
    const std::string prompt = test::rwkv_render(history);
    ASSERT_EQ(ChatService::render(*model, messages), prompt);
    bool from_reply = false;
    const int64_t want = expected.expected_eval(prompt, &from_reply);
    TurnResult r = service.chat(engine, 4096, messages, greedy(num_predict));
    EXPECT_EQ(r.generation.prompt_eval_count, want) << "turn " << turn + 1;
    EXPECT_EQ(r.generation.prompt_tokens, static_cast<int64_t>(prompt.size()));
    EXPECT_EQ(r.cached_tokens, static_cast<int64_t>(prompt.size()) - want);
    if (turn > 0 && from_reply) ++reply_hits;
    expected.after_turn(prompt, r.generation.text, done_reason_name(r.generation.done_reason));
    history.push_back({"assistant", r.generation.text});
    messages.push_back({"assistant", r.generation.text});
  }
  if (require_reply_hits) {
    EXPECT_EQ(reply_hits, 9) << "turns 2-10 should all start from the previous reply's state";
  }
}

TEST(ChatServiceTurns, RandomModelEvaluatesOnlyWhatTheCacheCannotSupply) {
  TempDir dir("turns-random");
  test::write_random_rwkv7(dir.file("r.gguf"), 5);
  check_ten_turns(dir.file("r.gguf"), 24, false);
}

TEST(ChatServiceTurns, TrainedTinyRwkvHitsThePreviousReplyEveryTurn) {
  REQUIRE_SHARED_MODEL(path, "tiny-rwkv7-834K-f32.gguf");
  check_ten_turns(path, 24, true);
}

}  // namespace
}  // namespace flatline
