// Sampler, streaming text and chat templates. The sampler is checked against
// definitions computed here from the logits (outside the sampler's code).
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "runtime/chat_template.h"
#include "runtime/memory_budget.h"
#include "runtime/sampler.h"
#include "runtime/text_stream.h"
#include "util/error.h"

namespace flatline {
namespace {

std::vector<float> logits_of(std::initializer_list<float> v) { return std::vector<float>(v); }

TEST(Sampler, GreedyPicksArgmax) {
  SamplerParams p;
  p.temperature = 0;
  Sampler s(p, 5);
  auto l = logits_of({0.1f, 2.0f, -1.0f, 1.9f, 0.0f});
  EXPECT_EQ(s.sample(l.data(), {}), 1);
}

TEST(Sampler, RepeatPenaltyFollowsLlamaCppSemantics) {
  SamplerParams p;
  p.temperature = 0;
  p.repeat_penalty = 2.0f;
  Sampler s(p, 3);
  // Token 0 (logit 3) was seen: 3 / 2 = 1.5 < 2 -> token 1 wins.
  auto l = logits_of({3.0f, 2.0f, -5.0f});
  std::vector<int32_t> history = {0, 0};
  EXPECT_EQ(s.sample(l.data(), history), 1);
  EXPECT_FLOAT_EQ(l[0], 1.5f);  // penalised once, not per occurrence
  // Negative logits are multiplied.
  auto l2 = logits_of({-1.0f, -3.0f, -5.0f});
  history = {0};
  s.sample(l2.data(), history);
  EXPECT_FLOAT_EQ(l2[0], -2.0f);
}

TEST(Sampler, PresenceAndFrequencyPenalties) {
  SamplerParams p;
  p.temperature = 0;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  Sampler s(p, 3);
  auto l = logits_of({1.0f, 1.0f, 1.0f});
  std::vector<int32_t> history = {2, 2, 2, 1};
  s.sample(l.data(), history);
  EXPECT_FLOAT_EQ(l[0], 1.0f);
  EXPECT_FLOAT_EQ(l[1], 1.0f - 0.25f - 0.5f);
  EXPECT_FLOAT_EQ(l[2], 1.0f - 0.75f - 0.5f);
}

TEST(Sampler, PenaltyWindowOnlyLooksBackRepeatLastN) {
  SamplerParams p;
  p.temperature = 0;
  p.repeat_penalty = 10.0f;
  p.repeat_last_n = 2;
  Sampler s(p, 3);
  auto l = logits_of({5.0f, 1.0f, 1.0f});
  std::vector<int32_t> history = {0, 1, 2};  // token 0 is outside the window
  EXPECT_EQ(s.sample(l.data(), history), 0);
}

// Empirical distribution of many draws vs the distribution computed from the
// definition of top-k / top-p / temperature.
std::map<int, double> draw(SamplerParams p, const std::vector<float>& logits, int n) {
  Sampler s(p, static_cast<int32_t>(logits.size()));
  std::map<int, double> freq;
  for (int i = 0; i < n; ++i) {
    auto l = logits;
    freq[s.sample(l.data(), {})] += 1.0 / n;
  }
  return freq;
}

TEST(Sampler, TopKTopPTemperatureDistribution) {
  std::vector<float> logits = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f};
  SamplerParams p;
  p.seed = 42;
  p.temperature = 0.5f;
  p.top_k = 3;
  p.top_p = 1.0f;
  auto freq = draw(p, logits, 40000);
  // Expected: softmax(logits[:3] / 0.5).
  double z = std::exp(4.0) + std::exp(2.0) + std::exp(1.0);
  EXPECT_NEAR(freq[0], std::exp(4.0) / z, 0.01);
  EXPECT_NEAR(freq[1], std::exp(2.0) / z, 0.01);
  EXPECT_NEAR(freq[2], std::exp(1.0) / z, 0.01);
  EXPECT_EQ(freq.count(3), 0u);

