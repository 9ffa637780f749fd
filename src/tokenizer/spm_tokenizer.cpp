#include "tokenizer/spm_tokenizer.h"

#include <queue>

#include "tokenizer/byte_level.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace flatline::tokenizer_detail {

namespace {

constexpr std::string_view kSpaceMark = "\xe2\x96\x81";  // U+2581, SentencePiece's visible space

VocabDefaults spm_defaults() {
  VocabDefaults d;
  d.bos = 1;
  d.eos = 2;
  d.unk = 0;
  d.add_bos = true;
  d.add_space_prefix = true;
  return d;
}

std::string byte_token_text(uint8_t b) {
  static const char* hex = "0123456789ABCDEF";
  return std::string{'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
}

struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t begin;  // byte range in the escaped text
  uint32_t length;
};

struct Bigram {
  int32_t left;
  int32_t right;
  float score;
  uint32_t length;
};

// Highest score first; among equal scores the leftmost pair.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

SpmTokenizer::SpmTokenizer(const gguf::File& file)
    : VocabTokenizer(Vocab::load(file, spm_defaults()), "llama", file.get_string("tokenizer.ggml.pre", "")) {
  if (!vocab_.has_scores()) {
    throw Error(file.path() + ": tokenizer.ggml.scores is missing (a SentencePiece vocabulary needs token scores)");
  }
  strip_decoded_prefix_space_ = vocab_.add_space_prefix();
  for (int b = 0; b < 256; ++b) {
    int32_t id = vocab_.find(byte_token_text(static_cast<uint8_t>(b)));
    if (id < 0) id = vocab_.find(std::string(1, static_cast<char>(b)));
    byte_tokens_[b] = id;
  }
}

void SpmTokenizer::append_byte_tokens(std::string_view bytes, std::vector<int32_t>& out) const {
  for (char c : bytes) {
    const int32_t id = byte_tokens_[static_cast<uint8_t>(c)];
    if (id >= 0) {
      out.push_back(id);
    } else if (vocab_.special().unk >= 0) {
      out.push_back(vocab_.special().unk);
    } else {
      throw Error("SentencePiece vocabulary has no byte token for 0x" + byte_token_text(static_cast<uint8_t>(c)).substr(3, 2) +
                  " and no unknown token");
    }
  }
}

void SpmTokenizer::encode_text(std::string_view raw, bool starts_text, std::vector<int32_t>& out) const {
  std::string text;
  text.reserve(raw.size() * 2 + 3);
  if (vocab_.add_space_prefix() && starts_text) text += kSpaceMark;
  for (char c : raw) {
    if (c == ' ') text += kSpaceMark;
    else text += c;
  }

  // One symbol per UTF-8 character (a stray byte is a character of its own).
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = std::min(unicode::utf8_sequence_length(static_cast<uint8_t>(text[pos])), text.size() - pos);
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({index - 1, pos + length == text.size() ? -1 : index + 1, static_cast<uint32_t>(pos),
                       static_cast<uint32_t>(length)});
    pos += length;
  }
  if (symbols.empty()) return;

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  const auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const uint32_t length = symbols[left].length + symbols[right].length;
    const int32_t id = vocab_.find(std::string_view(text).substr(symbols[left].begin, length));
    if (id < 0) return;
    queue.push({left, right, vocab_.score(id), length});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram bigram = queue.top();
    queue.pop();
    Symbol& left = symbols[bigram.left];
    Symbol& right = symbols[bigram.right];
    // Stale entry: one side was merged away or has grown since.
    if (left.length == 0 || right.length == 0 || left.length + right.length != bigram.length) continue;
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = bigram.left;
    try_add(left.prev, bigram.left);
    try_add(bigram.left, left.next);
  }

  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    const std::string_view piece = std::string_view(text).substr(symbols[i].begin, symbols[i].length);
    const int32_t id = vocab_.find(piece);
    if (id >= 0) out.push_back(id);
    else append_byte_tokens(piece, out);
  }
}

std::string SpmTokenizer::piece_bytes(int32_t id) const {
  if (vocab_.has_attr(id, kAttrNormal)) {
    std::string out;
    const std::string_view text = vocab_.text(id);
    for (size_t i = 0; i < text.size();) {
      if (text.substr(i, kSpaceMark.size()) == kSpaceMark) {
        out += ' ';
        i += kSpaceMark.size();
      } else {
        out += text[i++];
      }
    }
    return out;
  }
  if (vocab_.has_attr(id, kAttrByte)) {
    const int value = parse_byte_token(vocab_.text(id));
    if (value >= 0) return std::string(1, static_cast<char>(value));
  }
  return "";  // unused / undefined tokens stand for no text
}

int32_t SpmTokenizer::find_by_bytes(std::string_view bytes) const {
  std::string text;
  for (char c : bytes) {
    if (c == ' ') text += kSpaceMark;
    else text += c;
  }
  const int32_t id = vocab_.find(text);
  if (id >= 0 && vocab_.has_attr(id, kAttrNormal)) return id;
  return bytes.size() == 1 ? byte_tokens_[static_cast<uint8_t>(bytes[0])] : -1;
}

}  // namespace flatline::tokenizer_detail
