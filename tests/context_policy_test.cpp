// A transformer conversation that outgrows its context: refused with a
// message saying what fits (default), or continued by dropping the oldest
// messages (drop-oldest). The process never dies for it.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>

#include "runtime/chat_service.h"
#include "runtime/state_cache.h"
#include "test_support.h"
#include "util/error.h"

namespace flatline {
namespace {

std::unique_ptr<LoadedModel> load(const std::string& path) {
  LoadOptions o;
  o.pool = std::make_shared<ThreadPool>(1);
  return LoadedModel::load(path, o);
}

TurnOptions short_replies() {
  TurnOptions t;
  t.sampling.temperature = 0;
  t.num_predict = 12;
  return t;
}

TEST(ContextPolicy, RefuseSaysHowManyTokensFitAndLeavesTheServiceUsable) {
  REQUIRE_SHARED_MODEL(path, "stories260K/stories260K.gguf");
  auto lm = load(path);
  Engine engine(*lm);
  StateCache cache(StateCacheOptions{});
  ChatService service(cache);
  const int64_t n_ctx = 64;
  std::vector<ChatMessage> messages;
  int turns_done = 0;
  std::string error;
  for (int i = 0; i < 10 && error.empty(); ++i) {
    messages.push_back({"user", "Once upon a time there was a little dog named Max."});
    try {
      PreparedTurn p = service.prepare_chat(engine, n_ctx, messages, ContextPolicy::Refuse);
      TurnResult r = service.finish(engine, std::move(p), short_replies());
      messages.push_back({"assistant", r.generation.text});
      ++turns_done;
    } catch (const ContextOverflowError& e) {
      error = e.what();
    }
  }
  EXPECT_GE(turns_done, 1);
  ASSERT_FALSE(error.empty()) << "ten turns should not fit in 64 tokens";
  EXPECT_NE(error.find("the context holds 64"), std::string::npos) << error;
  // The service still answers a conversation that fits.
  PreparedTurn p = service.prepare_chat(engine, n_ctx, {{"user", "Hi."}}, ContextPolicy::Refuse);
  EXPECT_GT(p.prompt_eval_count, 0);
}

TEST(ContextPolicy, DropOldestKeepsTheConversationGoing) {
  REQUIRE_SHARED_MODEL(path, "stories260K/stories260K.gguf");
  auto lm = load(path);
  Engine engine(*lm);
  StateCache cache(StateCacheOptions{});
  ChatService service(cache);
  const int64_t n_ctx = 64;
  std::vector<ChatMessage> messages = {{"system", "Tell stories."}};
  const char* names[] = {"Max", "Lily", "Tom", "Sue", "Ben", "Amy", "Sam", "Tim"};
  int total_dropped = 0;
  for (int i = 0; i < 8; ++i) {
    messages.push_back({"user", std::string("Once upon a time there was a little dog named ") + names[i] + "."});
    int dropped = 0;
    PreparedTurn p = service.prepare_chat(engine, n_ctx, messages, ContextPolicy::DropOldest, &dropped,
                                          short_replies().num_predict);
    EXPECT_LE(p.conv.state->n_past(), n_ctx);
    // What was dropped leaves room for the whole reply (num_predict 12).
    if (dropped > 0) {
      EXPECT_LE(p.conv.state->n_past() + 12, n_ctx);
    }
    // A shortened history no longer extends the last snapshot: what follows
    // the longest cached prefix is processed again.
    if (dropped > 0) {
      EXPECT_GT(p.prompt_eval_count, 12);
    }
    total_dropped += dropped;
    TurnResult r = service.finish(engine, std::move(p), short_replies());
    messages.push_back({"assistant", r.generation.text});
  }
  EXPECT_GT(total_dropped, 0);
  EXPECT_EQ(ChatService::reply_reserve(64, 12), 12);
  EXPECT_EQ(ChatService::reply_reserve(64, -1), 16);   // a quarter when num_predict is unset
  EXPECT_EQ(ChatService::reply_reserve(64, 500), 32);  // at most half
  EXPECT_EQ(ChatService::reply_reserve(0, 12), 0);     // recurrent: no context
  // A single message longer than the context is still refused.
  std::string huge;
  for (int i = 0; i < 40; ++i) huge += "Max ran and ran. ";
  EXPECT_THROW(service.prepare_chat(engine, n_ctx, {{"user", huge}}, ContextPolicy::DropOldest), ContextOverflowError);
}

TEST(ContextPolicy, BenchTurnsEndsTheTurnThatDoesNotFitAndExitsNormally) {
  REQUIRE_SHARED_MODEL(path, "stories260K/stories260K.gguf");
  std::string cmd = test::flatline_binary() + " bench turns " + path + " -c 96 -n 16 -t 1 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_NE(out.find("the context holds 96"), std::string::npos) << out;
}

}  // namespace
}  // namespace flatline
