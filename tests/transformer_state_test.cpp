// Transformer states as values: clone, save/load and truncate must give the
// same continuation as never having stopped; bad payloads and context
// overflows throw and leave the state untouched. Runs on the llama.cpp
// fixtures, so the continuations are also checked against llama.cpp's logits.
#include <gtest/gtest.h>

#include <cstring>

#include "models/transformer_base.h"
#include "test_support.h"
#include "transformer_test_util.h"
#include "util/error.h"

namespace flatline {
namespace {

using test::load_transformer;
using test::logits_in_pieces;
using test::max_abs_diff;
using test::standard_ids;

constexpr int kSplit = 40;  // tokens fed before the state is cloned / saved / truncated

struct Case {
  const char* name;
  const char* gguf;
  const char* logits;
  DType kv_type;
  int64_t max_batch;  // gemma3 with 4: its window-8 layers become rings of 11 positions
  bool swa_full;
};

void PrintTo(const Case& s, std::ostream* os) { *os << s.name; }

class TransformerStateTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    path_ = test::shared_model(std::string("random/") + GetParam().gguf);
    std::string ref = test::shared_model(std::string("random/") + GetParam().logits);
    if (path_.empty() || ref.empty()) GTEST_SKIP() << "fixture ../shared/models/random/" << GetParam().gguf << " not found";
    m_ = load_transformer(path_, GetParam().kv_type, GetParam().max_batch, GetParam().swa_full, 1);
    ref_ = test::read_f32_file(ref);
    ids_ = standard_ids();
    V_ = m_.model->info().n_vocab;
  }

  // Logits of tokens [from, 64) fed (in pieces of 5) after what `state` holds.
  std::vector<float> continue_from(ModelState& state, int from) {
    std::vector<int32_t> rest(ids_.begin() + from, ids_.end());
    return logits_in_pieces(*m_.model, state, rest, {5});
  }
  std::span<const float> reference_from(int from) const {
    return std::span<const float>(ref_).subspan(static_cast<size_t>(from) * V_);
  }
  std::unique_ptr<ModelState> fed(int n_tokens, int64_t n_ctx = 64) {
    auto s = m_.model->new_state(n_ctx);
    logits_in_pieces(*m_.model, *s, std::vector<int32_t>(ids_.begin(), ids_.begin() + n_tokens), {3, 7});
    return s;
  }

  std::string path_;
  test::LoadedModel m_;
  std::vector<float> ref_;
  std::vector<int32_t> ids_;
  int64_t V_ = 0;
};

TEST_P(TransformerStateTest, FreshRunMatchesLlamaCpp) {
  auto s = m_.model->new_state(64);
  auto got = continue_from(*s, 0);
  const DType t = GetParam().kv_type;
  const float tol = t == DType::F32 ? 1e-3f : t == DType::F16 ? 2e-2f : 0.15f;
  EXPECT_LT(max_abs_diff(got, ref_), tol);
}

TEST_P(TransformerStateTest, CloneContinuesIdentically) {
  auto s = fed(kSplit);
  auto copy = s->clone();
  EXPECT_EQ(copy->n_past(), kSplit);
  EXPECT_EQ(copy->n_ctx(), 64);
  auto a = continue_from(*s, kSplit);
  auto b = continue_from(*copy, kSplit);
  EXPECT_EQ(max_abs_diff(a, b), 0.0f);
  if (GetParam().kv_type == DType::F32) {
    EXPECT_LT(max_abs_diff(a, reference_from(kSplit)), 1e-3f);
  }
}

TEST_P(TransformerStateTest, SaveLoadContinuesIdentically) {
  auto s = fed(kSplit);
  std::vector<uint8_t> payload;
  s->save(payload);
  auto restored = m_.model->new_state(64);
  restored->load(payload);
  EXPECT_EQ(restored->n_past(), kSplit);
  // A second save of the restored state is byte-identical.
  std::vector<uint8_t> again;
  restored->save(again);
  EXPECT_EQ(again, payload);
  auto a = continue_from(*s, kSplit);
  auto b = continue_from(*restored, kSplit);
  EXPECT_EQ(max_abs_diff(a, b), 0.0f);
}

