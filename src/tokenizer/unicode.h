// Unicode helpers for the tokenizers: UTF-8 decoding that never fails (the
// way llama.cpp decodes, so token ids match it on odd input too), the major
// general-category class of a code point and the White_Space property.
// Tables come from tools/gen_unicode_tables.py (unicode_tables.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flatline::unicode {

constexpr uint32_t kReplacementCharacter = 0xFFFD;

// Major class of the general category (first letter of Lu, Nd, Po, ...).
// The numeric values are written into unicode_tables.cpp by the generator.
enum class CategoryClass : uint8_t {
  kUnassigned = 0,  // Cn
  kLetter = 1,      // L*
  kMark = 2,        // M*
  kNumber = 3,      // N*
  kPunctuation = 4, // P*
  kSymbol = 5,      // S*
  kSeparator = 6,   // Z*
  kOther = 7,       // Cc, Cf, Cs, Co
};

CategoryClass category_class(uint32_t cp);
bool is_white_space(uint32_t cp);

// Length a UTF-8 lead byte announces; continuation and invalid bytes count
// as 1. This is how SentencePiece-style tokenizers cut text into symbols.
inline size_t utf8_sequence_length(uint8_t lead) {
  static constexpr uint8_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[lead >> 4];
}

// Decodes the code point at `pos` and advances past it. A malformed or
// truncated sequence yields U+FFFD and advances one byte. Like llama.cpp,
// overlong forms and surrogates are accepted as they decode.
uint32_t decode_utf8(std::string_view text, size_t& pos);
std::vector<uint32_t> decode_utf8(std::string_view text);
void append_utf8(std::string& out, uint32_t cp);
bool is_valid_utf8(std::string_view text);  // strict: no overlongs, surrogates

namespace detail {
extern const uint32_t kClassRuns[];
extern const size_t kClassRunCount;
extern const uint32_t kWhiteSpace[];
extern const size_t kWhiteSpaceCount;
}  // namespace detail

}  // namespace flatline::unicode
