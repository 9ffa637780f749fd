// The token mask (runtime/grammar_constraint.h) for the three tokenizer
// kinds, on real vocabularies from ../shared: the trie walk must allow
// exactly the tokens a plain per-token check allows (each token's bytes fed
// through the matcher on their own), random generations through the mask
// must always end in a complete text, and a token budget must be kept.
#include <gtest/gtest.h>

#include <random>

#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "runtime/grammar_constraint.h"
#include "runtime/json_schema.h"
#include "test_support.h"

namespace flatline {
namespace {

using json = nlohmann::ordered_json;

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  return Tokenizer::from_gguf(gguf::File::open(path));
}

const char* kVocabs[] = {"rwkv-world-vocab/rwkv-world.vocab.gguf", "llamacpp-vocab/ggml-vocab-llama-spm.gguf",
                         "llamacpp-vocab/ggml-vocab-gpt-2.gguf"};

const char* kSchema = R"({"type":"object","properties":{"name":{"type":"string","maxLength":12},
  "tags":{"type":"array","items":{"enum":["a","bé","ç"]},"maxItems":3},"n":{"type":"integer","minimum":-5,"maximum":500},
  "ok":{"type":"boolean"}},"required":["name","tags","n","ok"]})";

// The plain check: token by token, its bytes through the matcher.
std::vector<int32_t> reference_allowed(GrammarMatcher& m, GrammarMatcher::State s, const Tokenizer& tok) {
  std::vector<int32_t> out;
  for (int32_t id = 0; id < tok.n_vocab(); ++id) {
    const TokenType t = tok.token_type(id);
    if (tok.is_end_of_generation(id)) {
      if (m.accepts(s)) out.push_back(id);
      continue;
    }
    if (t == TokenType::Control || t == TokenType::Unknown || t == TokenType::Unused) continue;
    const std::string bytes = tok.token_bytes(id);
    if (bytes.empty()) continue;
    if (m.feed(s, bytes) != GrammarMatcher::kDead) out.push_back(id);
  }
  return out;
}

class GrammarMask : public ::testing::TestWithParam<const char*> {};

TEST_P(GrammarMask, TrieWalkAllowsExactlyWhatEachTokenAlonePasses) {
  REQUIRE_SHARED_MODEL(path, GetParam());
  auto tok = load_tokenizer(path);
  auto grammar = Grammar::parse(json_schema_to_gbnf(json::parse(kSchema)));
  auto trie = std::make_shared<VocabTrie>(*tok);
  GrammarConstraint c(grammar, *tok, trie);
  GrammarMatcher reference(grammar);
  GrammarMatcher::State ref_state = reference.start();
  std::mt19937 rng(7);
  std::string text;
  for (int step = 0; step < 40; ++step) {
    const std::vector<int32_t> allowed = c.allowed_tokens();
    const std::vector<int32_t> expected = reference_allowed(reference, ref_state, *tok);
    ASSERT_EQ(allowed, expected) << "after \"" << text << "\"";
    if (allowed.empty()) break;
    const int32_t id = allowed[rng() % allowed.size()];
    c.accept(id);
    if (tok->is_end_of_generation(id)) break;
    text += tok->token_bytes(id);
    ref_state = reference.feed(ref_state, tok->token_bytes(id));
  }
}

