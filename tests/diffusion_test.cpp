// Masked-diffusion models (LLaDA, Dream) against llama.cpp: the logits of one
// bidirectional pass (../shared/models/random/README.md), and whole
// generations of llama.cpp's diffusion example (greedy with top-k 1, and
// sampled with seeds 0, 1, 42). The temperature-0 path of the authors' code
// (argmax, confidence from the full softmax) is checked against a slow
// reference written here; the approximate cache against exact passes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include "model_test_util.h"
#include "runtime/diffusion.h"
#include "runtime/engine.h"
#include "test_support.h"
#include "util/error.h"

namespace flatline {
namespace {

using test::max_abs_diff;

constexpr int64_t kVocab = 512;
constexpr int32_t kMask = 511;

std::vector<int32_t> canvas48() {
  auto ids = test::standard_ids(32);
  ids.resize(48, kMask);
  return ids;
}

std::vector<int32_t> parse(const std::string& s) {
  std::vector<int32_t> ids;
  for (size_t at = 0; at < s.size();) {
    size_t end = s.find(',', at);
    if (end == std::string::npos) end = s.size();
    ids.push_back(std::stoi(s.substr(at, end - at)));
    at = end + 1;
  }
  return ids;
}

class DiffusionLogits : public ::testing::TestWithParam<const char*> {};

TEST_P(DiffusionLogits, OnePassMatchesLlamaCpp) {
  const std::string name = GetParam();
  REQUIRE_SHARED_MODEL(path, "random/" + name + ".gguf");
  auto m = test::load_test_model(path);
  EXPECT_FALSE(m.model->traits().causal);
  EXPECT_EQ(m.model->traits().generation, GenerationKind::MaskedDiffusion);
  for (auto [ids, file] : {std::pair{canvas48(), name + ".logits.f32"}, std::pair{test::standard_ids(), name + ".seq64.logits.f32"}}) {
    auto ref = test::read_f32_file(test::shared_model("random/" + file));
    auto state = m.new_state(128);
    std::vector<float> got(ids.size() * kVocab);
    m.forward(*state, ids, LogitsMode::All, got.data());
    const float diff = max_abs_diff(got, ref);
    std::cout << file << ": max |flatline - llama.cpp| = " << diff << "\n";
    EXPECT_LT(diff, 1e-4f * 33.0f) << file;
    // A non-causal pass leaves the state as it was: the same call again gives the same rows.
    std::vector<float> again(got.size());
    m.forward(*state, ids, LogitsMode::All, again.data());
    EXPECT_EQ(max_abs_diff(got, again), 0.0f);
  }
}

TEST_P(DiffusionLogits, CanvasesInOneBatchAndSmallChunksEqualSeparatePasses) {
  REQUIRE_SHARED_MODEL(path, std::string("random/") + GetParam() + ".gguf");
  auto m = test::load_test_model(path);
  const auto a = canvas48(), b = test::standard_ids(20);
  auto sa = m.new_state(128), sb = m.new_state(128);
  std::vector<float> la(a.size() * kVocab), lb(b.size() * kVocab), ea(la.size()), eb(lb.size());
  std::vector<SequenceInput> batch = {{sa.get(), a, LogitsMode::All, la.data(), nullptr},
                                      {sb.get(), b, LogitsMode::All, lb.data(), nullptr}};
  ForwardArgs args;
  args.sequences = batch;
  m.model->forward(args, *m.ws);
  m.forward(*sa, a, LogitsMode::All, ea.data());
  m.forward(*sb, b, LogitsMode::All, eb.data());
  EXPECT_LT(max_abs_diff(la, ea), 1e-4f);
  EXPECT_LT(max_abs_diff(lb, eb), 1e-4f);
  // max_batch below the canvas: a bidirectional pass still sees every row.
  auto small = test::load_test_model(path, DType::F32, 8);
  std::vector<float> got(la.size());
  small.forward(*small.new_state(128), a, LogitsMode::All, got.data());
  EXPECT_LT(max_abs_diff(got, ea), 1e-4f);
  const ModelTraits& t = m.model->traits();
  EXPECT_FALSE(t.prefix_reusable);
  EXPECT_EQ(t.generation, GenerationKind::MaskedDiffusion);
}

INSTANTIATE_TEST_SUITE_P(Random, DiffusionLogits, ::testing::Values("llada", "dream"));

struct Loaded {
  std::unique_ptr<LoadedModel> lm;
  std::unique_ptr<Engine> engine;
};

Loaded open(const std::string& path) {
  LoadOptions o;
  o.pool = test::test_pool(2);
  o.kv_type = DType::F32;
  Loaded r;
  r.lm = LoadedModel::load(path, o, nullptr, 256);
  r.engine = std::make_unique<Engine>(*r.lm);
  return r;
}

GenerateResult generate(Loaded& run, const GenerateOptions& g, const EventSink& sink = {}) {
  Conversation conv = run.engine->new_conversation(256);
  return DiffusionGenerator(*run.engine).generate_from_ids(conv, test::standard_ids(32), g, sink);
}

GenerateOptions llama_cpp_options(bool llada, int top_k, int64_t seed) {
  GenerateOptions g;
  g.use_template_stops = false;
  g.sampling.top_k = top_k;
  g.sampling.top_p = 1.0f;
  g.sampling.temperature = 1.0f;  // llama.cpp's diffusion chain applies none
  g.sampling.seed = seed;
  g.diffusion.gen_length = 16;
  g.diffusion.steps = 16;
  if (llada) {
    g.diffusion.block_length = 16;
    g.diffusion.algorithm = DiffusionAlgorithm::Confidence;
  } else {
    g.diffusion.block_length = 0;
    g.diffusion.eps = 0.001;
    g.diffusion.algorithm = DiffusionAlgorithm::EntropyHighFirst;
  }
  return g;
}

TEST(Diffusion, GreedyGenerationsMatchLlamaCppDiffusionExample) {
  REQUIRE_SHARED_MODEL(llada, "random/llada.gguf");
  REQUIRE_SHARED_MODEL(dream, "random/dream.gguf");
  Loaded a = open(llada), b = open(dream);
  EXPECT_EQ(generate(a, llama_cpp_options(true, 1, 0)).generated, parse("377,377,499,377,377,65,65,272,272,272,272,272,272,272,272,344"));
  EXPECT_EQ(generate(b, llama_cpp_options(false, 1, 0)).generated, parse("31,417,19,360,202,104,82,182,182,251,7,227,329,333,122,209"));
  // Dream's own entropy sign: with top-k 1 every entropy is 0, so the same.
  auto g = llama_cpp_options(false, 1, 0);
  g.diffusion.algorithm = DiffusionAlgorithm::Entropy;
  EXPECT_EQ(generate(b, g).generated, parse("31,417,19,360,202,104,82,182,182,251,7,227,329,333,122,209"));
}

TEST(Diffusion, SeededSamplingMatchesLlamaCppDiffusionExample) {
  REQUIRE_SHARED_MODEL(llada, "random/llada.gguf");
  REQUIRE_SHARED_MODEL(dream, "random/dream.gguf");
  Loaded a = open(llada), b = open(dream);
  const std::map<int64_t, std::pair<std::string, std::string>> want = {
      {0, {"272,272,272,272,272,377,377,377,65,272,377,45,45,272,65,65", "31,417,209,91,146,91,91,356,481,328,91,481,328,356,481,356"}},
      {1, {"272,272,272,402,272,377,377,377,45,65,377,272,272,65,65,344", "166,379,356,24,209,91,91,146,91,146,60,91,388,481,481,356"}},
      {42, {"272,272,272,272,87,377,377,377,272,272,377,45,272,45,65,65", "166,233,79,91,91,481,481,481,328,60,91,392,209,342,356,91"}}};
  for (const auto& [seed, ids] : want) {
    EXPECT_EQ(generate(a, llama_cpp_options(true, 0, seed)).generated, parse(ids.first)) << "llada seed " << seed;
    EXPECT_EQ(generate(b, llama_cpp_options(false, 0, seed)).generated, parse(ids.second)) << "dream seed " << seed;
  }
  // Dream's entropy (most certain first) is a different order than llama.cpp's.
  auto g = llama_cpp_options(false, 0, 0);
  g.diffusion.algorithm = DiffusionAlgorithm::Entropy;
  EXPECT_NE(generate(b, g).generated, parse(want.at(0).second));
}

// LLaDA's generate.py at temperature 0, written plainly: blocks left to
// right, the block's masks spread evenly over its steps, at each step one full
// pass, argmax per masked position, the most probable ones filled.
std::vector<int32_t> reference_llada(const std::string& path, int64_t gen, int64_t block, int64_t steps) {
  auto m = test::load_test_model(path);
  auto canvas = test::standard_ids(32);
  const int64_t P = 32;
  canvas.resize(static_cast<size_t>(P + gen), kMask);
  const int64_t blocks = gen / block, per_block = steps / blocks;
  std::vector<float> logits(canvas.size() * kVocab);
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t lo = P + b * block, hi = lo + block;
    std::vector<int64_t> transfer(per_block, block / per_block);
    for (int64_t i = 0; i < block % per_block; ++i) ++transfer[i];
    for (int64_t s = 0; s < per_block; ++s) {
      auto state = m.new_state(256);
      m.forward(*state, canvas, LogitsMode::All, logits.data());
      std::vector<std::tuple<double, int64_t, int32_t>> cand;  // (-p, position, token)
      for (int64_t pos = lo; pos < hi; ++pos) {
        if (canvas[pos] != kMask) continue;
        const float* row = logits.data() + pos * kVocab;
        int32_t best = 0;
        for (int32_t t = 1; t < kVocab; ++t)
          if (row[t] > row[best]) best = t;
        double sum = 0;
        for (int32_t t = 0; t < kVocab; ++t) sum += std::exp(double(row[t]) - row[best]);
        cand.emplace_back(-1.0 / sum, pos, best);
      }
      std::sort(cand.begin(), cand.end());
      for (int64_t i = 0; i < transfer[s] && i < static_cast<int64_t>(cand.size()); ++i)
        canvas[std::get<1>(cand[i])] = std::get<2>(cand[i]);
    }
  }
  return std::vector<int32_t>(canvas.begin() + P, canvas.end());
}

TEST(Diffusion, ArgmaxPathMatchesAPlainReference) {
  REQUIRE_SHARED_MODEL(llada, "random/llada.gguf");
  Loaded a = open(llada);
  for (auto [gen, block, steps] : {std::tuple<int64_t, int64_t, int64_t>{16, 16, 16}, {16, 4, 8}, {24, 8, 12}}) {
    GenerateOptions g;
    g.use_template_stops = false;
    g.sampling.temperature = 0.0f;
    g.diffusion.gen_length = gen;
    g.diffusion.block_length = block;
    g.diffusion.steps = steps;
    auto r = generate(a, g);
    EXPECT_EQ(r.generated, reference_llada(llada, gen, block, steps)) << gen << "/" << block << "/" << steps;
    EXPECT_EQ(r.diffusion_steps, steps);
    EXPECT_EQ(r.diffusion_full_passes, steps);
  }
}

TEST(Diffusion, CachedRowsEqualAFullPassOverTheSameCanvas) {
  for (const char* name : {"llada", "dream"}) {
    REQUIRE_SHARED_MODEL(path, std::string("random/") + name + ".gguf");
    auto m = test::load_test_model(path);
    auto canvas = canvas48();
    canvas[40] = 65;  // some committed positions inside the block
    canvas[33] = 272;
    auto state = m.new_state(128);
    std::vector<float> full(canvas.size() * kVocab);
    SequenceInput in{state.get(), canvas, LogitsMode::All, full.data(), nullptr};
    ForwardArgs args;
    args.sequences = std::span<const SequenceInput>(&in, 1);
    args.mask = AttentionMask::Full;
    args.store_kv = true;
    m.model->forward(args, *m.ws);
    EXPECT_EQ(state->n_past(), 48);
    // The block's rows alone against the kept K/V: the same logits.
    const int64_t lo = 31, hi = 48;
    std::vector<float> part((hi - lo) * kVocab);
    SequenceInput rows{state.get(), std::span<const int32_t>(canvas.data() + lo, hi - lo), LogitsMode::All, part.data(), nullptr};
    rows.position = lo;
    args.sequences = std::span<const SequenceInput>(&rows, 1);
    args.mask = AttentionMask::Cached;
    args.store_kv = false;
    m.model->forward(args, *m.ws);
    EXPECT_LT(max_abs_diff(part, std::span<const float>(full.data() + lo * kVocab, part.size())), 1e-4f) << name;
    // Rows outside what the state holds are refused.
    rows.position = 40;
    EXPECT_THROW(m.model->forward(args, *m.ws), Error) << name;
  }
}

TEST(Diffusion, ApproximateCacheSkipsFullPassesAndStaysClose) {
  REQUIRE_SHARED_MODEL(llada, "random/llada.gguf");
  Loaded a = open(llada);
  GenerateOptions g;
  g.use_template_stops = false;
  g.sampling.temperature = 0.0f;
  g.diffusion.gen_length = 32;
  g.diffusion.block_length = 8;
  g.diffusion.steps = 32;
  auto exact = generate(a, g);
  g.diffusion.cache_refresh = 4;
  auto approx = generate(a, g);
  EXPECT_EQ(approx.diffusion_steps, 32);
  EXPECT_EQ(approx.diffusion_full_passes, 8);  // 4 blocks of 8 steps, a full pass at steps 0 and 4 of each
  int same = 0;
  for (size_t i = 0; i < std::min(exact.generated.size(), approx.generated.size()); ++i) same += exact.generated[i] == approx.generated[i];
  std::cout << "approximate cache (refresh 4): " << same << "/32 tokens as the exact passes give\n";
  EXPECT_EQ(approx.generated.size(), 32u);
}

TEST(Diffusion, CanvasEventsFollowEveryStep) {
  REQUIRE_SHARED_MODEL(llada, "random/llada.gguf");
  Loaded a = open(llada);
  auto g = llama_cpp_options(true, 1, 0);
  g.diffusion.canvas_events = true;
  std::vector<std::vector<int32_t>> canvases;
  std::string text;
  auto r = generate(a, g, [&](const GenerationEvent& e) {
    if (e.kind == GenerationEvent::Kind::Canvas) {
      canvases.emplace_back(e.canvas.begin(), e.canvas.end());
      EXPECT_EQ(e.steps, 16);
      EXPECT_EQ(e.step, static_cast<int64_t>(canvases.size()));
    } else {
      text += e.text;
    }
    return true;
  });
  ASSERT_EQ(canvases.size(), 16u);
  for (size_t s = 0; s < canvases.size(); ++s)  // one mask fewer per step
    EXPECT_EQ(std::count(canvases[s].begin(), canvases[s].end(), kMask), static_cast<long>(15 - s));
  EXPECT_EQ(canvases.back(), r.generated);
  EXPECT_EQ(text, r.text);
  // Cancelling from the sink stops at that step.
  int seen = 0;
  auto c = generate(a, g, [&](const GenerationEvent& e) { return e.kind != GenerationEvent::Kind::Canvas || ++seen < 3; });
  EXPECT_EQ(c.done_reason, DoneReason::Cancelled);
  EXPECT_EQ(c.diffusion_steps, 3);
}

TEST(Diffusion, BadRequestsGetClearErrors) {
  REQUIRE_SHARED_MODEL(llada, "random/llada.gguf");
  Loaded a = open(llada);
  GenerateOptions g;
  g.diffusion.gen_length = 300;
  Conversation conv = a.engine->new_conversation(256);
  try {
    DiffusionGenerator(*a.engine).generate_from_ids(conv, test::standard_ids(32), g, {});
    FAIL() << "a canvas over the context was accepted";
  } catch (const ContextOverflowError& e) {
    EXPECT_NE(std::string(e.what()).find("the canvas needs 332 positions"), std::string::npos) << e.what();
  }
  EXPECT_THROW(DiffusionGenerator(*a.engine).generate_from_ids(conv, std::vector<int32_t>{}, GenerateOptions{}, {}), Error);
  try {
    parse_diffusion_algorithm("fastest");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown diffusion algorithm 'fastest'"), std::string::npos);
  }
}

}  // namespace
}  // namespace flatline
