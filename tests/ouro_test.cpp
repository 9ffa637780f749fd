// Ouro against the authors' own modeling code (../shared/models/ouro, golden/
// written by ByteDance's modeling_ouro.py): the fixture converted by
// `flatline convert`, then each loop's logits, the exit gate in select mode
// (logits and exit loop of every position for every threshold), the BF16
// copy, and greedy continuations. Skip mode (loops after the exit not
// computed) and KV sharing have no reference: their drift from select mode /
// full KV is measured and printed, and what must hold exactly is checked
// (batching invariance, fewer loops, memory).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "convert_support.h"
#include "model_test_util.h"
#include "runtime/engine.h"
#include "runtime/generator.h"
#include "test_support.h"
#include "util/error.h"

namespace flatline {
namespace {

using test::logits_in_pieces;
using test::max_abs_diff;

constexpr int64_t kVocab = 512;

nlohmann::json golden_json(const std::string& name) {
  std::ifstream f(test::shared_model("ouro/golden/" + name));
  return nlohmann::json::parse(f);
}

// The fixture converted once per test binary (F32, and the BF16 copy).
const std::string& converted(bool bf16 = false) {
  static std::string path[2];
  std::string& p = path[bf16];
  if (p.empty()) {
    p = test::temp_path(bf16 ? "ouro-bf16.gguf" : "ouro-f32.gguf");
    test::run_convert(test::shared_model(bf16 ? "ouro/bf16" : "ouro"), p, bf16 ? "auto" : "f32");
  }
  return p;
}

test::TestModel load(const std::map<std::string, std::string>& family, bool bf16 = false, int64_t max_batch = 256) {
  LoadOptions o;
  o.pool = test::test_pool(2);
  o.max_batch = max_batch;
  o.kv_type = DType::F32;
  o.family = family;
  test::TestModel m;
  m.file = std::make_shared<const gguf::File>(gguf::File::open(converted(bf16)));
  m.model = load_model(m.file, o);
  m.ws = m.model->new_workspace();
  return m;
}

std::vector<int32_t> prompt_ids() { return golden_json("tokens.json")["ids"].get<std::vector<int32_t>>(); }

// Logits of every position and the loops each used, one batch or in pieces.
std::pair<std::vector<float>, std::vector<int32_t>> run(test::TestModel& m, const std::vector<int32_t>& ids,
                                                        std::vector<int> pieces = {}) {
  if (pieces.empty()) pieces = {static_cast<int>(ids.size())};
  auto state = m.new_state(128);
  std::vector<float> out(ids.size() * kVocab);
  ForwardStats stats;
  size_t at = 0, k = 0;
  while (at < ids.size()) {
    const size_t n = std::min<size_t>(pieces[k++ % pieces.size()], ids.size() - at);
    SequenceInput in{state.get(), std::span<const int32_t>(ids.data() + at, n), LogitsMode::All,
                     out.data() + at * kVocab, &stats};
    ForwardArgs args;
    args.sequences = std::span<const SequenceInput>(&in, 1);
    m.model->forward(args, *m.ws);
    at += n;
  }
  return {out, stats.loops_used};
}

class Ouro : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::shared_model("ouro/config.json").empty())
      GTEST_SKIP() << "fixture ../shared/models/ouro not found (set FLATLINE_SHARED_DIR)";
  }
};

TEST_F(Ouro, EachLoopMatchesTheAuthorsCodeOnBothPaths) {
  const auto ids = prompt_ids();
  for (int t = 1; t <= 4; ++t) {
    auto m = load({{"loops", std::to_string(t)}});
    auto want = test::read_f32_file(test::shared_model("ouro/golden/logits.loop" + std::to_string(t) + ".f32"));
    auto [batch, loops] = run(m, ids);
    auto [serial, loops1] = run(m, ids, {1});
    std::cout << "loop " << t << ": max |flatline - modeling_ouro.py| " << max_abs_diff(batch, want) << " (batch), "
              << max_abs_diff(serial, want) << " (token by token)\n";
    EXPECT_LT(max_abs_diff(batch, want), 1e-3f);
    EXPECT_LT(max_abs_diff(serial, want), 1e-3f);
    EXPECT_EQ(loops, std::vector<int32_t>(ids.size(), t));
  }
  auto m = load({});
  auto [def, loops] = run(m, ids);
  EXPECT_LT(max_abs_diff(def, test::read_f32_file(test::shared_model("ouro/golden/logits.default.f32"))), 1e-3f);
}

