// The hybrids (Granite 4.0-H dense and MoE, Nemotron-H, Nemotron-H MoE,
// Jamba) against llama.cpp: the random-weight fixtures of ../shared/models/
// random at every position through both paths, and variants written here by
// flatline's random-GGUF writer (other shapes, seeds, group and expert
// counts, RoPE, latent experts) whose llama.cpp logits are in
// tests/data/hybrid-variants (README there says how they were made). Also:
// the fixtures re-quantized by `flatline quantize` to Q8_0 and Q4_K against
// llama.cpp on the same bytes, and that only the chosen experts count as
// read per token.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "convert/requantize.h"
#include "model_test_util.h"
#include "models/synthetic.h"
#include "tensor/kernels.h"
#include "test_support.h"

namespace flatline {
namespace {

using test::logits_in_pieces;
using test::max_abs_diff;
using test::standard_ids;

struct Fixture {
  const char* name;
};

void PrintTo(const Fixture& f, std::ostream* os) { *os << f.name; }

class HybridFixture : public ::testing::TestWithParam<Fixture> {};

TEST_P(HybridFixture, BothPathsMatchLlamaCpp) {
  const std::string name = GetParam().name;
  REQUIRE_SHARED_MODEL(path, "random/" + name + ".gguf");
  REQUIRE_SHARED_MODEL(ref_path, "random/" + name + ".logits.f32");
  auto ref = test::read_f32_file(ref_path);
  auto m = test::load_test_model(path, DType::F32, 256, false, 2);
  auto batch = logits_in_pieces(m, *m.new_state(128), standard_ids(), {64});
  auto small = test::load_test_model(path, DType::F32, 7, false, 2);
  auto chunks = logits_in_pieces(small, *small.new_state(128), standard_ids(), {64});
  auto one = logits_in_pieces(m, *m.new_state(128), standard_ids(), {1});
  const float db = max_abs_diff(batch, ref), dc = max_abs_diff(chunks, ref), d1 = max_abs_diff(one, ref);
  std::cout << name << ": max |flatline - llama.cpp| over 64 x 512: prompt " << db << ", chunks of 7 " << dc
            << ", token by token " << d1 << "\n";
  EXPECT_LT(db, 1e-3f);
  EXPECT_LT(dc, 1e-3f);
  EXPECT_LT(d1, 1e-3f);
}

TEST_P(HybridFixture, StateHasBothParts) {
  const std::string name = GetParam().name;
  REQUIRE_SHARED_MODEL(path, "random/" + name + ".gguf");
  auto m = test::load_test_model(path, DType::F32, 256, false, 1);
  const ModelTraits& t = m.model->traits();
  EXPECT_TRUE(t.has_context_limit);
  EXPECT_FALSE(t.can_truncate) << "a recurrent part cannot be rolled back";
  EXPECT_GT(t.state_bytes_per_token, 0u);
  EXPECT_GT(m.model->state_layout().recurrent_bytes(), 0u);
  auto s = m.new_state(128);
  logits_in_pieces(m, *s, standard_ids(), {64});
  EXPECT_EQ(s->memory().kv, KvPart::kPageRows * t.state_bytes_per_token);  // 64 positions: one page per attention layer
}

INSTANTIATE_TEST_SUITE_P(Random, HybridFixture,
                         ::testing::Values(Fixture{"granitehybrid"}, Fixture{"granitehybrid-moe"}, Fixture{"nemotron_h"},
                                           Fixture{"jamba"}),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

// ---------------------------------------------------------------------------
// Variants the fixtures do not cover, with llama.cpp's logits recorded here.

struct Variant {
  const char* name;
  SyntheticModel model;
  uint64_t file_fnv;  // FNV-1a 64 of the GGUF llama.cpp read
};

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

uint64_t fnv1a(const std::vector<uint8_t>& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : bytes) h = (h ^ b) * 1099511628211ull;
  return h;
}

SyntheticModel base(const std::string& arch, uint64_t seed) {
  SyntheticModel m;
  m.arch = arch;
  m.n_embd = 64;
  m.n_vocab = 256;
  m.n_layer = 4;
  m.n_ff = 48;
  m.n_head = 4;
  m.n_head_kv = 2;
  m.head_dim = 16;
  m.d_inner = 128;
  m.d_state = 16;
  m.ssm_head_dim = 16;
  m.n_group = 2;
  m.dt_rank = 4;
  m.seed = seed;
  return m;
}

std::vector<Variant> variants() {
  std::vector<Variant> v;
  {
    SyntheticModel m = base("granitehybrid", 21);
    m.layer_pattern = "MAMA";
    m.n_group = 4;
    m.hybrid_rope = true;
    m.rope_base = 10000;
    m.embedding_scale = 6, m.residual_scale = 0.5f, m.logit_scale = 4, m.attention_scale = 0.2f;
    v.push_back({"granite_rope_groups4", m, 0});
  }
  {
    SyntheticModel m = base("granitehybrid", 22);
    m.layer_pattern = "MMAM";
    m.n_expert = 8, m.n_expert_used = 3, m.n_ff = 24, m.n_ff_shared = 40;
    m.tied_output = true;
    v.push_back({"granite_moe_8x3", m, 0});
  }
  {
    SyntheticModel m = base("nemotron_h", 23);
    m.layer_pattern = "MFAF";
    m.n_ff = 96;
    v.push_back({"nemotron_mlp_first", m, 0});
  }
  {
    SyntheticModel m = base("nemotron_h_moe", 24);
    m.layer_pattern = "MFAF";
    m.n_expert = 6, m.n_expert_used = 2, m.n_ff = 32, m.n_ff_shared = 40, m.moe_latent = 32;
    v.push_back({"nemotron_moe_latent", m, 0});
  }
  {
    SyntheticModel m = base("jamba", 25);
    m.layer_pattern = "MMAM";
    m.moe_pattern = "0111";
    m.n_expert = 4, m.n_expert_used = 2, m.d_state = 8;
    v.push_back({"jamba_moe_three_layers", m, 0});
  }
  {
    SyntheticModel m = base("mamba2", 26);
    m.n_group = 4, m.ssm_head_dim = 8, m.d_state = 24, m.d_conv = 3;
    v.push_back({"mamba2_groups4_conv3", m, 0});
  }
  {
    SyntheticModel m = base("mamba", 27);
    m.d_state = 12, m.dt_rank = 6, m.d_conv = 2;
    v.push_back({"mamba_state12_conv2", m, 0});
  }
  return v;
}

std::vector<int32_t> variant_ids() {
  std::vector<int32_t> ids;
  for (int i = 0; i < 32; ++i) ids.push_back((37 * i + 11) % 256);
  return ids;
}

class HybridVariant : public ::testing::TestWithParam<Variant> {};

TEST_P(HybridVariant, MatchesLlamaCppOnBothPaths) {
  const Variant& v = GetParam();
  const std::string path = test::temp_path(std::string("variant-") + v.name + ".gguf");
  write_synthetic_model(path, v.model);
  const std::string ref_path = test::source_dir() + "/tests/data/hybrid-variants/" + v.name + ".llamacpp-logits.f32";
  const uint64_t fnv = fnv1a(test::read_file(path));
  if (!std::filesystem::exists(ref_path))
    FAIL() << "no llama.cpp logits for " << v.name << " (model written to " << path << ", FNV " << std::hex << fnv
           << "; see tests/data/hybrid-variants/README.md)";
  std::ifstream fnv_file(test::source_dir() + "/tests/data/hybrid-variants/" + v.name + ".fnv");
  std::string recorded;
  fnv_file >> recorded;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv));
  ASSERT_EQ(recorded, buf) << "the writer no longer produces the file llama.cpp's logits came from; regenerate them";
  auto ref = test::read_f32_file(ref_path);
  auto m = test::load_test_model(path, DType::F32, 5, false, 2);
  const auto ids = variant_ids();
  auto batch = logits_in_pieces(m, *m.new_state(64), ids, {32});
  auto one = logits_in_pieces(m, *m.new_state(64), ids, {1, 2});
  float peak = 1;
  for (float x : ref) peak = std::max(peak, std::fabs(x));
  std::cout << v.name << ": max |flatline - llama.cpp| " << max_abs_diff(batch, ref) << " (largest |logit| " << peak
            << ")\n";
  EXPECT_LT(max_abs_diff(batch, ref), 1e-4f * peak + 1e-4f);
  EXPECT_LT(max_abs_diff(one, ref), 1e-4f * peak + 1e-4f);
}

