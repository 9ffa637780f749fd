// RWKV World tokenizer (tokenizer.ggml.model = "rwkv"). Token strings in the
// GGUF are Python-repr-escaped bytes (llama.cpp's converter writes
// repr(bytes)[2:-1]); encoding is a greedy longest match over a trie of the
// unescaped byte strings, so any byte string round-trips exactly.
// Internal to src/tokenizer/.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/byte_trie.h"
#include "tokenizer/vocab_tokenizer.h"

namespace flatline::tokenizer_detail {

// "\\xe4\\xbd\\xa0" -> the three bytes; \t \n \r \\ \' \" as in Python.
// Throws Error on a malformed escape.
std::string unescape_rwkv_token(std::string_view escaped);

class RwkvTokenizer final : public VocabTokenizer {
 public:
  explicit RwkvTokenizer(const gguf::File& file);

 protected:
  void encode_text(std::string_view text, bool starts_text, std::vector<int32_t>& out) const override;
  std::string piece_bytes(int32_t id) const override;
  int32_t find_by_bytes(std::string_view bytes) const override;

 private:
  ByteTrie trie_;
  std::vector<uint32_t> bytes_offsets_;  // unescaped bytes of every token
  std::string bytes_storage_;
};

}  // namespace flatline::tokenizer_detail