TEST_F(Ouro, SelectModeMatchesLogitsAndExitLoopsForEveryThreshold) {
  const auto ids = prompt_ids();
  const auto gates = golden_json("gates.json");
  for (const char* q : {"0.3", "0.5", "0.8", "1.0"}) {
    auto m = load({{"exit_threshold", q}, {"exit_mode", "select"}});
    auto [logits, loops] = run(m, ids);
    EXPECT_EQ(loops, gates["exit_loop"][q].get<std::vector<int32_t>>()) << "q " << q;
    const std::string file = std::string(q) == "1.0" ? "logits.default.f32" : std::string("logits.exit_q") + q + ".f32";
    const float d = max_abs_diff(logits, test::read_f32_file(test::shared_model("ouro/golden/" + file)));
    std::cout << "select, q " << q << ": max |flatline - modeling_ouro.py| " << d << "\n";
    EXPECT_LT(d, 1e-3f) << "q " << q;
    auto [serial, loops1] = run(m, ids, {1, 4});
    EXPECT_EQ(loops1, loops);
    EXPECT_LT(max_abs_diff(serial, logits), 1e-4f);
  }
}

TEST_F(Ouro, Bf16CopyMatchesItsGolden) {
  auto m = load({}, /*bf16=*/true);
  auto [logits, loops] = run(m, prompt_ids());
  EXPECT_LT(max_abs_diff(logits, test::read_f32_file(test::shared_model("ouro/golden/bf16.logits.default.f32"))), 1e-3f);
}

std::vector<int32_t> greedy(const std::map<std::string, std::string>& family, const std::vector<int32_t>& prompt, int n,
                            std::vector<int32_t>* loops = nullptr) {
  LoadOptions o;
  o.pool = test::test_pool(2);
  o.kv_type = DType::F32;
  o.family = family;
  auto lm = LoadedModel::load(converted(), o, nullptr, 256);
  Engine engine(*lm);
  Conversation conv = engine.new_conversation(256);
  GenerateOptions g;
  g.sampling.top_k = 1;
  g.num_predict = n;
  g.use_template_stops = false;
  auto r = AutoregressiveGenerator(engine).generate_from_ids(conv, prompt, g, {});
  if (loops) *loops = r.loops_used;
  return r.generated;
}

TEST_F(Ouro, GreedyContinuationsMatchTheAuthorsCode) {
  const auto gen = golden_json("generate.json");
  const auto prompt = gen["prompt_ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(greedy({}, prompt, 16), gen["greedy_ids"].get<std::vector<int32_t>>());
  for (const char* q : {"0.3", "0.5", "0.8"})
    EXPECT_EQ(greedy({{"exit_threshold", q}, {"exit_mode", "select"}}, prompt, 16),
              gen["greedy_ids_exit_threshold"][q].get<std::vector<int32_t>>())
        << "q " << q;
}

TEST_F(Ouro, SkipModeComputesOnlyTheLoopsUsedAndIsBatchInvariant) {
  const auto ids = prompt_ids();
  const auto gates = golden_json("gates.json");
  const auto gen = golden_json("generate.json");
  const auto prompt = gen["prompt_ids"].get<std::vector<int32_t>>();
  for (const char* q : {"0.3", "0.5", "0.8"}) {
    auto skip = load({{"exit_threshold", q}, {"exit_mode", "skip"}});
    auto [logits, loops] = run(skip, ids);
    auto [serial, loops1] = run(skip, ids, {1, 3});
    auto small = load({{"exit_threshold", q}, {"exit_mode", "skip"}}, false, 5);
    auto [chunked, loops5] = run(small, ids);
    // Skip mode is its own computation: the same whatever the batching.
    EXPECT_EQ(loops1, loops);
    EXPECT_EQ(loops5, loops);
    EXPECT_LT(max_abs_diff(serial, logits), 1e-4f);
    EXPECT_LT(max_abs_diff(chunked, logits), 1e-4f);
    // The first position sees no filled KV: it exits where the reference does.
    const auto want = gates["exit_loop"][q].get<std::vector<int32_t>>();
    EXPECT_EQ(loops[0], want[0]);
    const std::string file = std::string("logits.exit_q") + q + ".f32";
    auto ref = test::read_f32_file(test::shared_model("ouro/golden/" + file));
    EXPECT_LT(max_abs_diff(std::span<const float>(logits).first(kVocab), std::span<const float>(ref).first(kVocab)), 1e-3f);
    // Drift from select mode (the reference), measured.
    double sum_skip = 0, sum_ref = 0;
    int same_exit = 0, same_top1 = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      sum_skip += loops[i];
      sum_ref += want[i];
      same_exit += loops[i] == want[i];
      same_top1 += test::argmax(logits.data() + i * kVocab, kVocab) == test::argmax(ref.data() + i * kVocab, kVocab);
    }
    const auto greedy_skip = greedy({{"exit_threshold", q}, {"exit_mode", "skip"}}, prompt, 16);
    const auto greedy_ref = gen["greedy_ids_exit_threshold"][q].get<std::vector<int32_t>>();
    int agree = 0;
    while (agree < 16 && greedy_skip[agree] == greedy_ref[agree]) ++agree;
    std::cout << "skip, q " << q << ": mean loops " << sum_skip / ids.size() << " (select " << sum_ref / ids.size()
              << "), same exit loop " << same_exit << "/" << ids.size() << ", same top-1 " << same_top1 << "/"
              << ids.size() << ", max |skip - select| " << max_abs_diff(logits, ref)
              << ", greedy ids equal for the first " << agree << " of 16\n";
    EXPECT_LE(sum_skip, 4.0 * ids.size());
  }
  // q = 1: skip and select are the same computation.
  auto a = load({{"exit_threshold", "1"}, {"exit_mode", "skip"}});
  auto b = load({{"exit_threshold", "1"}, {"exit_mode", "select"}});
  EXPECT_EQ(max_abs_diff(run(a, ids).first, run(b, ids).first), 0.0f);
}