INSTANTIATE_TEST_SUITE_P(Synthetic, HybridVariant, ::testing::ValuesIn(variants()),
                         [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------

std::string fnv_hex(const std::string& path) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a(test::read_file(path))));
  return buf;
}

TEST(HybridQuantized, Q8AndQ4KMatchLlamaCppOnTheSameBytes) {
  for (const char* name : {"granitehybrid", "granitehybrid-moe", "nemotron_h", "jamba"}) {
    const std::string path = test::shared_model(std::string("random/") + name + ".gguf");
    if (path.empty()) GTEST_SKIP() << "fixture ../shared/models/random/" << name << ".gguf not found";
    auto f32 = test::load_test_model(path, DType::F32, 64, false, 2);
    const auto ids = standard_ids(32);
    auto exact = logits_in_pieces(f32, *f32.new_state(64), ids, {32});
    for (const char* type : {"q8_0", "q4_k"}) {
      const std::string q = test::temp_path(std::string(name) + "-" + type + ".gguf");
      convert::requantize_gguf(path, q, type);  // what `flatline quantize` runs
      const std::string stem = test::source_dir() + "/tests/data/hybrid-variants/quant-" + name + "-" + type;
      std::ifstream fnv_file(stem + ".fnv");
      std::string recorded;
      fnv_file >> recorded;
      ASSERT_EQ(recorded, fnv_hex(q)) << "quantize no longer writes the file llama.cpp's logits came from";
      auto ref = test::read_f32_file(stem + ".llamacpp-logits.f32");
      auto m = test::load_test_model(q, DType::F32, 64, false, 2);
      auto got = logits_in_pieces(m, *m.new_state(64), ids, {32});
      int agree = 0;
      for (size_t t = 0; t < ids.size(); ++t)
        agree += test::argmax(got.data() + t * 512, 512) == test::argmax(ref.data() + t * 512, 512);
      const float d = max_abs_diff(got, ref), d32 = max_abs_diff(got, exact);
      std::cout << name << " " << type << ": max |flatline - llama.cpp| = " << d << ", top-1 " << agree
                << "/32; quantization error vs the F32 model " << d32 << "\n";
      // The bounds of the RWKV-7 quantization tests (tests/rwkv7_quant_test.cpp),
      // doubled for Jamba: its ssm_dt.weight has 8 columns, which llama-quantize
      // keeps as F16, and llama.cpp rounds the activations of F16 weights to
      // F16 where flatline keeps them f32 (tests/data/rwkv7-synth/README.md);
      // dt then goes through softplus and exp.
      const float bound = (std::string(type) == "q8_0" ? 8e-2f : 1e-1f) * (std::string(name) == "jamba" ? 2.0f : 1.0f);
      EXPECT_LE(d, bound) << name << " " << type;
      EXPECT_GE(agree, 30) << name << " " << type;
    }
  }
}

TEST(HybridMoe, ADecodeStepReadsOnlyTheChosenExperts) {
  REQUIRE_SHARED_MODEL(path, "random/granitehybrid-moe.gguf");
  auto m = test::load_test_model(path, DType::F32, 64, false, 1);
  // 4 experts, 2 used: per layer half of the expert bytes count.
  uint64_t experts = 0, other = 0;
  for (const auto& t : m.file->tensors())
    (t.name.find("_exps") != std::string::npos ? experts : other) += t.n_bytes;
  const auto& embd = m.file->tensor("token_embd.weight");
  // Tied output: the embedding is read whole as the head.
  EXPECT_EQ(m.info().bytes_per_token, other + experts / 2);
  (void)embd;
}

}  // namespace
}  // namespace flatline
