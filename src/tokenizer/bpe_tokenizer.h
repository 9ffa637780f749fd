// Byte-level BPE tokenizer (tokenizer.ggml.model = "gpt2"), as llama.cpp
// runs it: the pre-tokenizer named by tokenizer.ggml.pre cuts text into
// words; each word's bytes start as one symbol each (GPT-2 byte-level
// characters) and adjacent pairs are merged by rank (the order of
// tokenizer.ggml.merges), lowest rank first, leftmost first.
// Internal to src/tokenizer/.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/flat_index.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/vocab_tokenizer.h"

namespace flatline::tokenizer_detail {

class BpeTokenizer final : public VocabTokenizer {
 public:
  explicit BpeTokenizer(const gguf::File& file);
  size_t merge_count() const { return merges_.size(); }

 protected:
  void encode_text(std::string_view text, bool starts_text, std::vector<int32_t>& out) const override;
  std::string piece_bytes(int32_t id) const override;
  int32_t find_by_bytes(std::string_view bytes) const override;

 private:
  BpeTokenizer(const gguf::File& file, PreTokenizer pre);
  void read_merges(const gguf::File& file);
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32 | static_cast<uint32_t>(right);
  }

  PreTokenizer pre_tokenizer_;
  PairIndex<Merge> merges_;
  std::array<int32_t, 256> byte_tokens_{};  // token of each byte's byte-level character, -1 if none
};

}  // namespace flatline::tokenizer_detail
