// Helpers shared by the tokenizer tests (defined in tokenizer_support_test.cpp,
// which the test glob compiles): fixtures, llama.cpp .inp/.out files, random strings.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace flatline::test {

struct LoadedTokenizer {
  std::unique_ptr<gguf::File> file;  // kept open for the test's lifetime
  std::unique_ptr<Tokenizer> tokenizer;
};
LoadedTokenizer load_tokenizer(const std::string& gguf_path);

// llama.cpp's tests/test-tokenizer-0: inputs separated by
// "\n__ggml_vocab_test__\n", one line of space-separated ids per input.
struct VocabCase {
  std::string text;
  std::vector<int32_t> ids;
};
std::vector<VocabCase> read_vocab_cases(const std::string& inp_path, const std::string& out_path);

std::string ids_to_string(const std::vector<int32_t>& ids);

// Random test strings.
std::string random_bytes(std::mt19937& rng, size_t max_length);
std::string random_utf8(std::mt19937& rng, size_t max_codepoints);
// Text made of pieces of real text (letters, digits, spaces, newlines,
// punctuation, CJK, emoji) so that long tokens get exercised.
std::string random_text(std::mt19937& rng, size_t max_pieces);

}  // namespace flatline::test
