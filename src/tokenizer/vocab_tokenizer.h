// Common base of the GGUF-driven tokenizers: owns the Vocab, splits input
// around special tokens and handles the token types every kind treats alike
// (control, unknown, user-defined). Subclasses encode plain text fragments
// and decode their own normal tokens. Internal to src/tokenizer/.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace flatline::tokenizer_detail {

class VocabTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool parse_special = false) const override;
  std::vector<int32_t> encode_continuation(std::string_view text, bool parse_special, bool after_special) const override;
  std::string token_bytes(int32_t id, bool render_special = false) const override;
  int32_t find_token(std::string_view piece) const override;
  TokenType token_type(int32_t id) const override;
  std::string_view token_text(int32_t id) const override;

  const Vocab& vocab() const { return vocab_; }

 protected:
  VocabTokenizer(Vocab vocab, std::string kind, std::string pre);

  // Appends the ids of one fragment of plain text. `starts_text` is true for
  // the first fragment and for fragments right after a special token.
  virtual void encode_text(std::string_view text, bool starts_text, std::vector<int32_t>& out) const = 0;
  // Bytes of a token that is not control, unknown or user-defined.
  virtual std::string piece_bytes(int32_t id) const = 0;
  // Id of the non-special token whose bytes are `bytes`, or -1.
  virtual int32_t find_by_bytes(std::string_view bytes) const = 0;

  void check_id(int32_t id) const;

  Vocab vocab_;
};

}  // namespace flatline::tokenizer_detail