TEST_F(Ouro, SharedKvCutsKvByTheLoopCount) {
  auto full = load({});
  auto shared = load({{"kv_share", "last"}});
  EXPECT_EQ(full.model->traits().state_bytes_per_token, 4 * shared.model->traits().state_bytes_per_token);
  // Quality cost on the fixture: perplexity of its own greedy text and top-1
  // agreement, shared vs full KV.
  const auto gen = golden_json("generate.json");
  std::vector<int32_t> text = gen["prompt_ids"].get<std::vector<int32_t>>();
  for (int32_t id : gen["greedy_ids"].get<std::vector<int32_t>>()) text.push_back(id);
  auto nll = [&](const std::vector<float>& logits) {
    double s = 0;
    for (size_t t = 0; t + 1 < text.size(); ++t) {
      const float* row = logits.data() + t * kVocab;
      const float mx = *std::max_element(row, row + kVocab);
      double z = 0;
      for (int64_t v = 0; v < kVocab; ++v) z += std::exp(static_cast<double>(row[v] - mx));
      s -= row[text[t + 1]] - mx - std::log(z);
    }
    return s / static_cast<double>(text.size() - 1);
  };
  // The prompt in one batch, then one token at a time, as generation runs:
  // within one batch every loop attends to its own K/V either way, the
  // difference shows on tokens fed after it.
  const int prompt = static_cast<int>(gen["prompt_ids"].size());
  auto [lf, a] = run(full, text, {prompt, 1});
  auto [ls, b] = run(shared, text, {prompt, 1});
  int same = 0;
  for (size_t t = 0; t < text.size(); ++t)
    same += test::argmax(lf.data() + t * kVocab, kVocab) == test::argmax(ls.data() + t * kVocab, kVocab);
  std::cout << "kv_share last: perplexity " << std::exp(nll(ls)) << " vs full KV " << std::exp(nll(lf)) << ", top-1 "
            << same << "/" << text.size() << ", max |shared - full| " << max_abs_diff(ls, lf) << "\n";
  EXPECT_GT(max_abs_diff(ls, lf), 0.0f) << "tokens after the first batch must see the shared (last-loop) KV";
  for (float v : ls) ASSERT_TRUE(std::isfinite(v));
  // The first position is the same computation either way.
  EXPECT_LT(max_abs_diff(std::span<const float>(lf).first(kVocab), std::span<const float>(ls).first(kVocab)), 1e-4f);
}

TEST_F(Ouro, BadOptionsAreRefusedWithAMessage) {
  auto expect = [](const std::map<std::string, std::string>& f, const std::string& fragment) {
    try {
      load(f);
      ADD_FAILURE() << "expected an error mentioning " << fragment;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect({{"loops", "5"}}, "loops must be a whole number from 1 to 4");
  expect({{"loops", "two"}}, "loops must be a number");
  expect({{"exit_threshold", "1.5"}}, "exit_threshold must be between 0 and 1");
  expect({{"exit_mode", "fast"}}, "exit_mode must be select or skip");
  expect({{"kv_share", "half"}}, "kv_share must be full or last");
  expect({{"flux", "1"}}, "unknown option 'flux'");
}

TEST(OuroOptions, OtherArchitecturesTakeNone) {
  REQUIRE_SHARED_MODEL(path, "random/llama-gqa.gguf");
  LoadOptions o;
  o.pool = test::test_pool(1);
  o.family = {{"loops", "2"}};
  try {
    load_model(std::make_shared<const gguf::File>(gguf::File::open(path)), o);
    FAIL() << "llama must refuse model options";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("takes no model options (given: loops)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace flatline
