// Text <-> token ids, built from a GGUF file's tokenizer.ggml.* metadata.
//
// Three kinds, chosen by tokenizer.ggml.model, each matching llama.cpp token
// for token (see the tokenizer_*_test.cpp files for the fixtures):
//   "rwkv"  RWKV World: greedy longest match over a trie of byte strings.
//   "llama" SentencePiece (SPM): bigram merges by score, byte fallback.
//   "gpt2"  byte-level BPE: pre-tokenizer chosen by tokenizer.ggml.pre,
//           then merges by rank.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"

namespace flatline {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

// Ids of the tokens with a role; -1 when the model has none.
struct SpecialTokens {
  int32_t bos = -1;
  int32_t eos = -1;
  int32_t eot = -1;  // end of turn
  int32_t eom = -1;  // end of message (tool call follows)
  int32_t unk = -1;
  int32_t sep = -1;
  int32_t pad = -1;
  int32_t mask = -1;
  int32_t fim_pre = -1;
  int32_t fim_suf = -1;
  int32_t fim_mid = -1;
  int32_t fim_pad = -1;
  int32_t fim_rep = -1;
  int32_t fim_sep = -1;
};

// BOS / EOS as a chat template sees them (bos_token, eos_token), read from
// the metadata without building the tokenizer: the stored text of the token
// ("" when there is none) and whether the tokenizer adds it itself.
struct SpecialTokenTexts {
  std::string bos, eos;
  bool add_bos = false, add_eos = false;
};
SpecialTokenTexts special_token_texts(const gguf::File& file);

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Builds the tokenizer named by tokenizer.ggml.model ("rwkv", "gpt2",
  // "llama", ...). Throws Error if the model kind is unknown or the metadata
  // is inconsistent. The result does not refer to `file` afterwards.
  static std::unique_ptr<Tokenizer> from_gguf(const gguf::File& file);

  // Raw text -> ids. No BOS/EOS are added. With parse_special, strings of
  // control / user-defined tokens (e.g. "<|im_start|>") map to their ids;
  // without it control tokens are tokenized as plain text (user-defined
  // tokens still map to their ids, as in llama.cpp and HF tokenizers).
  virtual std::vector<int32_t> encode(std::string_view text, bool parse_special = false) const = 0;
  // encode() for text that continues a text already tokenized: the start is
  // not the start of the text, so SentencePiece's add_space_prefix does not
  // apply there unless `after_special` (the text so far ends with a special
  // token, where encode() of the whole text would start a fresh fragment).
  // Then encode(a) + encode_continuation(b) == encode(a + b) whenever a ends
  // on a token boundary of a + b (e.g. at a special token).
  virtual std::vector<int32_t> encode_continuation(std::string_view text, bool parse_special, bool after_special) const {
    (void)after_special;
    return encode(text, parse_special);
  }
  // The bytes one token stands for (may be an incomplete UTF-8 sequence).
  // Control tokens decode to "" unless render_special. Throws Error for an
  // id outside [0, n_vocab).
  virtual std::string token_bytes(int32_t id, bool render_special = false) const = 0;
  // Concatenated token_bytes. When the tokenizer put a space in front of the
  // text (SentencePiece add_space_prefix) and ids[0] is not a control token,
  // that one space is removed again, so decode(encode(s)) == s.
  std::string decode(std::span<const int32_t> ids, bool render_special = false) const;

  int32_t n_vocab() const { return n_vocab_; }
  int32_t bos_id() const { return bos_; }  // -1 if none
  int32_t eos_id() const { return eos_; }
  int32_t eot_id() const { return eot_; }
  int32_t eom_id() const { return special_.eom; }
  int32_t unk_id() const { return special_.unk; }
  int32_t pad_id() const { return special_.pad; }
  const SpecialTokens& special_tokens() const { return special_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  // tokenizer.ggml.model ("rwkv", "llama", "gpt2") and .pre ("" if none).
  const std::string& model_kind() const { return kind_; }
  const std::string& pre_tokenizer() const { return pre_; }

  // True for tokens that end a generation (EOS, EOT, EOM, ...).
  bool is_end_of_generation(int32_t id) const;
  const std::vector<int32_t>& end_of_generation_ids() const { return end_of_generation_; }
  // Id of the token whose bytes (token_bytes(id, true)) or stored text is
  // exactly `piece`, or -1.
  virtual int32_t find_token(std::string_view piece) const = 0;

  // The token's type and its text as stored in the GGUF (escaped for rwkv,
  // byte-level encoded for gpt2, with U+2581 for spaces for llama).
  virtual TokenType token_type(int32_t id) const { return TokenType::Normal; }
  virtual std::string_view token_text(int32_t id) const { return {}; }
  bool is_control(int32_t id) const { return token_type(id) == TokenType::Control; }

 protected:
  int32_t n_vocab_ = 0;
  int32_t bos_ = -1;
  int32_t eos_ = -1;
  int32_t eot_ = -1;
  bool add_bos_ = false;
  bool add_eos_ = false;
  bool strip_decoded_prefix_space_ = false;
  SpecialTokens special_;
  std::string kind_;
  std::string pre_;
  std::vector<int32_t> end_of_generation_;
};

}  // namespace flatline
