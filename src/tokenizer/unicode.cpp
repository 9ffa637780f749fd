#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <memory>

namespace flatline::unicode {

namespace {

constexpr uint32_t kMaxCodepoint = 0x10FFFF;

CategoryClass lookup_class(uint32_t cp) {
  // Runs are sorted by first code point; find the last run starting <= cp.
  const uint32_t key = (cp << 8) | 0xFF;
  const uint32_t* end = detail::kClassRuns + detail::kClassRunCount;
  const uint32_t* it = std::upper_bound(detail::kClassRuns, end, key);
  return static_cast<CategoryClass>(it[-1] & 0xFF);
}

// The Basic Multilingual Plane holds nearly every character tokenizers see,
// so its classes are expanded once into a flat table.
struct BmpTable {
  std::array<uint8_t, 0x10000> classes;
  std::array<bool, 0x10000> white;
  BmpTable() {
    for (uint32_t cp = 0; cp < 0x10000; ++cp) classes[cp] = static_cast<uint8_t>(lookup_class(cp));
    white.fill(false);
    for (size_t i = 0; i < detail::kWhiteSpaceCount; ++i) white[detail::kWhiteSpace[i]] = true;
  }
};

const BmpTable& bmp() {
  static const BmpTable table;
  return table;
}

}  // namespace

CategoryClass category_class(uint32_t cp) {
  if (cp < 0x10000) return static_cast<CategoryClass>(bmp().classes[cp]);
  if (cp > kMaxCodepoint) return CategoryClass::kUnassigned;
  return lookup_class(cp);
}

bool is_white_space(uint32_t cp) { return cp < 0x10000 && bmp().white[cp]; }

uint32_t decode_utf8(std::string_view text, size_t& pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const auto continuation = [&](size_t i) { return i < text.size() && (byte(i) & 0xC0) == 0x80; };
  const uint8_t lead = byte(pos);
  if (lead < 0x80) {
    ++pos;
    return lead;
  }
  uint32_t cp = 0;
  size_t length = 0;
  if ((lead & 0xE0) == 0xC0) {
    cp = lead & 0x1F;
    length = 2;
  } else if ((lead & 0xF0) == 0xE0) {
    cp = lead & 0x0F;
    length = 3;
  } else if ((lead & 0xF8) == 0xF0) {
    cp = lead & 0x07;
    length = 4;
  } else {
    ++pos;
    return kReplacementCharacter;
  }
  for (size_t i = 1; i < length; ++i) {
    if (!continuation(pos + i)) {
      ++pos;
      return kReplacementCharacter;
    }
    cp = (cp << 6) | (byte(pos + i) & 0x3F);
  }
  if (cp > kMaxCodepoint) {  // F5..F7 leads: no code point to re-encode
    ++pos;
    return kReplacementCharacter;
  }
  pos += length;
  return cp;
}

std::vector<uint32_t> decode_utf8(std::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) out.push_back(decode_utf8(text, pos));
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_valid_utf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    const size_t start = pos;
    const uint32_t cp = decode_utf8(text, pos);
    const size_t length = pos - start;
    if (cp == kReplacementCharacter && length == 1) return false;
    const size_t shortest = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (length != shortest) return false;                 // overlong
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;       // surrogate
  }
  return true;
}

}  // namespace flatline::unicode
