// Quantized RWKV-7 against llama.cpp: every supported weight type, on a
// file flatline writes deterministically, compared with the logits llama.cpp
// computed from the same bytes (tests/data/rwkv7-synth/README.md).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "gguf/gguf.h"
#include "models/model.h"
#include "models/synthetic.h"
#include "test_support.h"

namespace flatline {
namespace {

struct Case {
  const char* type;
  uint64_t file_fnv;  // of the file llama.cpp read
  float max_diff;     // bound on |flatline - llama.cpp|
};

// Bounds: a few times what was measured (README.md), far below the
// quantization error itself (flatline or llama.cpp vs the F32 model).
const Case kCases[] = {
    {"f32", 0x41a8c5caa56f3351ull, 1e-4f},  {"f16", 0x3f717f444c5c39ebull, 5e-3f},
    {"bf16", 0xf10e014de115c666ull, 4e-2f}, {"q8_0", 0xb12087d24d34fd40ull, 8e-2f},
    {"q4_0", 0xef60e710be446ff0ull, 1e-1f}, {"q4_1", 0x4a9816f070eb0b92ull, 1e-1f},
    {"q5_0", 0x82126bb53c5df322ull, 1e-1f}, {"q5_1", 0xa9425f0b38a54ad8ull, 1e-1f},
    {"q4_k", 0x73ab7c8054c01484ull, 1e-1f}, {"q5_k", 0x87a6df5024a50832ull, 1e-1f},
    {"q6_k", 0x840fa39c66742257ull, 1e-1f},
};

uint64_t fnv1a(const std::vector<uint8_t>& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : bytes) {
    h ^= b;
    h *= 1099511628211ull;
  }
  return h;
}

std::vector<int32_t> tokens() {
  std::vector<int32_t> ids;
  for (int i = 0; i < 32; ++i) ids.push_back((37 * i + 11) % 256);
  return ids;
}

class QuantVsLlamaCpp : public ::testing::TestWithParam<Case> {};

TEST_P(QuantVsLlamaCpp, LogitsCloseAndTopTokenAgrees) {
  const Case c = GetParam();
  std::string dir = test::source_dir() + "/tests/data/rwkv7-synth/";
  auto expected = test::read_f32_file(dir + c.type + ".llamacpp-logits.f32");
  ASSERT_EQ(expected.size(), 32u * 256);

  SyntheticModel shape = synthetic_preset("rwkv7", "0.1b");
  shape.n_embd = 256;
  shape.n_layer = 2;
  shape.n_vocab = 256;
  shape.n_ff = 1024;
  shape.rank_decay = shape.rank_iclr = shape.rank_value = shape.rank_gate = 32;
  shape.type = *dtype_from_name(c.type);
  shape.seed = 1;
  std::string path = test::temp_path(std::string("synth-") + c.type + ".gguf");
  write_synthetic_model(path, shape);
  ASSERT_EQ(fnv1a(test::read_file(path)), c.file_fnv)
      << "the synthetic generator no longer writes the file llama.cpp's logits were computed from; "
         "regenerate them as described in tests/data/rwkv7-synth/README.md";

  auto file = std::make_shared<gguf::File>(gguf::File::open(path));
  LoadOptions opts;
  opts.pool = std::make_shared<ThreadPool>(2);
  auto model = load_model(file, opts);
  auto st = model->new_state(0);
  auto ids = tokens();
  std::vector<float> logits(32 * 256);
  model->forward(*st, ids, LogitsMode::All, logits.data(), *model->new_workspace());

  float worst = 0;
  int agree = 0;
  for (int t = 0; t < 32; ++t) {
    const float* a = logits.data() + t * 256;
    const float* b = expected.data() + t * 256;
    for (int v = 0; v < 256; ++v) worst = std::max(worst, std::fabs(a[v] - b[v]));
    agree += std::max_element(a, a + 256) - a == std::max_element(b, b + 256) - b;
  }
  std::printf("  %-5s max |flatline - llama.cpp| = %.3g, top-1 agreement %d/32\n", c.type, worst, agree);
  EXPECT_LE(worst, c.max_diff);
  EXPECT_GE(agree, 30);
  std::filesystem::remove(path);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantVsLlamaCpp, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.type); });

}  // namespace
}  // namespace flatline
