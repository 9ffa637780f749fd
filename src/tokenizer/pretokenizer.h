// Pre-tokenizers of byte-level BPE vocabularies: split text into words
// before BPE merges, as the regex lists llama.cpp selects by
// tokenizer.ggml.pre do. std::regex cannot express \p{L} and friends, so
// every pattern is a hand-written matcher over code points with the same
// semantics (ordered alternatives, greedy runs, lookaheads), including the
// way llama.cpp applies a list of patterns one after the other, each
// splitting the pieces the previous one left (text between matches stays a
// piece of its own). Internal to src/tokenizer/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flatline::tokenizer_detail {

// Code points of the text being split and their classes.
struct CodepointText {
  std::vector<uint32_t> cps;
  std::vector<uint8_t> classes;  // CodepointClass bits
};

enum CodepointClass : uint8_t {
  kClassLetter = 1,      // \p{L}
  kClassNumber = 2,      // \p{N}
  kClassPunctuation = 4, // \p{P}
  kClassWhiteSpace = 8,  // \s (Unicode White_Space)
  kClassSymbol = 16,     // \p{S}
  kClassMark = 32,       // \p{M}
};

struct Span {
  uint32_t begin;  // code point indices
  uint32_t end;
};

// Splits the spans in `in` into `out` (both over `text`).
using SplitStep = void (*)(const CodepointText& text, const std::vector<Span>& in, std::vector<Span>& out);

class PreTokenizer {
 public:
  // The pre-tokenizer named by tokenizer.ggml.pre ("" = llama.cpp's default).
  // Throws Error for a name this build does not know.
  static PreTokenizer from_name(std::string_view name);

  // Splits UTF-8 text into words; each word is re-encoded from code points,
  // so invalid bytes come out as U+FFFD (as in llama.cpp).
  void split(std::string_view text, std::vector<std::string>& words) const;

  // llama.cpp's per-pre-tokenizer flags.
  bool ignore_merges() const { return ignore_merges_; }  // a word that is a token is used whole
  bool add_bos() const { return add_bos_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::vector<SplitStep> steps_;
  bool ignore_merges_ = false;
  bool add_bos_ = false;
};

// Names from_name accepts (for messages and tests).
std::vector<std::string> known_pre_tokenizers();

}  // namespace flatline::tokenizer_detail
