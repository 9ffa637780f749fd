// The state cache must be token-exact: over a conversation, the tokens fed
// into the state (cached prefix + each turn's continuation) equal the
// tokenization of the whole rendered history, for every tokenizer kind.
// The truth is the tokenizer run once over the whole text (whose ids are
// themselves checked against llama.cpp / the reference tokenizers in the
// tokenizer tests).
#include <gtest/gtest.h>

#include "gguf/gguf.h"
#include "runtime/chat_service.h"
#include "runtime/state_cache.h"
#include "test_support.h"

namespace flatline {
namespace {

const char* kQuestions[] = {"Who is Lily?", "What did she find?", "Why was it red?",
                            "Where did they go?", "What happened next?", "How did it end?"};
const char* kAnswers[] = {"Lily was a little girl.", "She found a big red ball in the park.",
                          "It was red because her mom painted it.", "They went to the garden to play.",
                          "They saw a bird and it sang a song.", "They were happy and went home."};

// Six turns with the client's own assistant texts: each prompt extends the
// previous prompt's snapshot, so everything after turn 1 is a continuation.
void expect_token_exact(const std::string& path) {
  LoadOptions o;
  o.pool = std::make_shared<ThreadPool>(1);
  auto lm = LoadedModel::load(path, o);
  Engine engine(*lm);
  StateCache cache(StateCacheOptions{});
  ChatService service(cache);
  std::vector<ChatMessage> messages;
  for (int turn = 0; turn < 6; ++turn) {
    messages.push_back({"user", kQuestions[turn]});
    PreparedTurn p = service.prepare_chat(engine, 2048, messages, ContextPolicy::Refuse);
    const std::string prompt = ChatService::render(*lm, messages);
    ASSERT_EQ(p.prompt, prompt);
    EXPECT_EQ(p.conv.tokens, engine.tokenize_prompt(prompt)) << "turn " << turn + 1 << " of " << path;
    if (turn > 0) EXPECT_GT(p.cached_tokens, 0) << "turn " << turn + 1 << " did not start from the cache";
    messages.push_back({"assistant", kAnswers[turn]});
  }
}

TEST(TokenExactCache, RwkvWorldTrie) {
  REQUIRE_SHARED_MODEL(path, "tiny-rwkv7-834K-f32.gguf");
  expect_token_exact(path);
}

// Regression: the continuation after a cached prefix was encoded with the
// start-of-text space prefix, so the state held "▁" where the text has none.
TEST(TokenExactCache, SentencePieceContinuationAfterACachedPrefixHasNoSpacePrefix) {
  REQUIRE_SHARED_MODEL(path, "stories260K/stories260K.gguf");
  expect_token_exact(path);
}

// Byte-level BPE (and SentencePiece again): a text split where a whole-text
// encode starts a new fragment or pre-token, encoded as prefix +
// continuation, gives the whole text's ids.
TEST(TokenExactCache, ContinuationEncodingMatchesTheWholeText) {
  for (const char* rel : {"llamacpp-vocab/ggml-vocab-gpt-2.gguf", "llamacpp-vocab/ggml-vocab-llama-spm.gguf"}) {
    REQUIRE_SHARED_MODEL(path, rel);
    auto tok = Tokenizer::from_gguf(gguf::File::open(path));
    const std::string a = "User: Who is Lily?\n\nAssistant:", b = " Lily was a little girl.\n\nUser: Why?";
    std::vector<int32_t> split = tok->encode(a, true);
    const auto rest = tok->encode_continuation(b, true, /*after_special=*/false);
    split.insert(split.end(), rest.begin(), rest.end());
    EXPECT_EQ(split, tok->encode(a + b, true)) << rel;
  }
}

}  // namespace
}  // namespace flatline
