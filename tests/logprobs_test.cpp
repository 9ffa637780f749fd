// Log-probabilities of generated tokens (OpenAI / Ollama `logprobs`,
// `top_logprobs`): the recorded values equal a plain float64 log-softmax of
// the logits the generator sampled from, computed here from the model's own
// logits at each step, and recording them changes nothing in the reply.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "runtime/generator.h"
#include "server_test_support.h"

namespace flatline {
namespace {

// log softmax in double, the slow way.
std::vector<double> slow_log_softmax(const std::vector<float>& logits) {
  double m = -std::numeric_limits<double>::infinity();
  for (float l : logits) m = std::max(m, static_cast<double>(l));
  double sum = 0;
  for (float l : logits)
    if (!std::isinf(l)) sum += std::exp(l - m);
  std::vector<double> out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] - m - std::log(sum);
  return out;
}

TEST(Logprobs, TokenLogprobIsTheLogSoftmaxWithTheBestAlternativesFirst) {
  std::vector<float> logits = {1.0f, 3.0f, -2.0f, 3.0f, 0.5f, -std::numeric_limits<float>::infinity()};
  std::vector<std::pair<float, int32_t>> scratch;
  const TokenLogprob t = token_logprob(logits, 4, 3, scratch);
  const std::vector<double> want = slow_log_softmax(logits);
  EXPECT_EQ(t.id, 4);
  EXPECT_NEAR(t.logprob, want[4], 1e-6);
  ASSERT_EQ(t.top.size(), 3u);
  EXPECT_EQ(t.top[0].first, 1);  // a tie goes to the lower id
  EXPECT_EQ(t.top[1].first, 3);
  EXPECT_EQ(t.top[2].first, 0);
  for (const auto& [id, lp] : t.top) EXPECT_NEAR(lp, want[static_cast<size_t>(id)], 1e-6);
  // A masked id is never an alternative, and asking for more than there are gives what there is.
  EXPECT_EQ(token_logprob(logits, 1, 20, scratch).top.size(), 5u);
  EXPECT_TRUE(token_logprob(logits, 1, 0, scratch).top.empty());
}

TEST(Logprobs, GenerationRecordsOnePerTokenMatchingTheModelsLogits) {
  test::TempDir dir("logprobs");
  const std::string path = dir.path() + "/random.gguf";
  test::write_random_rwkv7(path, 5);
  LoadOptions o;
  o.pool = std::make_shared<ThreadPool>(1);
  auto lm = LoadedModel::load(path, o);
  GenerateOptions g;
  g.sampling.temperature = 0.9f;
  g.sampling.seed = 11;
  g.sampling.repeat_penalty = 1.3f;  // penalties act after the record: the record is the model's distribution
  g.num_predict = 12;
  g.use_template_stops = false;

  Engine plain_engine(*lm);
  Conversation plain = plain_engine.new_conversation(512);
  const GenerateResult without = plain_engine.generate(plain, "The bees", g);
  EXPECT_TRUE(without.logprobs.empty());

  g.top_logprobs = 2;
  std::vector<TokenLogprob> live;
  g.logprob_log = &live;
  Engine engine(*lm);
  Conversation conv = engine.new_conversation(512);
  const GenerateResult with = engine.generate(conv, "The bees", g);
  EXPECT_EQ(with.generated, without.generated);  // recording changes nothing
  ASSERT_EQ(with.logprobs.size(), with.generated.size());
  ASSERT_EQ(live.size(), with.generated.size());

  // Replay the same tokens one by one and check each record against the logits before it.
  Engine replay(*lm);
  Conversation r = replay.new_conversation(512);
  replay.feed_prompt(r, "The bees");
  const int64_t n_choosable = std::min<int64_t>(lm->info().n_vocab, lm->tokenizer().n_vocab());
  for (size_t i = 0; i < with.generated.size(); ++i) {
    std::vector<float> logits(r.last_logits.begin(), r.last_logits.begin() + n_choosable);
    const std::vector<double> want = slow_log_softmax(logits);
    const TokenLogprob& got = with.logprobs[i];
    EXPECT_EQ(got.id, with.generated[i]);
    EXPECT_NEAR(got.logprob, want[static_cast<size_t>(got.id)], 1e-4) << "token " << i;
    ASSERT_EQ(got.top.size(), 2u);
    std::vector<size_t> order(want.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return want[a] > want[b]; });
    EXPECT_EQ(static_cast<size_t>(got.top[0].first), order[0]) << "token " << i;
    EXPECT_NEAR(got.top[0].second, want[order[0]], 1e-4);
    EXPECT_GE(got.top[0].second, got.logprob - 1e-6);
    EXPECT_EQ(live[i].id, got.id);
    const int32_t id = with.generated[i];
    replay.feed_token(r, id, lm->tokenizer().token_bytes(id, true));
  }
}

}  // namespace
}  // namespace flatline
