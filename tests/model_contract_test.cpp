// The contract every architecture keeps, checked on every one of them: the
// same logits whatever the batching (one batch, token by token, uneven
// pieces, small chunks, several conversations in one batch); states that
// clone, save and load into the exact same continuation; bad token ids and
// context overflows that throw and change nothing; bad payloads rejected;
// traits that say what the state really does; snapshots that share their KV
// pages. Each architecture runs on a fixture from ../shared when present and
// always on a small model written by the random-GGUF writer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <set>

#include "convert_support.h"
#include "model_test_util.h"
#include "models/synthetic.h"
#include "test_support.h"
#include "util/error.h"

namespace flatline {
namespace {

using test::logits_in_pieces;
using test::max_abs_diff;

struct Arch {
  const char* name;
  std::function<std::string()> path;  // "" = fixture missing (skip)
};

void PrintTo(const Arch& a, std::ostream* os) { *os << a.name; }

std::string shared(const char* relative) { return test::shared_model(relative); }

std::string synthetic(const std::string& name, SyntheticModel m) {
  static std::map<std::string, std::string> written;
  auto& path = written[name];
  if (path.empty()) {
    path = test::temp_path("contract-" + name + ".gguf");
    m.n_vocab = 256;
    m.seed = 42;
    write_synthetic_model(path, m);
  }
  return path;
}

SyntheticModel tiny(const std::string& arch) { return test::tiny_synthetic(arch); }

const Arch kArchs[] = {
    {"rwkv7_tiny_trained", [] { return shared("tiny-rwkv7-834K-f32.gguf"); }},
    {"rwkv7_synthetic", [] { return synthetic("rwkv7", tiny("rwkv7")); }},
    {"llama_gqa", [] { return shared("random/llama-gqa.gguf"); }},
    {"llama_synthetic", [] { return synthetic("llama", tiny("llama")); }},
    {"gemma3", [] { return shared("random/gemma3.gguf"); }},
    {"gemma3_synthetic",
     [] {
       SyntheticModel m = tiny("gemma3");
       m.n_layer = 3;
       m.window = 5;
       m.window_pattern = {1, 0, 1};
       return synthetic("gemma3", m);
     }},
    {"mamba", [] { return shared("random/mamba.gguf"); }},
    {"mamba_synthetic", [] { return synthetic("mamba", tiny("mamba")); }},
    {"mamba2", [] { return shared("random/mamba2.gguf"); }},
    {"mamba2_synthetic", [] { return synthetic("mamba2", tiny("mamba2")); }},
    {"granitehybrid", [] { return shared("random/granitehybrid.gguf"); }},
    {"granitehybrid_moe", [] { return shared("random/granitehybrid-moe.gguf"); }},
    {"granitehybrid_synthetic",
     [] {
       SyntheticModel m = tiny("granitehybrid");
       m.layer_pattern = "MA";
       m.n_expert = 4, m.n_expert_used = 2, m.n_ff_shared = 32;
       return synthetic("granitehybrid", m);
     }},
    {"nemotron_h", [] { return shared("random/nemotron_h.gguf"); }},
    {"nemotron_h_moe_synthetic",
     [] {
       SyntheticModel m = tiny("nemotron_h_moe");
       m.n_layer = 3;
       m.layer_pattern = "MAF";
       m.n_expert = 4, m.n_expert_used = 2, m.n_ff_shared = 32;
       return synthetic("nemotron_h_moe", m);
     }},
    {"jamba", [] { return shared("random/jamba.gguf"); }},
    {"jamba_synthetic",
     [] {
       SyntheticModel m = tiny("jamba");
       m.layer_pattern = "AM";
       m.n_expert = 4, m.n_expert_used = 2;
       return synthetic("jamba", m);
     }},
    {"ouro_converted",
     [] {
       const std::string dir = shared("ouro/config.json");
       if (dir.empty()) return std::string();
       static const std::string path = [] {
         const std::string p = test::temp_path("contract-ouro.gguf");
         test::run_convert(test::shared_model("ouro"), p, "f32");
         return p;
       }();
       return path;
     }},
    {"ouro_synthetic_skip",
     [] {
       SyntheticModel m = tiny("ouro");
       m.n_loops = 3;
       m.exit_threshold = 0.5f;  // default exit mode skip
       return synthetic("ouro", m);
     }},
    {"demo_model", [] { return test::source_dir() + "/models/flatline-demo-kjv.gguf"; }},
};

class ModelContract : public ::testing::TestWithParam<Arch> {
 protected:
  void SetUp() override {
    path_ = GetParam().path();
    if (path_.empty()) GTEST_SKIP() << GetParam().name << ": fixture not found under ../shared/models (set FLATLINE_SHARED_DIR)";
    m_ = test::load_test_model(path_, DType::F32, 256, false, 1);
    V_ = m_.info().n_vocab;
    for (int i = 0; i < 70; ++i) ids_.push_back(static_cast<int32_t>((7 * i + 3) % std::min<int64_t>(V_, 251) + 3));
  }

