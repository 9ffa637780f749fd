// What is particular to transformer states (the contract every state keeps,
// clone / save / load / bad input, is in model_contract_test.cpp): each KV
// type against llama.cpp's logits, truncation (also of sliding-window layers
// whose unseen pages were released), logit modes, window layers' sizes.
#include <gtest/gtest.h>

#include <cstring>

#include "test_support.h"
#include "model_test_util.h"
#include "util/error.h"

namespace flatline {
namespace {

using test::load_test_model;
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
    m_ = load_test_model(path_, GetParam().kv_type, GetParam().max_batch, GetParam().swa_full, 1);
    ref_ = test::read_f32_file(ref);
    ids_ = standard_ids();
    V_ = m_.model->info().n_vocab;
  }

  // Logits of tokens [from, 64) fed (in pieces of 5) after what `state` holds.
  std::vector<float> continue_from(ModelState& state, int from) {
    std::vector<int32_t> rest(ids_.begin() + from, ids_.end());
    return logits_in_pieces(m_, state, rest, {5});
  }
  std::span<const float> reference_from(int from) const {
    return std::span<const float>(ref_).subspan(static_cast<size_t>(from) * V_);
  }
  std::unique_ptr<ModelState> fed(int n_tokens, int64_t n_ctx = 64) {
    auto s = m_.model->new_state(n_ctx);
    logits_in_pieces(m_, *s, std::vector<int32_t>(ids_.begin(), ids_.begin() + n_tokens), {3, 7});
    return s;
  }

  std::string path_;
  test::TestModel m_;
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

TEST_P(TransformerStateTest, TruncateDropsTheNewestTokens) {
  const bool paged_window = std::string(GetParam().gguf) == "gemma3.gguf" && !GetParam().swa_full;
  if (paged_window) {
    // Window-8 layers release the pages (64 positions) no later query sees.
    // After 160 tokens they hold positions 128 on: truncating to 140 keeps
    // what position 140 sees (133 on), to 130 it would need 123.
    std::vector<int32_t> ids = ids_;
    for (int i = 0; i < 96; ++i) ids.push_back(ids_[i % 64]);
    auto s = m_.model->new_state(256);
    logits_in_pieces(m_, *s, ids, {37});
    EXPECT_FALSE(s->truncate(130));
    EXPECT_EQ(s->n_past(), 160);
    ASSERT_TRUE(s->truncate(140));
    EXPECT_EQ(s->n_past(), 140);
    auto fresh = m_.model->new_state(256);
    std::vector<int32_t> head(ids.begin(), ids.begin() + 140), tail(ids.begin() + 140, ids.end());
    logits_in_pieces(m_, *fresh, head, {70});
    EXPECT_LT(max_abs_diff(logits_in_pieces(m_, *s, tail, {5}), logits_in_pieces(m_, *fresh, tail, {5})), 1e-4f);
    return;
  }
  auto s = fed(64);
  EXPECT_FALSE(s->truncate(65));
  ASSERT_TRUE(s->truncate(kSplit));
  EXPECT_EQ(s->n_past(), kSplit);
  auto fresh = fed(kSplit);
  EXPECT_EQ(max_abs_diff(continue_from(*s, kSplit), continue_from(*fresh, kSplit)), 0.0f);
  ASSERT_TRUE(s->truncate(0));
  EXPECT_EQ(max_abs_diff(continue_from(*s, 0), continue_from(*m_.model->new_state(64), 0)), 0.0f);
}

TEST_P(TransformerStateTest, LastAndNoneLogitModes) {
  auto s = m_.model->new_state(64);
  std::vector<float> last(V_), sentinel(V_, 3.0f);
  m_.forward(*s, std::span<const int32_t>(ids_.data(), 30), LogitsMode::None, sentinel.data());
  EXPECT_EQ(sentinel[0], 3.0f);
  m_.forward(*s, std::span<const int32_t>(ids_.data() + 30, 9), LogitsMode::Last, last.data());
  auto all = logits_in_pieces(m_, *m_.model->new_state(64),
                              std::vector<int32_t>(ids_.begin(), ids_.begin() + 39), {39});
  EXPECT_LT(max_abs_diff(last, std::span<const float>(all).subspan(38 * V_)), 1e-4f);
}

INSTANTIATE_TEST_SUITE_P(
    Random, TransformerStateTest,
    ::testing::Values(Case{"llama_f32", "llama-gqa.gguf", "llama-gqa.logits.f32", DType::F32, 256, false},
                      Case{"llama_f16_batch8", "llama-rope-scaled.gguf", "llama-rope-scaled.logits.f32", DType::F16, 8, false},
                      Case{"gemma3_paged", "gemma3.gguf", "gemma3.exact-gelu.logits.f32", DType::F32, 4, false},
                      Case{"gemma3_full", "gemma3.gguf", "gemma3.exact-gelu.logits.f32", DType::F32, 4, true},
                      Case{"gemma3_q8", "gemma3.gguf", "gemma3.exact-gelu.logits.f32", DType::Q8_0, 256, false}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(TransformerStateShape, WindowLayersMakeGemmaStatesSmaller) {
  REQUIRE_SHARED_MODEL(path, "random/gemma3.gguf");
  auto paged = load_test_model(path, DType::F16, 4, false, 1);
  auto full = load_test_model(path, DType::F16, 4, true, 1);
  // 5 of the 6 layers slide with window 8: at most 3 pages of 64 positions
  // each (the window can straddle two, plus the one being filled).
  const uint64_t per_layer_token = 2 * 1 * 32 * 2;  // K and V, 1 KV head, dim 32, F16
  EXPECT_EQ(paged.model->traits().state_bytes_per_token, per_layer_token);
  EXPECT_EQ(full.model->traits().state_bytes_per_token, 6 * per_layer_token);
  EXPECT_EQ(full.model->state_bytes(1000) - paged.model->state_bytes(1000), 5 * (1024 - 192) * per_layer_token);
}

TEST(TransformerStateShape, StatesOfOtherModelsAreRejected) {
  REQUIRE_SHARED_MODEL(llama, "random/llama-gqa.gguf");
  REQUIRE_SHARED_MODEL(gemma, "random/gemma3.gguf");
  auto a = load_test_model(llama, DType::F32, 256, false, 1);
  auto b = load_test_model(gemma, DType::F32, 256, false, 1);
  auto c = load_test_model(llama, DType::F16, 256, false, 1);
  auto s = b.model->new_state(16);
  std::vector<float> logits(512);
  int32_t id = 5;
  EXPECT_THROW(a.forward(*s, std::span<const int32_t>(&id, 1), LogitsMode::Last, logits.data()), Error);
  auto s32 = a.model->new_state(16);
  EXPECT_THROW(c.forward(*s32, std::span<const int32_t>(&id, 1), LogitsMode::Last, logits.data()), Error);
}

}  // namespace
}  // namespace flatline
