// The bundled demo model against the golden files its training tool wrote
// from PyTorch: per-token logits on a held-out passage and the held-out
// perplexity. flatline's own end-to-end oracle; needs nothing from ../shared.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "runtime/engine.h"
#include "runtime/perplexity.h"
#include "test_support.h"

namespace flatline {
namespace {

const std::string kDir = test::source_dir() + "/models/";

nlohmann::json golden() {
  std::ifstream in(kDir + "flatline-demo-kjv.golden.json");
  return nlohmann::json::parse(in);
}

std::unique_ptr<LoadedModel> load_demo() {
  LoadOptions o;
  o.pool = std::make_shared<ThreadPool>(2);
  o.max_batch = 128;
  return LoadedModel::load(kDir + "flatline-demo-kjv.gguf", o);
}

TEST(DemoModel, LogitsMatchPyTorchOnAHeldOutPassage) {
  auto g = golden();
  auto lm = load_demo();
  std::vector<int32_t> ids = g["token_ids"].get<std::vector<int32_t>>();
  const int64_t n_vocab = g["n_vocab"];
  ASSERT_EQ(lm->info().n_vocab, n_vocab);
  // The tokenizer gives the same ids for the passage text.
  EXPECT_EQ(lm->tokenizer().encode(g["passage_text"].get<std::string>()), ids);
  auto expected = test::read_f32_file(kDir + g["logits_file"].get<std::string>());
  ASSERT_EQ(expected.size(), ids.size() * n_vocab);
  auto state = lm->model().new_state(0);
  std::vector<float> logits(expected.size());
  lm->model().forward(*state, ids, LogitsMode::All, logits.data(), *lm->model().new_workspace());
  float worst = 0;
  for (size_t i = 0; i < logits.size(); ++i) worst = std::max(worst, std::fabs(logits[i] - expected[i]));
  std::printf("  max |flatline - PyTorch| over %zu x %lld logits = %.3g\n", ids.size(), static_cast<long long>(n_vocab),
              worst);
  EXPECT_LE(worst, 1e-3f);
}

TEST(DemoModel, HeldOutPerplexityMatchesTraining) {
  auto g = golden();
  auto lm = load_demo();
  std::ifstream in(kDir + g["heldout_file"].get<std::string>(), std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(text.size(), g["heldout_bytes"].get<size_t>());
  auto ids = lm->tokenizer().encode(text);
  ASSERT_EQ(static_cast<int64_t>(ids.size()), g["heldout_n_tokens"].get<int64_t>());
  PerplexityResult r = compute_perplexity(*lm, ids, 0, 256);
  const double expected = g["heldout_perplexity"];
  std::printf("  held-out perplexity: flatline %.6f, PyTorch %.6f\n", r.perplexity, expected);
  EXPECT_NEAR(r.perplexity, expected, expected * 0.005);
  EXPECT_EQ(r.scored, static_cast<int64_t>(ids.size()) - 1);
}

TEST(DemoModel, ChatsInTheRwkvFormatAndStopsAtTheEndOfTurn) {
  auto lm = load_demo();
  EXPECT_EQ(lm->chat_template().name(), "rwkv-world");
  Engine engine(*lm);
  Conversation conv = engine.new_conversation(0);
  GenerateOptions opts;  // default sampling, fixed seed (greedy decoding of a model this small loops)
  opts.sampling.seed = 3;
  opts.num_predict = 300;
  auto r = engine.generate(conv, lm->chat_template().render({{"user", "Who made the heaven and the earth?"}}), opts);
  EXPECT_EQ(r.done_reason, DoneReason::Stop);
  EXPECT_FALSE(r.text.empty());
  EXPECT_EQ(r.text.find("\n\n"), std::string::npos);
}

}  // namespace
}  // namespace flatline
