// SentencePiece-style tokenizer (tokenizer.ggml.model = "llama"), as
// llama.cpp runs it: spaces become U+2581, a space is put in front of the
// text (tokenizer.ggml.add_space_prefix, default true), then adjacent
// symbols are merged while their concatenation is a token, highest score
// first; symbols that are not tokens fall back to <0xXX> byte tokens.
// Internal to src/tokenizer/.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab_tokenizer.h"

namespace flatline::tokenizer_detail {

class SpmTokenizer final : public VocabTokenizer {
 public:
  explicit SpmTokenizer(const gguf::File& file);

 protected:
  void encode_text(std::string_view text, bool starts_text, std::vector<int32_t>& out) const override;
  std::string piece_bytes(int32_t id) const override;
  int32_t find_by_bytes(std::string_view bytes) const override;

 private:
  void append_byte_tokens(std::string_view bytes, std::vector<int32_t>& out) const;

  std::array<int32_t, 256> byte_tokens_{};  // "<0xXX>" token (or the raw 1-byte token), -1 if none
};

}  // namespace flatline::tokenizer_detail
