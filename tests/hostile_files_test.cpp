// Regression tests for the hostile model and state files of the hardening
// issue (#20): each builds its crafted file here and checks that flatline
// refuses it with a message naming the problem instead of corrupting memory.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "model_test_util.h"
#include "runtime/content_hash.h"
#include "runtime/engine.h"
#include "runtime/state_cache.h"
#include "tensor/thread_pool.h"
#include "test_support.h"
#include "util/error.h"

namespace flatline {
namespace {

std::unique_ptr<LoadedModel> load(const std::string& path) {
  LoadOptions o;
  o.pool = std::make_shared<ThreadPool>(1);
  return LoadedModel::load(path, o);
}

// The error message of `f`, or "" when it does not throw flatline::Error.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string synthetic_file(SyntheticModel m, const std::string& name) {
  const std::string path = test::temp_path(name);
  write_synthetic_model(path, m);
  return path;
}

// A copy of `src` where `key` holds `value` (an unsigned 64-bit integer).
std::string with_uint64_key(const std::string& src, const std::string& key, uint64_t value, const std::string& name) {
  gguf::File f = gguf::File::open(src);
  gguf::Writer w;
  for (const auto& [k, v] : f.metadata())
    if (k != key && k != "general.alignment") w.add_value(k, v);
  w.add_uint64(key, value);
  for (const auto& t : f.tensors()) w.add_tensor(t.name, t.type, t.dims, t.data, t.n_bytes);
  const std::string path = test::temp_path(name);
  w.write(path);
  return path;
}

TEST(HostileFiles, AHugeGemma3SlidingWindowIsRefusedInsteadOfOverflowingTheKvCapacity) {
  SyntheticModel m = test::tiny_synthetic("gemma3");
  m.window = 16;
  const std::string base = synthetic_file(m, "hostile-gemma3.gguf");
  for (uint64_t window : {(uint64_t{1} << 63) - 256, ~uint64_t{0}, uint64_t{1} << 40}) {
    const std::string path = with_uint64_key(base, "gemma3.attention.sliding_window", window, "hostile-gemma3-window.gguf");
    const std::string message = error_of([&] {
      auto lm = load(path);
      lm->model().new_state(64);
    });
    EXPECT_NE(message.find("sliding_window"), std::string::npos) << window << ": " << message;
  }
}

TEST(HostileFiles, ABlockCountOf50MillionIsRefusedBeforeAnyLayerIsAllocated) {
  const std::string base = synthetic_file(test::tiny_synthetic("rwkv7"), "hostile-rwkv7.gguf");
  const std::string path = with_uint64_key(base, "rwkv7.block_count", 50'000'000, "hostile-rwkv7-blocks.gguf");
  const std::string message = error_of([&] { load(path); });
  EXPECT_NE(message.find("block_count"), std::string::npos) << message;
}

// Rewrites both checksums of a state file after its bytes were changed, as
// an attacker can: they detect accidents, not intent.
void recompute_checksums(std::vector<uint8_t>& b) {
  uint32_t fingerprint_len;
  uint64_t text_len;
  std::memcpy(&fingerprint_len, b.data() + 16, 4);
  std::memcpy(&text_len, b.data() + 24, 8);
  ContentHash h;
  h.update(b.data(), 72);
  h.update(b.data() + kStateFileHeaderBytes, fingerprint_len + text_len);
  const uint64_t index = h.digest();
  std::memcpy(b.data() + 72, &index, 8);
  const uint64_t whole = ContentHash::of(b.data(), b.size() - 8);
  std::memcpy(b.data() + b.size() - 8, &whole, 8);
}

TEST(HostileFiles, AStateFileClaimingAHugeContextWithValidChecksumsIsRejected) {
  auto lm = load(synthetic_file(test::tiny_synthetic("llama"), "hostile-llama.gguf"));
  Engine engine(*lm);
  Conversation conv = engine.new_conversation(64);
  GenerateOptions g;
  g.sampling.temperature = 0;
  g.num_predict = 3;
  g.use_template_stops = false;
  engine.generate(conv, "hello there", g);
  const std::vector<uint8_t> good = encode_state_file(conv, lm->fingerprint());
  ASSERT_NO_THROW(decode_state_file(good, *lm));
  // 2^62 made the KV size wrap to 0 (rows copied past a 1-byte buffer);
  // 2^40 made every new conversation fail with bad_alloc, forever.
  // 1: smaller than the 13 tokens the state holds.
  for (uint64_t n_ctx : {uint64_t{1} << 62, uint64_t{1} << 40, uint64_t{1}}) {
    std::vector<uint8_t> bytes = good;
    std::memcpy(bytes.data() + 64, &n_ctx, 8);
    recompute_checksums(bytes);
    const std::string message = error_of([&] { decode_state_file(bytes, *lm, "crafted.flstate"); });
    EXPECT_NE(message.find("crafted.flstate"), std::string::npos) << n_ctx << ": " << message;
    EXPECT_NE(message.find("context"), std::string::npos) << n_ctx << ": " << message;
  }
  // A larger context than the one saved is fine: the KV rows fit.
  std::vector<uint8_t> larger = good;
  const uint64_t n_ctx = 128;
  std::memcpy(larger.data() + 64, &n_ctx, 8);
  recompute_checksums(larger);
  EXPECT_EQ(decode_state_file(larger, *lm).state->n_ctx(), 128);
}

TEST(HostileFiles, APaddedVocabularyNeverSamplesATokenWithoutText) {
  SyntheticModel m = test::tiny_synthetic("rwkv7");
  m.printable_vocab = true;  // 96 tokens in the tokenizer ...
  m.n_vocab = 256;           // ... 256 rows in the embedding and the output
  auto lm = load(synthetic_file(m, "hostile-padded.gguf"));
  ASSERT_LT(lm->tokenizer().n_vocab(), lm->info().n_vocab);
  Engine engine(*lm);
  Conversation conv = engine.new_conversation(0);
  GenerateOptions g;
  g.sampling.temperature = 5.0f;  // nearly uniform: the padded ids would be drawn often
  g.sampling.top_k = 0;
  g.sampling.seed = 3;
  g.num_predict = 300;
  g.use_template_stops = false;
  GenerateResult r;
  ASSERT_NO_THROW(r = engine.generate(conv, "a", g));
  ASSERT_FALSE(r.generated.empty());
  for (int32_t id : r.generated) EXPECT_LT(id, lm->tokenizer().n_vocab());
}

}  // namespace
}  // namespace flatline