  // top_p = 0.6 over softmax at T=1: p = [0.547, 0.201, ...] -> keeps 2 tokens.
  p.top_k = 0;
  p.top_p = 0.6f;
  p.temperature = 1.0f;
  freq = draw(p, logits, 40000);
  double z2 = std::exp(2.0) + std::exp(1.0);
  EXPECT_NEAR(freq[0], std::exp(2.0) / z2, 0.01);
  EXPECT_NEAR(freq[1], std::exp(1.0) / z2, 0.01);
  EXPECT_EQ(freq.size(), 2u);
}

TEST(Sampler, MinPAndSeedDeterminism) {
  std::vector<float> logits = {3.0f, 2.9f, 0.0f, -2.0f};
  SamplerParams p;
  p.seed = 7;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.5f;  // keeps tokens with p >= 0.5 * p_max: tokens 0 and 1
  auto freq = draw(p, logits, 5000);
  EXPECT_EQ(freq.size(), 2u);
  auto a = draw(p, logits, 200), b = draw(p, logits, 200);
  EXPECT_EQ(a, b);  // same seed, same draws
}

TEST(TextStream, HoldsBackPossibleStopStringsAndIncompleteUtf8) {
  TextStream s({"\n\nUser:"});
  std::string shown;
  s.push("Hello");
  shown += s.release();
  EXPECT_EQ(shown, "Hello");
  s.push("\n");
  shown += s.release();
  EXPECT_EQ(shown, "Hello");  // "\n" could start the stop string
  s.push("\xe4\xbd");           // first two bytes of 你
  shown += s.release();
  EXPECT_EQ(shown, "Hello\n");
  s.push("\xa0");
  shown += s.release();
  EXPECT_EQ(shown, "Hello\n\xe4\xbd\xa0");
  EXPECT_FALSE(s.push("\n\nUs"));
  shown += s.release();
  EXPECT_TRUE(s.push("er: next"));
  shown += s.release() + s.flush();
  EXPECT_EQ(shown, "Hello\n\xe4\xbd\xa0");
  EXPECT_EQ(s.text(), shown);
}

TEST(TextStream, StopStringSplitAcrossManyPieces) {
  TextStream s({"<|im_end|>"});
  std::string shown;
  for (std::string piece : {"ok", "<|", "im", "_e", "nd|", ">tail"}) {
    s.push(piece);
    shown += s.release();
  }
  shown += s.flush();
  EXPECT_EQ(shown, "ok");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.matched_stop(), "<|im_end|>");
}

TEST(TextStream, MatchedStopIsTheOneThatCutTheText) {
  TextStream s({"END", "stop"});
  EXPECT_EQ(s.matched_stop(), "");
  EXPECT_FALSE(s.push("nothing yet, st"));
  EXPECT_EQ(s.matched_stop(), "");
  // Both appear; the earlier one ends the text.
  EXPECT_TRUE(s.push("op and END"));
  EXPECT_EQ(s.text(), "nothing yet, ");
  EXPECT_EQ(s.matched_stop(), "stop");
}

TEST(ChatTemplate, RwkvWorldFormatMatchesBlinkDLTemplate) {
  ChatTemplate t(ChatFormat::RwkvWorld);
  std::vector<ChatMessage> m = {{"system", "Be brief."},
                                {"user", "What is\r\n\n\nbeekeeping?  "},
                                {"assistant", " Keeping bees.\n\n"},
                                {"user", "Why?"}};
  EXPECT_EQ(t.render(m), "System: Be brief.\n\nUser: What is\nbeekeeping?\n\nAssistant: Keeping bees.\n\nUser: Why?\n\nAssistant:");
  // A growing conversation renders to a string that extends the previous one.
  std::vector<ChatMessage> first(m.begin(), m.begin() + 2);
  std::string a = t.render(first);
  std::string b = t.render(m);
  EXPECT_EQ(b.compare(0, a.size(), a), 0);
}

TEST(ChatTemplate, DetectsKnownTemplatesFromJinja) {
  EXPECT_EQ(ChatTemplate::detect("rwkv-world", "rwkv7"), ChatFormat::RwkvWorld);
  EXPECT_EQ(ChatTemplate::detect("", "rwkv7"), ChatFormat::RwkvWorld);
  EXPECT_EQ(ChatTemplate::detect("{{ '<|start_header_id|>' + role }}", "llama"), ChatFormat::Llama3);
  EXPECT_EQ(ChatTemplate::detect("{{ '<start_of_turn>' }}", "gemma3"), ChatFormat::Gemma);
  EXPECT_EQ(ChatTemplate::detect("{% for m in messages %}<|im_start|>", "qwen2"), ChatFormat::ChatMl);
  EXPECT_EQ(ChatTemplate::detect("", "llama"), ChatFormat::Plain);
}

TEST(ChatTemplate, GemmaFoldsSystemIntoFirstUserTurn) {
  ChatTemplate t(ChatFormat::Gemma);
  EXPECT_EQ(t.render({{"system", "S"}, {"user", "Hi"}}),
            "<start_of_turn>user\nS\n\nHi<end_of_turn>\n<start_of_turn>model\n");
}

TEST(MemoryBudget, ParsesSizesAndRefusesWithAClearMessage) {
  EXPECT_EQ(parse_byte_size("512M"), 512ull << 20);
  EXPECT_EQ(parse_byte_size("1.5GiB"), 3ull << 29);
  EXPECT_EQ(parse_byte_size("1000"), 1000u);
  EXPECT_THROW(parse_byte_size("lots"), Error);
  EXPECT_THROW(parse_byte_size("5X"), Error);
  MemoryBudget b(1ull << 30);
  b.reserve(900ull << 20);
  try {
    b.require(200ull << 20, "model x");
    FAIL();
  } catch (const MemoryBudgetError& e) {
    EXPECT_NE(std::string(e.what()).find("model x needs 200.00 MiB but only 124.00 MiB of the 1.00 GiB memory budget is free"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace flatline
