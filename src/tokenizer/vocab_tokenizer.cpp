#include "tokenizer/vocab_tokenizer.h"

#include "util/error.h"

namespace flatline::tokenizer_detail {

VocabTokenizer::VocabTokenizer(Vocab vocab, std::string kind, std::string pre) : vocab_(std::move(vocab)) {
  n_vocab_ = vocab_.size();
  special_ = vocab_.special();
  bos_ = special_.bos;
  eos_ = special_.eos;
  eot_ = special_.eot;
  add_bos_ = vocab_.add_bos();
  add_eos_ = vocab_.add_eos();
  end_of_generation_ = vocab_.end_of_generation();
  kind_ = std::move(kind);
  pre_ = std::move(pre);
}

std::vector<int32_t> VocabTokenizer::encode(std::string_view text, bool parse_special) const {
  return encode_continuation(text, parse_special, /*after_special=*/true);
}

std::vector<int32_t> VocabTokenizer::encode_continuation(std::string_view text, bool parse_special,
                                                         bool after_special) const {
  std::vector<Fragment> fragments;
  vocab_.partition(text, parse_special, fragments);
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  bool starts_text = after_special;
  for (const Fragment& f : fragments) {
    if (f.is_token()) {
      out.push_back(f.token);
      starts_text = true;
    } else {
      encode_text(text.substr(f.begin, f.end - f.begin), starts_text, out);
      starts_text = false;
    }
  }
  return out;
}

void VocabTokenizer::check_id(int32_t id) const {
  if (!vocab_.valid(id)) {
    throw Error("token id " + std::to_string(id) + " is out of range: expected 0 <= id < " +
                std::to_string(vocab_.size()));
  }
}

std::string VocabTokenizer::token_bytes(int32_t id, bool render_special) const {
  check_id(id);
  // Control, unknown and unused ("[PAD7]") tokens are not text.
  if (vocab_.has_attr(id, kAttrControl | kAttrUnknown | kAttrUnused)) {
    return render_special ? std::string(vocab_.text(id)) : std::string();
  }
  if (vocab_.has_attr(id, kAttrUserDefined)) return std::string(vocab_.text(id));
  return piece_bytes(id);
}

int32_t VocabTokenizer::find_token(std::string_view piece) const {
  const int32_t by_text = vocab_.find(piece);
  if (by_text >= 0 && vocab_.has_attr(by_text, kAttrControl | kAttrUnknown | kAttrUserDefined)) return by_text;
  const int32_t by_bytes = find_by_bytes(piece);
  return by_bytes >= 0 ? by_bytes : by_text;
}

TokenType VocabTokenizer::token_type(int32_t id) const {
  check_id(id);
  // The effective type: llama.cpp turns some tokens into control tokens by
  // their text (e.g. "<|im_end|>" stored as user-defined).
  const uint32_t a = vocab_.attr(id);
  if (a & kAttrControl) return TokenType::Control;
  if (a & kAttrUserDefined) return TokenType::UserDefined;
  return vocab_.type(id);
}

std::string_view VocabTokenizer::token_text(int32_t id) const {
  check_id(id);
  return vocab_.text(id);
}

}  // namespace flatline::tokenizer_detail
