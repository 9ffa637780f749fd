// The token list shared by every tokenizer kind: texts, types, scores and
// attributes read from tokenizer.ggml.*, the special-token ids, the
// end-of-generation set, and the split of raw text around special tokens.
// Internal to src/tokenizer/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/flat_index.h"
#include "tokenizer/tokenizer.h"

namespace flatline::tokenizer_detail {

// Attribute bits, as llama.cpp derives them from token_type (and from a few
// token texts, see Vocab::mark_special_tokens).
enum TokenAttr : uint32_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1u << 0,
  kAttrUnused = 1u << 1,
  kAttrNormal = 1u << 2,
  kAttrControl = 1u << 3,
  kAttrUserDefined = 1u << 4,
  kAttrByte = 1u << 5,
  kAttrLstrip = 1u << 6,  // special token swallows whitespace on its left
  kAttrRstrip = 1u << 7,  // ... and on its right
};

// Defaults that depend on the tokenizer kind (llama.cpp's per-type defaults).
struct VocabDefaults {
  int32_t bos = -1;
  int32_t eos = -1;
  int32_t unk = -1;
  bool add_bos = false;
  bool add_space_prefix = false;
};

// A piece of the input: either raw text [begin, end) or one special token.
struct Fragment {
  int32_t token = -1;  // >= 0 for a special token
  size_t begin = 0;
  size_t end = 0;
  bool is_token() const { return token >= 0; }
};

class Vocab {
 public:
  Vocab() = default;
  Vocab(Vocab&&) noexcept = default;
  Vocab& operator=(Vocab&&) noexcept = default;
  Vocab(const Vocab&) = delete;  // index_ points into storage_
  Vocab& operator=(const Vocab&) = delete;
  // Reads tokens, token_type and scores (optional here; the SPM tokenizer
  // requires them) and the special-token keys. Throws Error on a missing or
  // mistyped tokens array, wrong-length parallel arrays, duplicate tokens or
  // add_bos_token without a bos id.
  static Vocab load(const gguf::File& file, const VocabDefaults& defaults);

  int32_t size() const { return static_cast<int32_t>(attrs_.size()); }
  std::string_view text(int32_t id) const {
    return std::string_view(storage_.data() + offsets_[id], offsets_[id + 1] - offsets_[id]);
  }
  uint32_t attr(int32_t id) const { return attrs_[id]; }
  bool has_attr(int32_t id, uint32_t bits) const { return (attrs_[id] & bits) != 0; }
  TokenType type(int32_t id) const { return types_[id]; }
  float score(int32_t id) const { return scores_.empty() ? 0.0f : scores_[id]; }
  bool has_scores() const { return !scores_.empty(); }
  bool valid(int32_t id) const { return id >= 0 && id < size(); }
  // Id of the token whose stored text is exactly `text`, or -1.
  int32_t find(std::string_view text) const {
    return index_.find(text, [this](int32_t id) { return this->text(id); });
  }

  const SpecialTokens& special() const { return special_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }
  const std::vector<int32_t>& end_of_generation() const { return end_of_generation_; }

  // Splits `text` around special tokens the way llama.cpp's
  // tokenizer_st_partition does: tokens are tried longest first, each one
  // over every remaining raw fragment. User-defined tokens always split;
  // control and unknown tokens only with parse_special.
  void partition(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;

 private:
  void read_tokens(const gguf::File& file);
  void read_special_ids(const gguf::File& file, const VocabDefaults& defaults);
  void mark_special_tokens(const gguf::File& file);
  void build_special_cache();

  std::vector<char> storage_;      // all token texts back to back (moves keep the buffer)
  std::vector<uint32_t> offsets_;  // size() + 1 offsets into storage_
  std::vector<uint32_t> attrs_;
  std::vector<TokenType> types_;
  std::vector<float> scores_;
  TextIndex index_;

  SpecialTokens special_;
  bool add_bos_ = false;
  bool add_eos_ = false;
  bool add_space_prefix_ = false;
  std::vector<int32_t> end_of_generation_;

  // Control / user-defined / unknown tokens, longest text first.
  std::vector<int32_t> special_cache_;
  // For a quick "can this token occur in the text at all": its first two
  // bytes (or one byte for one-byte tokens).
  std::vector<uint16_t> special_first_pair_;
};

}  // namespace flatline::tokenizer_detail