// Random tokens among the allowed ones, with a budget: every run ends with a
// complete text (parsed here, the schema checked by the grammar tests) and
// within the budget.
TEST_P(GrammarMask, RandomGenerationsFinishWithinTheBudget) {
  REQUIRE_SHARED_MODEL(path, GetParam());
  auto tok = load_tokenizer(path);
  auto grammar = Grammar::parse(json_schema_to_gbnf(json::parse(kSchema)));
  auto trie = VocabTrie::for_model(*tok, path);
  std::mt19937 rng(11);
  for (int64_t budget : {48, 64, 100, 400}) {
    for (int run = 0; run < 4; ++run) {
      GrammarConstraintOptions o;
      o.budget = budget;
      GrammarConstraint c(grammar, *tok, trie, o);
      std::string text;
      int64_t tokens = 0;
      bool ended = false;
      for (; tokens < budget; ++tokens) {
        std::vector<float> logits(static_cast<size_t>(tok->n_vocab()));
        for (float& l : logits) l = std::uniform_real_distribution<float>(-3, 3)(rng);
        ASSERT_TRUE(c.apply(logits));
        std::vector<int32_t> ids;
        for (size_t i = 0; i < logits.size(); ++i)
          if (logits[i] != -std::numeric_limits<float>::infinity()) ids.push_back(static_cast<int32_t>(i));
        const int32_t id = ids[rng() % ids.size()];
        c.accept(id);
        if (tok->is_end_of_generation(id)) {
          ended = true;
          break;
        }
        text += tok->token_bytes(id);
      }
      EXPECT_TRUE(ended) << "budget " << budget << ": no end after " << text;
      EXPECT_FALSE(c.failed());
      json value;
      ASSERT_NO_THROW(value = json::parse(text)) << text;
      EXPECT_TRUE(value.contains("name") && value.contains("tags") && value.contains("n") && value.contains("ok")) << text;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, GrammarMask, ::testing::ValuesIn(kVocabs), [](const auto& info) {
  std::string n = info.param;
  n = n.substr(n.rfind('/') + 1);
  n = n.substr(0, n.find('.'));
  std::string out;
  for (char ch : n) out += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return out;
});

// A grammar behind a trigger: free text until "<tool_call>" appears, then
// the call's grammar (which spells the trigger itself).
TEST(GrammarMaskTrigger, ConstrainsFromTheTriggerOn) {
  REQUIRE_SHARED_MODEL(path, "llamacpp-vocab/ggml-vocab-gpt-2.gguf");
  auto tok = load_tokenizer(path);
  auto grammar = Grammar::parse("root ::= \"<tool_call>\" [0-9]+ \"</tool_call>\"");
  GrammarConstraintOptions o;
  o.trigger = "<tool_call>";
  GrammarConstraint c(grammar, *tok, VocabTrie::for_model(*tok, path), o);
  auto feed = [&](const std::string& s) {
    for (int32_t id : tok->encode(s)) c.accept(id);
  };
  EXPECT_EQ(c.allowed_tokens().size(), static_cast<size_t>(tok->n_vocab()));  // unconstrained
  feed("Let me look that up. <tool");
  EXPECT_FALSE(c.active());
  feed("_call>");
  ASSERT_TRUE(c.active());
  const std::vector<int32_t> allowed = c.allowed_tokens();
  for (int32_t id : allowed) {
    const std::string b = tok->token_bytes(id);
    ASSERT_TRUE(!b.empty() && b[0] >= '0' && b[0] <= '9') << "token " << id << " '" << b << "'";
  }
  feed("42</tool_call>");
  EXPECT_TRUE(c.complete());
  // Complete and nothing can follow: only the end of generation.
  const std::vector<int32_t> end = c.allowed_tokens();
  ASSERT_FALSE(end.empty());
  for (int32_t id : end) EXPECT_TRUE(tok->is_end_of_generation(id));
}

TEST(GrammarMaskTrigger, AtStartOnlyWhenTheOutputBeginsWithIt) {
  REQUIRE_SHARED_MODEL(path, "llamacpp-vocab/ggml-vocab-gpt-2.gguf");
  auto tok = load_tokenizer(path);
  auto grammar = Grammar::parse("root ::= \"{\" [a-z]* \"}\"");
  GrammarConstraintOptions o;
  o.trigger = "{";
  o.trigger_at_start = true;
  {
    GrammarConstraint c(grammar, *tok, VocabTrie::for_model(*tok, path), o);
    for (int32_t id : tok->encode("  {ab")) c.accept(id);
    EXPECT_TRUE(c.active());
    EXPECT_FALSE(c.failed());
  }
  {
    GrammarConstraint c(grammar, *tok, VocabTrie::for_model(*tok, path), o);
    for (int32_t id : tok->encode("Sure, {ab")) c.accept(id);
    EXPECT_FALSE(c.active());
  }
}

}  // namespace
}  // namespace flatline
