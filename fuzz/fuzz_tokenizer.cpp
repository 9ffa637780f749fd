// A tokenizer on arbitrary text: encode with and without special tokens,
// every id in range, decode never fails, and for byte-exact vocabularies
// (RWKV's trie and byte-level BPE) decode(encode(text)) == text.
// The vocabulary comes from FLATLINE_FUZZ_VOCAB (a GGUF; any tokenizer kind),
// by default the bundled demo model.
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "fuzz_target.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

#ifndef FLATLINE_DEMO_MODEL
#define FLATLINE_DEMO_MODEL ""
#endif

namespace {

struct Loaded {
  std::unique_ptr<flatline::gguf::File> file;
  std::unique_ptr<flatline::Tokenizer> tokenizer;
  bool byte_exact = false;
};

const Loaded& loaded() {
  static const Loaded instance = [] {
    const char* env = std::getenv("FLATLINE_FUZZ_VOCAB");
    std::string path = env && *env ? env : FLATLINE_DEMO_MODEL;
    Loaded l;
    l.file = std::make_unique<flatline::gguf::File>(flatline::gguf::File::open(path));
    l.tokenizer = flatline::Tokenizer::from_gguf(*l.file);
    std::string kind = l.file->get_string("tokenizer.ggml.model", "");
    l.byte_exact = kind == "rwkv";
    return l;
  }();
  return instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Loaded& l = loaded();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto vocab = static_cast<int32_t>(l.tokenizer->n_vocab());
  for (bool parse_special : {false, true}) {
    std::vector<int32_t> ids;
    try {
      ids = l.tokenizer->encode(text, parse_special);
    } catch (const flatline::Error&) {
      continue;  // e.g. text the vocabulary cannot represent
    }
    for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < vocab, "token id in range");
    std::string decoded = l.tokenizer->decode(ids);
    if (l.byte_exact && !parse_special) FUZZ_CHECK(decoded == text, "decode(encode(text)) == text");
  }
  return 0;
}