TEST_P(TransformerStateTest, LoadRejectsBadPayloadsAndKeepsTheState) {
  auto s = fed(kSplit);
  std::vector<uint8_t> payload;
  s->save(payload);
  auto target = fed(10);
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
  auto wrong_type = payload;
  uint32_t other = static_cast<uint32_t>(GetParam().kv_type == DType::F32 ? DType::F16 : DType::F32);
  std::memcpy(wrong_type.data() + 4, &other, 4);
  expect_rejected(wrong_type, "other KV type");
  auto too_many = payload;
  int64_t n = 1000;
  std::memcpy(too_many.data() + 8, &n, 8);
  expect_rejected(too_many, "more tokens than fit");
  // A state of a smaller context cannot take 40 tokens.
  auto small = m_.model->new_state(32);
  EXPECT_THROW(small->load(payload), Error);
  // The target still continues exactly as a fresh 10-token state does.
  auto fresh = fed(10);
  EXPECT_EQ(max_abs_diff(continue_from(*target, 10), continue_from(*fresh, 10)), 0.0f);
}

TEST_P(TransformerStateTest, TruncateDropsTheNewestTokens) {
  auto s = fed(64);
  const bool ring = std::string(GetParam().gguf) == "gemma3.gguf" && !GetParam().swa_full && GetParam().max_batch < 64;
  if (ring) {
    // Window 8 in a ring of 8 - 1 + 4 positions: going back more than
    // max_batch = 4 tokens would need keys the ring has overwritten.
    EXPECT_FALSE(s->truncate(kSplit));
    EXPECT_EQ(s->n_past(), 64);
    ASSERT_TRUE(s->truncate(61));
    EXPECT_EQ(s->n_past(), 61);
    EXPECT_FALSE(s->truncate(59));  // now 61 - 4 is the furthest back
    EXPECT_LT(max_abs_diff(continue_from(*s, 61), reference_from(61)), 1e-3f);
    return;
  }
  EXPECT_FALSE(s->truncate(65));
  ASSERT_TRUE(s->truncate(kSplit));
  EXPECT_EQ(s->n_past(), kSplit);
  auto fresh = fed(kSplit);
  EXPECT_EQ(max_abs_diff(continue_from(*s, kSplit), continue_from(*fresh, kSplit)), 0.0f);
  ASSERT_TRUE(s->truncate(0));
  EXPECT_EQ(max_abs_diff(continue_from(*s, 0), continue_from(*m_.model->new_state(64), 0)), 0.0f);
}

TEST_P(TransformerStateTest, OverflowThrowsAndKeepsTheState) {
  auto s = fed(20, 32);
  std::vector<float> logits(13 * V_, 7.0f);
  std::vector<int32_t> more(ids_.begin() + 20, ids_.begin() + 33);
  try {
    m_.model->forward(*s, more, LogitsMode::All, logits.data());
    FAIL() << "13 tokens after 20 in a context of 32 must overflow";
  } catch (const ContextOverflowError& e) {
    EXPECT_NE(std::string(e.what()).find("at most 12 more tokens fit"), std::string::npos) << e.what();
  }
  EXPECT_EQ(s->n_past(), 20);
  EXPECT_EQ(logits[0], 7.0f);
  // Exactly filling the context works and continues as if nothing happened.
  more.pop_back();
  auto fresh = fed(20, 32);
  std::vector<float> a(12 * V_), b(12 * V_);
  m_.model->forward(*s, more, LogitsMode::All, a.data());
  m_.model->forward(*fresh, more, LogitsMode::All, b.data());
  EXPECT_EQ(max_abs_diff(a, b), 0.0f);
  EXPECT_EQ(s->n_past(), 32);
  int32_t one = ids_[32];
  EXPECT_THROW(m_.model->forward(*s, std::span<const int32_t>(&one, 1), LogitsMode::Last, a.data()),
               ContextOverflowError);
}

TEST_P(TransformerStateTest, BadTokenThrowsAndKeepsTheState) {
  auto s = fed(10);
  std::vector<int32_t> bad = {5, 6, static_cast<int32_t>(V_)};
  std::vector<float> logits(3 * V_);
  EXPECT_THROW(m_.model->forward(*s, bad, LogitsMode::All, logits.data()), Error);
  bad[2] = -1;
  EXPECT_THROW(m_.model->forward(*s, bad, LogitsMode::All, logits.data()), Error);
  EXPECT_EQ(s->n_past(), 10);
}

