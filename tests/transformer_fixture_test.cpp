// Llama and Gemma 3 against llama.cpp's logits for the random-weight
// fixtures in ../shared/models/random (see its README.md): every position of
// the standard 64-token sequence, batched, token by token and in uneven
// chunks, with each KV cache type.
#include <gtest/gtest.h>

#include "test_support.h"
#include "transformer_test_util.h"
#include "util/error.h"

namespace flatline {
namespace {

using test::load_transformer;
using test::logits_in_pieces;
using test::max_abs_diff;
using test::standard_ids;

struct Fixture {
  const char* gguf;
  const char* logits;
};

class TransformerFixture : public ::testing::TestWithParam<Fixture> {};

TEST_P(TransformerFixture, BatchMatchesLlamaCpp) {
  REQUIRE_SHARED_MODEL(path, std::string("random/") + GetParam().gguf);
  REQUIRE_SHARED_MODEL(ref_path, std::string("random/") + GetParam().logits);
  auto m = load_transformer(path);
  auto ref = test::read_f32_file(ref_path);
  auto state = m.model->new_state(128);
  auto got = logits_in_pieces(*m.model, *state, standard_ids(), {64});
  float diff = max_abs_diff(got, ref);
  std::cout << GetParam().gguf << ": max |flatline - llama.cpp| over 64 x 512 logits = " << diff << "\n";
  EXPECT_LT(diff, 1e-3f);
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