  std::unique_ptr<ModelState> fresh(int64_t n_ctx = 128) const { return m_.new_state(n_ctx); }
  std::vector<int32_t> slice(size_t a, size_t b) const { return std::vector<int32_t>(ids_.begin() + a, ids_.begin() + b); }
  std::unique_ptr<ModelState> fed(size_t n, int64_t n_ctx = 128) {
    auto s = fresh(n_ctx);
    logits_in_pieces(m_, *s, slice(0, n), {3, 7});
    return s;
  }
  // Logits of ids_[from, to) fed in pieces of 5 after what `s` holds.
  std::vector<float> continue_from(ModelState& s, size_t from, size_t to = 40) {
    return logits_in_pieces(m_, s, slice(from, to), {5});
  }
  float tolerance(const std::vector<float>& logits) const {
    float peak = 1.0f;
    for (float v : logits) peak = std::max(peak, std::fabs(v));
    return 2e-5f * peak;
  }

  std::string path_;
  test::TestModel m_;
  int64_t V_ = 0;
  std::vector<int32_t> ids_;
};

TEST_P(ModelContract, TokenByTokenEqualsOneBatch) {
  auto whole = logits_in_pieces(m_, *fresh(), ids_, {70});
  for (const std::vector<int>& pieces : {std::vector<int>{1}, std::vector<int>{5, 17, 1, 41}, std::vector<int>{2, 3}}) {
    auto got = logits_in_pieces(m_, *fresh(), ids_, pieces);
    EXPECT_LT(max_abs_diff(got, whole), tolerance(whole)) << "pieces starting " << pieces[0];
  }
  // Chunks inside one forward: max_batch 6 cuts the 70 tokens into 12.
  auto small = test::load_test_model(path_, DType::F32, 6, false, 1);
  auto got = logits_in_pieces(small, *small.new_state(128), ids_, {70});
  EXPECT_LT(max_abs_diff(got, whole), tolerance(whole));
  for (float v : whole) ASSERT_TRUE(std::isfinite(v));
}

TEST_P(ModelContract, ConversationsInOneBatchEqualSeparateRuns) {
  // Three conversations at different depths, one forward: rows of one
  // sequence must not see another's state.
  auto a = fed(10), b = fed(3), c = fresh();
  auto a2 = a->clone(), b2 = b->clone(), c2 = c->clone();
  const std::vector<int32_t> ta = slice(10, 17), tb = slice(30, 31), tc = slice(40, 52);
  std::vector<float> la(ta.size() * V_), lb(V_), lc(V_);
  std::vector<SequenceInput> batch(3);
  batch[0] = {a.get(), ta, LogitsMode::All, la.data(), nullptr};
  batch[1] = {b.get(), tb, LogitsMode::Last, lb.data(), nullptr};
  batch[2] = {c.get(), tc, LogitsMode::Last, lc.data(), nullptr};
  ForwardArgs args;
  args.sequences = batch;
  m_.model->forward(args, *m_.ws);
  std::vector<float> ea(ta.size() * V_), eb(V_), ec(V_);
  m_.forward(*a2, ta, LogitsMode::All, ea.data());
  m_.forward(*b2, tb, LogitsMode::Last, eb.data());
  m_.forward(*c2, tc, LogitsMode::Last, ec.data());
  EXPECT_LT(max_abs_diff(la, ea), tolerance(ea));
  EXPECT_LT(max_abs_diff(lb, eb), tolerance(eb));
  EXPECT_LT(max_abs_diff(lc, ec), tolerance(ec));
  EXPECT_EQ(a->n_past(), 17);
  EXPECT_EQ(b->n_past(), 4);
  EXPECT_EQ(c->n_past(), 12);
  // And the states continue alike.
  EXPECT_LT(max_abs_diff(continue_from(*a, 17, 30), continue_from(*a2, 17, 30)), tolerance(ea));
}

TEST_P(ModelContract, CloneSaveLoadContinueIdentically) {
  auto s = fed(20);
  auto copy = s->clone();
  std::vector<uint8_t> payload;
  s->save(payload);
  auto restored = fresh();
  restored->load(payload);
  EXPECT_EQ(restored->n_past(), 20);
  std::vector<uint8_t> again;
  restored->save(again);
  EXPECT_EQ(again, payload) << "saving a loaded state gives the same bytes";
  auto x = continue_from(*s, 20), y = continue_from(*copy, 20), z = continue_from(*restored, 20);
  EXPECT_EQ(max_abs_diff(x, y), 0.0f);
  EXPECT_EQ(max_abs_diff(x, z), 0.0f);
}

TEST_P(ModelContract, LoadRejectsBadPayloadsAndKeepsTheState) {
  auto s = fed(20);
  std::vector<uint8_t> payload;
  s->save(payload);
  auto target = fed(10);
  auto reference = target->clone();
  auto expect_rejected = [&](std::vector<uint8_t> bad, const char* what) {
    EXPECT_THROW(target->load(bad), Error) << what;
    EXPECT_EQ(target->n_past(), 10) << what;
  };
  expect_rejected(std::vector<uint8_t>(payload.begin(), payload.end() - 1), "one byte short");
  auto longer = payload;
  longer.push_back(0);
  expect_rejected(longer, "one byte extra");
  expect_rejected(std::vector<uint8_t>(payload.begin(), payload.begin() + 6), "cut in the header");
  expect_rejected({}, "empty");
  auto bad_magic = payload;
  bad_magic[0] ^= 1;
  expect_rejected(bad_magic, "bad magic");
  auto bad_version = payload;
  bad_version[4] = 99;
  expect_rejected(bad_version, "unknown version");
  auto negative = payload;
  const int64_t minus = -5;
  std::memcpy(negative.data() + 8, &minus, 8);
  expect_rejected(negative, "negative token count");
  if (m_.model->traits().has_context_limit) {
    auto small = fresh(16);
    EXPECT_THROW(small->load(payload), Error) << "20 tokens into a 16-token context";
  }
  // A payload of another architecture (different layout).
  const std::string other = GetParam().name == std::string("mamba_synthetic") ? synthetic("rwkv7", tiny("rwkv7"))
                                                                             : synthetic("mamba", tiny("mamba"));
  auto o = test::load_test_model(other, DType::F32, 64, false, 1);
  auto os = o.new_state(128);
  std::vector<uint8_t> foreign;
  os->save(foreign);
  expect_rejected(foreign, "another model's layout");
  EXPECT_EQ(max_abs_diff(continue_from(*target, 10), continue_from(*reference, 10)), 0.0f);
}

TEST_P(ModelContract, BadTokenIdsChangeNothing) {
  auto s = fed(10);
  auto reference = s->clone();
  std::vector<float> logits(3 * V_, 7.0f);
  for (int32_t bad : {static_cast<int32_t>(V_), -1}) {
    std::vector<int32_t> ids = {5, 6, bad};
    try {
      m_.forward(*s, ids, LogitsMode::All, logits.data());
      ADD_FAILURE() << "token " << bad << " must be refused";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("token id " + std::to_string(bad) + " at index 2 is out of range"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(s->n_past(), 10);
  EXPECT_EQ(logits[0], 7.0f);
  // In a batch, a bad sequence stops the whole pass before any state moves.
  auto other = fed(4);
  const std::vector<int32_t> good = slice(4, 8), bad = {1, static_cast<int32_t>(V_) + 3};
  std::vector<float> l1(V_), l2(V_);
  std::vector<SequenceInput> batch = {{other.get(), good, LogitsMode::Last, l1.data(), nullptr},
                                      {s.get(), bad, LogitsMode::Last, l2.data(), nullptr}};
  ForwardArgs args;
  args.sequences = batch;
  EXPECT_THROW(m_.model->forward(args, *m_.ws), Error);
  EXPECT_EQ(other->n_past(), 4);
  EXPECT_EQ(max_abs_diff(continue_from(*s, 10), continue_from(*reference, 10)), 0.0f);
}

TEST_P(ModelContract, ContextOverflowChangesNothing) {
  if (!m_.model->traits().has_context_limit) {
    // No context limit: a state takes any number of tokens.
    auto s = fresh(16);
    EXPECT_EQ(s->n_ctx(), 0);
    logits_in_pieces(m_, *s, ids_, {70});
    EXPECT_EQ(s->n_past(), 70);
    return;
  }
  auto s = fed(20, 32);
  auto reference = s->clone();
  std::vector<float> logits(13 * V_, 7.0f);
  try {
    m_.forward(*s, slice(20, 33), LogitsMode::All, logits.data());
    FAIL() << "13 tokens after 20 in a context of 32 must overflow";
  } catch (const ContextOverflowError& e) {
    EXPECT_NE(std::string(e.what()).find("at most 12 more tokens fit"), std::string::npos) << e.what();
  }
  EXPECT_EQ(s->n_past(), 20);
  EXPECT_EQ(logits[0], 7.0f);
  auto x = continue_from(*s, 20, 32), y = continue_from(*reference, 20, 32);
  EXPECT_EQ(max_abs_diff(x, y), 0.0f);
  EXPECT_EQ(s->n_past(), 32);
}

TEST_P(ModelContract, TraitsSayWhatTheStateDoes) {
  const ModelTraits& t = m_.model->traits();
  const StateLayout& layout = m_.model->state_layout();
  EXPECT_EQ(t.has_context_limit, layout.has_kv());
  EXPECT_EQ(t.can_truncate, !layout.has_recurrent());
  EXPECT_EQ(t.generation, GenerationKind::Autoregressive);
  EXPECT_TRUE(t.causal);
  EXPECT_TRUE(t.prefix_reusable);
  EXPECT_EQ(fresh(64)->n_ctx(), t.has_context_limit ? 64 : 0);
  EXPECT_GE(t.state_fixed_bytes, layout.recurrent_bytes());
  EXPECT_EQ(t.state_bytes_per_token > 0, t.has_context_limit && std::any_of(layout.kv_layers.begin(), layout.kv_layers.end(),
                                                                             [](const KvLayerShape& k) { return k.window == 0; }));
  // What a state holds after n tokens stays within what the budget reserves.
  auto s = fed(60, 128);
  EXPECT_LE(s->memory().total(), m_.model->state_bytes(128));
  EXPECT_EQ(s->memory().fixed >= layout.recurrent_bytes(), true);
  // A full-attention model's KV grows by state_bytes_per_token per token (in
  // whole pages), one without any KV not at all.
  const uint64_t kv60 = s->memory().kv;  // one page per layer
  logits_in_pieces(m_, *s, std::vector<int32_t>(ids_.begin(), ids_.begin() + 58), {58});
  const uint64_t kv118 = s->memory().kv;  // two
  if (!layout.has_kv()) EXPECT_EQ(kv118, 0u);
  else if (std::all_of(layout.kv_layers.begin(), layout.kv_layers.end(), [](const KvLayerShape& k) { return k.window == 0; }))
    EXPECT_EQ(kv118 - kv60, KvPart::kPageRows * t.state_bytes_per_token);
  // Truncation works exactly when the traits say so.
  auto u = fed(30);
  EXPECT_EQ(u->truncate(25), t.can_truncate);
  if (t.can_truncate) {
    const auto fresh25 = continue_from(*fed(25), 25);
    EXPECT_LE(max_abs_diff(continue_from(*u, 25), fresh25), tolerance(fresh25));
  }
  else EXPECT_EQ(u->n_past(), 30);
  // reset() starts over.
  u->reset();
  EXPECT_EQ(u->n_past(), 0);
  EXPECT_EQ(max_abs_diff(continue_from(*u, 0, 12), continue_from(*fresh(), 0, 12)), 0.0f);
}

TEST_P(ModelContract, SnapshotsShareTheirKvPages) {
  if (!m_.model->traits().has_context_limit) GTEST_SKIP() << GetParam().name << " has no KV part";
  auto live = fed(40, 256);
  std::vector<std::unique_ptr<ModelState>> snapshots;
  for (int turn = 0; turn < 5; ++turn) {
    snapshots.push_back(live->clone());
    EXPECT_EQ(snapshots.back()->memory().kv_shared, snapshots.back()->memory().kv) << "a fresh clone shares every page";
    logits_in_pieces(m_, *live, slice(40 + turn * 6, 46 + turn * 6), {6});
  }
  // Unique pages over the live state and its snapshots: about one KV plus the
  // one partly filled page each snapshot had to keep.
  std::set<const void*> pages;
  uint64_t unique = 0;
  auto count = [&](const ModelState& st) {
    st.for_each_kv_page([&](const void* p, uint64_t b) {
      if (pages.insert(p).second) unique += b;
    });
  };
  count(*live);
  for (auto& s : snapshots) count(*s);
  uint64_t one_page_per_layer = 0;
  const KvPart& kv = live->kv();
  for (int64_t l = 0; l < kv.n_layers(); ++l) one_page_per_layer += kv.page_bytes(l);
  EXPECT_LE(unique, live->memory().kv + 5 * one_page_per_layer);
  EXPECT_LT(unique, 6 * live->memory().kv) << "snapshots must not each copy the KV";
  // The snapshots still continue as if nothing had been appended after them.
  auto again = snapshots[2]->clone();
  EXPECT_EQ(max_abs_diff(continue_from(*snapshots[2], 52, 60), continue_from(*again, 52, 60)), 0.0f);
}

INSTANTIATE_TEST_SUITE_P(EveryArchitecture, ModelContract, ::testing::ValuesIn(kArchs),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace flatline
