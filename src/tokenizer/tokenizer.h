// Text <-> token ids, built from a GGUF file's tokenizer.ggml.* metadata.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"

namespace flatline {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Builds the tokenizer named by tokenizer.ggml.model ("rwkv", "gpt2",
  // "llama", ...). Throws Error if the model kind is unknown or the metadata
  // is inconsistent.
  static std::unique_ptr<Tokenizer> from_gguf(const gguf::File& file);

  // Raw text -> ids. No BOS/EOS are added. With parse_special, strings of
  // control / user-defined tokens (e.g. "<|im_start|>") map to their ids;
  // without it they are tokenized as plain text.
  virtual std::vector<int32_t> encode(std::string_view text, bool parse_special = false) const = 0;
  // The bytes one token stands for (may be an incomplete UTF-8 sequence).
  // Control tokens decode to "" unless render_special.
  virtual std::string token_bytes(int32_t id, bool render_special = false) const = 0;
  std::string decode(std::span<const int32_t> ids, bool render_special = false) const;

  int32_t n_vocab() const { return n_vocab_; }
  int32_t bos_id() const { return bos_; }  // -1 if none
  int32_t eos_id() const { return eos_; }
  int32_t eot_id() const { return eot_; }
  bool add_bos() const { return add_bos_; }
  // True for tokens that end a generation (EOS, EOT, EOM, ...).
  bool is_end_of_generation(int32_t id) const;
  // Id of a token whose text is exactly `piece`, or -1.
  virtual int32_t find_token(std::string_view piece) const = 0;

 protected:
  int32_t n_vocab_ = 0;
  int32_t bos_ = -1;
  int32_t eos_ = -1;
  int32_t eot_ = -1;
  bool add_bos_ = false;
  std::vector<int32_t> end_of_generation_;
};

}  // namespace flatline
