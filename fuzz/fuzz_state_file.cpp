// The state-file loader on arbitrary bytes, for a loaded model: it must
// refuse the file with flatline::Error or return a conversation whose state
// agrees with its token list -- never crash or allocate what the header
// claims without checking. Checksums are recomputed over the mutated bytes
// before loading (an attacker can do the same: they are not a defence), so
// the fuzzer reaches the length and shape checks behind them.
// The model comes from FLATLINE_FUZZ_MODEL (any GGUF), by default the
// bundled demo model (RWKV-7); the seeds in corpus/state_file were written
// by make_state_seeds for the demo model and the random Granite hybrid
// (KV part + recurrent part).
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fuzz_target.h"
#include "runtime/content_hash.h"
#include "runtime/engine.h"
#include "runtime/state_cache.h"
#include "tensor/thread_pool.h"
#include "util/error.h"

#ifndef FLATLINE_DEMO_MODEL
#define FLATLINE_DEMO_MODEL ""
#endif

namespace {

const flatline::LoadedModel& model() {
  static const std::unique_ptr<flatline::LoadedModel> instance = [] {
    const char* env = std::getenv("FLATLINE_FUZZ_MODEL");
    flatline::LoadOptions o;
    o.pool = std::make_shared<flatline::ThreadPool>(1);
    return flatline::LoadedModel::load(env && *env ? env : FLATLINE_DEMO_MODEL, o);
  }();
  return *instance;
}

uint64_t read_u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
uint32_t read_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Rewrites the index checksum (header + fingerprint + fed text) and the
// trailing whole-file checksum, where the lengths leave room for them.
void fix_checksums(std::vector<uint8_t>& b) {
  constexpr size_t kHeader = flatline::kStateFileHeaderBytes;
  if (b.size() < kHeader + 8) return;
  const uint64_t fingerprint_len = read_u32(b.data() + 16), text_len = read_u64(b.data() + 24);
  if (fingerprint_len <= b.size() - kHeader && text_len <= b.size() - kHeader - fingerprint_len) {
    flatline::ContentHash h;
    h.update(b.data(), 72);
    h.update(b.data() + kHeader, fingerprint_len + text_len);
    const uint64_t index = h.digest();
    std::memcpy(b.data() + 72, &index, 8);
  }
  const uint64_t whole = flatline::ContentHash::of(b.data(), b.size() - 8);
  std::memcpy(b.data() + b.size() - 8, &whole, 8);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const flatline::LoadedModel& m = model();
  std::vector<uint8_t> bytes(data, data + size);
  fix_checksums(bytes);
  try {
    flatline::Conversation conv = flatline::decode_state_file(bytes, m, "fuzz.flstate");
    FUZZ_CHECK(conv.state != nullptr, "a loaded conversation has a state");
    FUZZ_CHECK(conv.state->n_past() == static_cast<int64_t>(conv.tokens.size()), "state agrees with tokens");
    const auto vocab = static_cast<int32_t>(m.info().n_vocab);
    for (int32_t id : conv.tokens) FUZZ_CHECK(id >= 0 && id < vocab, "token ids in range");
  } catch (const flatline::Error& e) {
    if (std::getenv("FLATLINE_FUZZ_VERBOSE")) std::fprintf(stderr, "refused: %s\n", e.what());
  }
  return 0;
}
