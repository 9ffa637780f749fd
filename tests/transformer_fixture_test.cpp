// Llama and Gemma 3 against llama.cpp's logits for the random-weight
// fixtures in ../shared/models/random (see its README.md): every position of
// the standard 64-token sequence, batched, token by token and in uneven
// chunks, with each KV cache type.
#include <gtest/gtest.h>

#include "test_support.h"
#include "model_test_util.h"
#include "util/error.h"

namespace flatline {
namespace {

using test::load_test_model;
using test::logits_in_pieces;
using test::max_abs_diff;
using test::standard_ids;

struct Fixture {
  const char* gguf;
  const char* logits;
};

void PrintTo(const Fixture& s, std::ostream* os) { *os << s.gguf; }

class TransformerFixture : public ::testing::TestWithParam<Fixture> {};

TEST_P(TransformerFixture, BatchMatchesLlamaCpp) {
  REQUIRE_SHARED_MODEL(path, std::string("random/") + GetParam().gguf);
  REQUIRE_SHARED_MODEL(ref_path, std::string("random/") + GetParam().logits);
  auto m = load_test_model(path);
  auto ref = test::read_f32_file(ref_path);
  auto state = m.model->new_state(128);
  auto got = logits_in_pieces(m, *state, standard_ids(), {64});
  float diff = max_abs_diff(got, ref);
  std::cout << GetParam().gguf << ": max |flatline - llama.cpp| over 64 x 512 logits = " << diff << "\n";
  EXPECT_LT(diff, 1e-3f);
}

TEST_P(TransformerFixture, TokenByTokenAndChunksAgreeWithOneBatch) {
  REQUIRE_SHARED_MODEL(path, std::string("random/") + GetParam().gguf);
  REQUIRE_SHARED_MODEL(ref_path, std::string("random/") + GetParam().logits);
  auto ref = test::read_f32_file(ref_path);
  // One thread: 64 single-token steps on a pool of two are slow on a busy machine.
  auto m = load_test_model(path, DType::F32, 256, false, 1);
  auto whole = logits_in_pieces(m, *m.model->new_state(64), standard_ids(), {64});
  for (const std::vector<int>& pieces : {std::vector<int>{1}, std::vector<int>{5, 17, 1, 41}, std::vector<int>{2, 3}}) {
    auto got = logits_in_pieces(m, *m.model->new_state(64), standard_ids(), pieces);
    EXPECT_LT(max_abs_diff(got, whole), 1e-4f) << "pieces starting " << pieces[0];
    EXPECT_LT(max_abs_diff(got, ref), 1e-3f) << "pieces starting " << pieces[0];
  }
  // Internal chunking: max_batch 7 splits the 64 tokens into 10 matmul chunks.
  auto small = load_test_model(path, DType::F32, 7, false, 1);
  auto got = logits_in_pieces(small, *small.model->new_state(64), standard_ids(), {64});
  EXPECT_LT(max_abs_diff(got, whole), 1e-4f);
}

TEST_P(TransformerFixture, F16AndQ8KvCachesStayClose) {
  REQUIRE_SHARED_MODEL(path, std::string("random/") + GetParam().gguf);
  REQUIRE_SHARED_MODEL(ref_path, std::string("random/") + GetParam().logits);
  auto ref = test::read_f32_file(ref_path);
  auto f16 = load_test_model(path, DType::F16);
  auto got16 = logits_in_pieces(f16, *f16.model->new_state(64), standard_ids(), {64});
  float d16 = max_abs_diff(got16, ref);
  std::cout << GetParam().gguf << ": F16 KV max diff to llama.cpp (F32 KV) = " << d16 << "\n";
  EXPECT_LT(d16, 2e-2f);
  const std::string arch = f16.model->info().architecture;
  const int64_t head_dim = f16.file->get_int(arch + ".attention.key_length",
                                             f16.model->info().n_embd / f16.file->get_int(arch + ".attention.head_count"));
  if (head_dim % 32 != 0) {
    try {
      load_test_model(path, DType::Q8_0);
      ADD_FAILURE() << "Q8_0 KV with head dim " << head_dim << " must be rejected";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("multiples of 32"), std::string::npos) << e.what();
    }
    return;
  }
  auto q8 = load_test_model(path, DType::Q8_0);
  auto got8 = logits_in_pieces(q8, *q8.model->new_state(64), standard_ids(), {64});
  float d8 = max_abs_diff(got8, got16);
  std::cout << GetParam().gguf << ": Q8_0 KV max diff to F16 KV = " << d8 << "\n";
  EXPECT_LT(d8, 0.1f);
  EXPECT_GT(d8, 0.0f);  // it really used a different cache
}

INSTANTIATE_TEST_SUITE_P(Random, TransformerFixture,
                         ::testing::Values(Fixture{"llama-gqa.gguf", "llama-gqa.logits.f32"},
                                           Fixture{"llama-rope-scaled.gguf", "llama-rope-scaled.logits.f32"},
                                           Fixture{"gemma3.gguf", "gemma3.exact-gelu.logits.f32"}),
                         [](const auto& info) {
                           std::string s = info.param.gguf;
                           s = s.substr(0, s.find('.'));
                           for (auto& c : s) if (c == '-') c = '_';
                           return s;
                         });

}  // namespace
}  // namespace flatline