TEST_P(TransformerStateTest, LastAndNoneLogitModes) {
  auto s = m_.model->new_state(64);
  std::vector<float> last(V_), sentinel(V_, 3.0f);
  m_.model->forward(*s, std::span<const int32_t>(ids_.data(), 30), LogitsMode::None, sentinel.data());
  EXPECT_EQ(sentinel[0], 3.0f);
  m_.model->forward(*s, std::span<const int32_t>(ids_.data() + 30, 9), LogitsMode::Last, last.data());
  auto all = logits_in_pieces(*m_.model, *m_.model->new_state(64),
                              std::vector<int32_t>(ids_.begin(), ids_.begin() + 39), {39});
  EXPECT_LT(max_abs_diff(last, std::span<const float>(all).subspan(38 * V_)), 1e-4f);
}

TEST_P(TransformerStateTest, ResetStartsOver) {
  auto s = fed(30);
  s->reset();
  EXPECT_EQ(s->n_past(), 0);
  EXPECT_EQ(max_abs_diff(continue_from(*s, 0), continue_from(*m_.model->new_state(64), 0)), 0.0f);
}

TEST_P(TransformerStateTest, SizesAreExact) {
  for (int64_t n_ctx : {1, 7, 64, 1000}) {
    auto s = m_.model->new_state(n_ctx);
    EXPECT_EQ(s->memory_bytes(), m_.model->state_bytes(n_ctx)) << n_ctx;
    EXPECT_EQ(s->n_ctx(), n_ctx);
  }
  EXPECT_GT(m_.model->kv_bytes_per_token(), 0u);
  // Growing the context by one token costs kv_bytes_per_token (past the ring sizes).
  EXPECT_EQ(m_.model->state_bytes(1001) - m_.model->state_bytes(1000), m_.model->kv_bytes_per_token());
}

INSTANTIATE_TEST_SUITE_P(
    Random, TransformerStateTest,
    ::testing::Values(Case{"llama_f32", "llama-gqa.gguf", "llama-gqa.logits.f32", DType::F32, 256, false},
                      Case{"llama_f16_batch8", "llama-rope-scaled.gguf", "llama-rope-scaled.logits.f32", DType::F16, 8, false},
                      Case{"gemma3_ring", "gemma3.gguf", "gemma3.exact-gelu.logits.f32", DType::F32, 4, false},
                      Case{"gemma3_full", "gemma3.gguf", "gemma3.exact-gelu.logits.f32", DType::F32, 4, true},
                      Case{"gemma3_q8", "gemma3.gguf", "gemma3.exact-gelu.logits.f32", DType::Q8_0, 256, false}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(TransformerStateShape, RingLayersMakeGemmaStatesSmaller) {
  REQUIRE_SHARED_MODEL(path, "random/gemma3.gguf");
  auto ring = load_transformer(path, DType::F16, 4, false, 1);
  auto full = load_transformer(path, DType::F16, 4, true, 1);
  // 5 of the 6 layers slide with window 8: they keep 8 - 1 + 4 = 11 positions.
  const uint64_t per_layer_token = 2 * 1 * 32 * 2;  // K and V, 1 KV head, dim 32, F16
  EXPECT_EQ(ring.model->kv_bytes_per_token(), per_layer_token);
  EXPECT_EQ(full.model->kv_bytes_per_token(), 6 * per_layer_token);
  EXPECT_EQ(full.model->state_bytes(1000) - ring.model->state_bytes(1000), 5 * (1000 - 11) * per_layer_token);
}

TEST(TransformerStateShape, StatesOfOtherModelsAreRejected) {
  REQUIRE_SHARED_MODEL(llama, "random/llama-gqa.gguf");
  REQUIRE_SHARED_MODEL(gemma, "random/gemma3.gguf");
  auto a = load_transformer(llama, DType::F32, 256, false, 1);
  auto b = load_transformer(gemma, DType::F32, 256, false, 1);
  auto c = load_transformer(llama, DType::F16, 256, false, 1);
  auto s = b.model->new_state(16);
  std::vector<float> logits(512);
  int32_t id = 5;
  EXPECT_THROW(a.model->forward(*s, std::span<const int32_t>(&id, 1), LogitsMode::Last, logits.data()), Error);
  auto s32 = a.model->new_state(16);
  EXPECT_THROW(c.model->forward(*s32, std::span<const int32_t>(&id, 1), LogitsMode::Last, logits.data()), Error);
}

}  // namespace
}  // namespace flatline
