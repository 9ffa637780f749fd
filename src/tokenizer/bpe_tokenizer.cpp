#include "tokenizer/bpe_tokenizer.h"

#include <queue>

#include "tokenizer/byte_level.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace flatline::tokenizer_detail {

namespace {

constexpr const char* kMergesKey = "tokenizer.ggml.merges";

VocabDefaults bpe_defaults(const PreTokenizer& pre) {
  // llama.cpp defaults BOS/EOS of a BPE vocabulary to id 11 when the file
  // names none; that is an artifact of one old model, so here they stay unset.
  VocabDefaults d;
  d.add_bos = pre.add_bos();
  return d;
}

std::string pre_name(const gguf::File& file) {
  const gguf::Value* v = file.find("tokenizer.ggml.pre");
  if (!v) return "";
  if (v->type() != gguf::ValueType::String) {
    throw Error(file.path() + ": tokenizer.ggml.pre: expected a string, found " + gguf::value_type_name(v->type()));
  }
  return std::string(v->as_string());
}

PreTokenizer load_pre_tokenizer(const gguf::File& file) {
  try {
    return PreTokenizer::from_name(pre_name(file));
  } catch (const Error& e) {
    throw Error(file.path() + ": " + e.what());
  }
}

struct Symbol {
  int32_t id;  // -1: a byte whose byte-level character is not a token
  int32_t prev;
  int32_t next;
  uint32_t begin;   // byte range in the word
  uint32_t length;  // 0 once merged into its left neighbour
};

struct Bigram {
  int32_t rank;
  int32_t left;
  int32_t right;
  int32_t left_id;
  int32_t right_id;
  int32_t result;
};

// Lowest rank first; among equal ranks the leftmost pair.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

BpeTokenizer::BpeTokenizer(const gguf::File& file) : BpeTokenizer(file, load_pre_tokenizer(file)) {}

BpeTokenizer::BpeTokenizer(const gguf::File& file, PreTokenizer pre)
    : VocabTokenizer(Vocab::load(file, bpe_defaults(pre)), "gpt2", pre_name(file)), pre_tokenizer_(std::move(pre)) {
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    unicode::append_utf8(ch, byte_to_codepoint(static_cast<uint8_t>(b)));
    byte_tokens_[b] = vocab_.find(ch);
  }
  read_merges(file);
}

void BpeTokenizer::read_merges(const gguf::File& file) {
  const gguf::Value* merges = file.find(kMergesKey);
  if (!merges) throw Error(file.path() + ": " + kMergesKey + " is missing (a byte-level BPE vocabulary needs merges)");
  if (!merges->is_array() || merges->array_type() != gguf::ValueType::String) {
    throw Error(file.path() + ": " + kMergesKey + ": expected an array of strings, found " +
                (merges->is_array() ? std::string("an array of ") + gguf::value_type_name(merges->array_type())
                                    : std::string(gguf::value_type_name(merges->type()))));
  }
  const uint64_t n = merges->array_size();
  merges_.reserve(n);
  std::string joined;
  for (uint64_t i = 0; i < n; ++i) {
    const std::string_view merge = merges->string_at(i);
    const auto where = [&] { return file.path() + ": " + kMergesKey + "[" + std::to_string(i) + "] '" + std::string(merge) + "'"; };
    const size_t space = merge.size() > 1 ? merge.find(' ', 1) : std::string_view::npos;
    if (space == std::string_view::npos) throw Error(where() + ": expected two tokens separated by a space");
    const std::string_view first = merge.substr(0, space);
    const std::string_view second = merge.substr(space + 1);
    const int32_t left = vocab_.find(first);
    const int32_t right = vocab_.find(second);
    if (left < 0) throw Error(where() + ": '" + std::string(first) + "' is not a token of the vocabulary");
    if (right < 0) throw Error(where() + ": '" + std::string(second) + "' is not a token of the vocabulary");
    joined.assign(first);
    joined += second;
    const int32_t result = vocab_.find(joined);
    if (result < 0) throw Error(where() + ": the merged text '" + joined + "' is not a token of the vocabulary");
    merges_.insert(pair_key(left, right), Merge{static_cast<int32_t>(i), result});  // first rank wins
  }
}

void BpeTokenizer::encode_text(std::string_view text, bool, std::vector<int32_t>& out) const {
  std::vector<std::string> words;
  pre_tokenizer_.split(text, words);
  for (const std::string& word : words) encode_word(word, out);
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (pre_tokenizer_.ignore_merges()) {
    const int32_t whole = vocab_.find(byte_level_encode(word));
    if (whole >= 0) {
      out.push_back(whole);
      return;
    }
  }

  std::vector<Symbol> symbols(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    symbols[i] = {byte_tokens_[static_cast<uint8_t>(word[i])], static_cast<int32_t>(i) - 1,
                  i + 1 == word.size() ? -1 : static_cast<int32_t>(i + 1), static_cast<uint32_t>(i), 1};
  }
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  const auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0 || symbols[left].id < 0 || symbols[right].id < 0) return;
    const Merge* m = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (!m) return;
    queue.push({m->rank, left, right, symbols[left].id, symbols[right].id, m->result});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    // Stale entry: one side was merged away or changed since it was queued.
    if (left.length == 0 || right.length == 0 || left.next != b.right || left.id != b.left_id ||
        right.id != b.right_id) {
      continue;
    }
    left.id = b.result;
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }

  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    if (symbols[i].id >= 0) {
      out.push_back(symbols[i].id);
      continue;
    }
    // A byte whose character is not in the vocabulary: llama.cpp looks up
    // each byte of the character's UTF-8 text as a token of its own.
    std::string ch;
    unicode::append_utf8(ch, byte_to_codepoint(static_cast<uint8_t>(word[symbols[i].begin])));
    for (char c : ch) {
      const int32_t id = vocab_.find(std::string_view(&c, 1));
      if (id >= 0) out.push_back(id);
    }
  }
}

std::string BpeTokenizer::piece_bytes(int32_t id) const {
  const std::string_view text = vocab_.text(id);
  if (vocab_.has_attr(id, kAttrNormal)) {
    std::string out;
    out.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
      const size_t start = pos;
      const uint32_t cp = unicode::decode_utf8(text, pos);
      const int byte = codepoint_to_byte(cp);
      if (byte >= 0) out.push_back(static_cast<char>(byte));
      else out.append(text.substr(start, pos - start));  // not byte-level text: keep it as it is
    }
    return out;
  }
  if (vocab_.has_attr(id, kAttrByte)) {
    const int value = parse_byte_token(text);
    if (value >= 0) return std::string(1, static_cast<char>(value));
  }
  return "";  // unused / undefined tokens stand for no text
}

int32_t BpeTokenizer::find_by_bytes(std::string_view bytes) const {
  const int32_t id = vocab_.find(byte_level_encode(bytes));
  return id >= 0 && vocab_.has_attr(id, kAttrNormal) ? id : -1;
}

}  // namespace flatline::tokenizer_detail
