#include "jinja/pystr.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "jinja/error.h"

namespace flatline::jinja::pystr {

// ---- UTF-8 ------------------------------------------------------------------

std::u32string decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out.push_back(b);
      ++i;
      continue;
    }
    int n = 0;
    char32_t c = 0;
    if ((b & 0xE0) == 0xC0) { n = 1; c = b & 0x1F; }
    else if ((b & 0xF0) == 0xE0) { n = 2; c = b & 0x0F; }
    else if ((b & 0xF8) == 0xF0) { n = 3; c = b & 0x07; }
    bool ok = n > 0 && i + n < s.size();
    for (int k = 1; ok && k <= n; ++k) {
      const auto cb = static_cast<unsigned char>(s[i + k]);
      if ((cb & 0xC0) != 0x80) ok = false;
      c = (c << 6) | (cb & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid too.
    static const char32_t kMin[4] = {0, 0x80, 0x800, 0x10000};
    if (ok && (c < kMin[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))) ok = false;
    if (!ok) {
      out.push_back(0xDC00 + b);  // surrogateescape
      ++i;
      continue;
    }
    out.push_back(c);
    i += n + 1;
  }
  return out;
}

void append_code_point(std::string& out, char32_t c) {
  if (c >= 0xDC80 && c <= 0xDCFF) {  // surrogateescape: the original byte
    out.push_back(static_cast<char>(c - 0xDC00));
  } else if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_code_point(out, c);
  return out;
}

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

size_t length(std::string_view s) {
  if (is_ascii(s)) return s.size();
  return decode(s).size();
}

// ---- character classes ----------------------------------------------------------

bool is_space(char32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
         c == 0x2028 || c == 0x2029;
}

bool is_digit(char32_t c) {
  return (c >= '0' && c <= '9') || (c >= 0x660 && c <= 0x669) || (c >= 0x6F0 && c <= 0x6F9) ||
         (c >= 0x966 && c <= 0x96F) || (c >= 0xFF10 && c <= 0xFF19);
}

bool is_alpha(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (c == 0xAA || c == 0xB5 || c == 0xBA) return true;
  if (c >= 0xC0 && c <= 0x24F) return c != 0xD7 && c != 0xF7;
  if (c >= 0x370 && c <= 0x3FF) return c != 0x375 && c != 0x37E && c != 0x384 && c != 0x385 && c != 0x387;
  if (c >= 0x400 && c <= 0x52F) return !(c >= 0x482 && c <= 0x489);
  if (c >= 0x531 && c <= 0x587) return true;                     // Armenian
  if (c >= 0x5D0 && c <= 0x5EA) return true;                     // Hebrew
  if (c >= 0x620 && c <= 0x64A) return true;                     // Arabic
  if (c >= 0x904 && c <= 0x939) return true;                     // Devanagari letters
  if (c >= 0xE01 && c <= 0xE30) return true;                     // Thai
  if (c >= 0x10A0 && c <= 0x10FF) return true;                   // Georgian
  if (c >= 0x1E00 && c <= 0x1FFF) return true;                   // Latin/Greek extended
  if (c >= 0x3041 && c <= 0x3096) return true;                   // Hiragana
  if (c >= 0x30A1 && c <= 0x30FA) return true;                   // Katakana
  if (c >= 0x3400 && c <= 0x4DBF) return true;                   // CJK ext A
  if (c >= 0x4E00 && c <= 0x9FFF) return true;                   // CJK
  if (c >= 0xAC00 && c <= 0xD7A3) return true;                   // Hangul
  if (c >= 0xF900 && c <= 0xFAFF) return true;                   // CJK compatibility
  if ((c >= 0xFF21 && c <= 0xFF3A) || (c >= 0xFF41 && c <= 0xFF5A)) return true;
  if (c >= 0x20000 && c <= 0x3134F) return true;                 // CJK ext B..
  return false;
}

bool is_word_char(char32_t c) { return c == '_' || is_alpha(c) || is_digit(c); }

bool is_printable(char32_t c) {
  if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) return false;
  if ((c >= 0x600 && c <= 0x605) || c == 0x61C || c == 0x6DD || c == 0x70F || c == 0x1680 || c == 0x180E) return false;
  if ((c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) || (c >= 0x205F && c <= 0x206F)) return false;
  if (c == 0x3000 || (c >= 0xD800 && c <= 0xF8FF) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB)) return false;
  if (c == 0xFFFE || c == 0xFFFF || (c >= 0xE0000 && c <= 0xE0FFF) || c >= 0xF0000) return false;
  return true;
}

// ---- case mapping -----------------------------------------------------------------
// Simple (one to one) mappings for the scripts chat text commonly uses:
// Latin (incl. Extended-A and Vietnamese), Greek, Cyrillic, Armenian and
// fullwidth Latin. Python's full tables cover more; see README "Jinja".

namespace {

// Pairs laid out as upper at even, lower at odd code points (or the reverse).
bool in_pair_range(char32_t c, char32_t first, char32_t last) { return c >= first && c <= last; }

char32_t lower_of(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 32;
  if (c == 0x178) return 0xFF;
  if (in_pair_range(c, 0x100, 0x12F) || in_pair_range(c, 0x132, 0x137) || in_pair_range(c, 0x14A, 0x177))
    return (c % 2 == 0) ? c + 1 : c;
  if (in_pair_range(c, 0x139, 0x148) || in_pair_range(c, 0x179, 0x17E)) return (c % 2 == 1) ? c + 1 : c;
  if (c == 0x130) return 'i';
  if (c == 0x1C4 || c == 0x1C7 || c == 0x1CA || c == 0x1F1) return c + 2;  // DŽ Lj Nj Dz digraphs
  if (c == 0x1C5 || c == 0x1C8 || c == 0x1CB || c == 0x1F2) return c + 1;
  if (in_pair_range(c, 0x1CD, 0x1DC)) return (c % 2 == 1) ? c + 1 : c;
  if (in_pair_range(c, 0x1DE, 0x1EF) || in_pair_range(c, 0x1F8, 0x21F) || in_pair_range(c, 0x222, 0x233))
    return (c % 2 == 0) ? c + 1 : c;
  if (in_pair_range(c, 0x1E00, 0x1E95) || in_pair_range(c, 0x1EA0, 0x1EFF)) return (c % 2 == 0) ? c + 1 : c;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 63;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  if (in_pair_range(c, 0x460, 0x481) || in_pair_range(c, 0x48A, 0x4BF) || in_pair_range(c, 0x4D0, 0x52F))
    return (c % 2 == 0) ? c + 1 : c;
  if (in_pair_range(c, 0x4C1, 0x4CE)) return (c % 2 == 1) ? c + 1 : c;
  if (c == 0x4C0) return 0x4CF;
  if (c >= 0x531 && c <= 0x556) return c + 48;
  if (c >= 0xFF21 && c <= 0xFF3A) return c + 32;
  return c;
}

char32_t upper_of(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c == 0xB5) return 0x39C;
  if (in_pair_range(c, 0x100, 0x12F) || in_pair_range(c, 0x132, 0x137) || in_pair_range(c, 0x14A, 0x177))
    return (c % 2 == 1) ? c - 1 : c;
  if (in_pair_range(c, 0x139, 0x148) || in_pair_range(c, 0x179, 0x17E)) return (c % 2 == 0) ? c - 1 : c;
  if (c == 0x131) return 'I';
  if (c == 0x17F) return 'S';
  if (c == 0x1C6 || c == 0x1C9 || c == 0x1CC || c == 0x1F3) return c - 2;
  if (c == 0x1C5 || c == 0x1C8 || c == 0x1CB || c == 0x1F2) return c - 1;
  if (in_pair_range(c, 0x1CD, 0x1DC)) return (c % 2 == 0) ? c - 1 : c;
  if (in_pair_range(c, 0x1DE, 0x1EF) || in_pair_range(c, 0x1F8, 0x21F) || in_pair_range(c, 0x222, 0x233))
    return (c % 2 == 1) ? c - 1 : c;
  if (in_pair_range(c, 0x1E00, 0x1E95) || in_pair_range(c, 0x1EA0, 0x1EFF)) return (c % 2 == 1) ? c - 1 : c;
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c == 0x3C2) return 0x3A3;
  if (c == 0x3AC) return 0x386;
  if (c >= 0x3AD && c <= 0x3AF) return c - 37;
  if (c == 0x3CC) return 0x38C;
  if (c == 0x3CD || c == 0x3CE) return c - 63;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  if (in_pair_range(c, 0x460, 0x481) || in_pair_range(c, 0x48A, 0x4BF) || in_pair_range(c, 0x4D0, 0x52F))
    return (c % 2 == 1) ? c - 1 : c;
  if (in_pair_range(c, 0x4C1, 0x4CE)) return (c % 2 == 0) ? c - 1 : c;
  if (c == 0x4CF) return 0x4C0;
  if (c >= 0x561 && c <= 0x586) return c - 48;
  if (c >= 0xFF41 && c <= 0xFF5A) return c - 32;
  return c;
}

// Python's Final_Sigma rule: a capital sigma lowers to 'ς' at the end of a word.
bool final_sigma(const std::u32string& s, size_t i) {
  size_t j = i;
  bool cased_before = false;
  while (j > 0) {
    --j;
    if (is_cased(s[j])) { cased_before = true; break; }
    if (s[j] != '\'' && s[j] != 0x2019 && s[j] != 0xAD) break;
  }
  if (!cased_before) return false;
  for (size_t k = i + 1; k < s.size(); ++k) {
    if (is_cased(s[k])) return false;
    if (s[k] != '\'' && s[k] != 0x2019 && s[k] != 0xAD) break;
  }
  return true;
}

// Titlecase differs from uppercase only for the Latin digraphs (ǅ ǈ ǋ ǲ).
char32_t title_of(char32_t c) {
  if (c == 0x1C4 || c == 0x1C6 || c == 0x1C7 || c == 0x1C9 || c == 0x1CA || c == 0x1CC || c == 0x1F1 || c == 0x1F3)
    return (c == 0x1C4 || c == 0x1C7 || c == 0x1CA || c == 0x1F1) ? c + 1 : c - 1;
  return upper_of(c);
}

void append_upper(std::string& out, char32_t c) {
  if (c == 0xDF) {  // ß -> SS
    out += "SS";
  } else {
    append_code_point(out, upper_of(c));
  }
}

void append_lower_at(std::string& out, const std::u32string& s, size_t i) {
  const char32_t c = s[i];
  if (c == 0x3A3) {
    append_code_point(out, final_sigma(s, i) ? 0x3C2 : 0x3C3);
  } else if (c == 0x130) {
    out += "i\xCC\x87";  // İ -> i + combining dot above
  } else {
    append_code_point(out, lower_of(c));
  }
}

}  // namespace

char32_t to_lower(char32_t c) { return lower_of(c); }
char32_t to_upper(char32_t c) { return upper_of(c); }
bool is_cased(char32_t c) {
  return lower_of(c) != c || upper_of(c) != c || c == 0xDF || c == 0x130 || c == 0x131;
}

std::string upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  if (is_ascii(s)) {
    for (char c : s) out.push_back((c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c);
    return out;
  }
  for (char32_t c : decode(s)) append_upper(out, c);
  return out;
}

std::string lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  if (is_ascii(s)) {
    for (char c : s) out.push_back((c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c);
    return out;
  }
  const std::u32string u = decode(s);
  for (size_t i = 0; i < u.size(); ++i) append_lower_at(out, u, i);
  return out;
}

std::string title(std::string_view s) {
  const std::u32string u = decode(s);
  std::string out;
  out.reserve(s.size());
  bool previous_cased = false;
  for (size_t i = 0; i < u.size(); ++i) {
    if (previous_cased) {
      append_lower_at(out, u, i);
    } else if (u[i] == 0xDF) {
      out += "Ss";
    } else {
      append_code_point(out, title_of(u[i]));
    }
    previous_cased = is_cased(u[i]);
  }
  return out;
}

std::string capitalize(std::string_view s) {
  const std::u32string u = decode(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < u.size(); ++i) {
    if (i == 0) {
      if (u[0] == 0xDF) {
        out += "Ss";
      } else {
        append_code_point(out, title_of(u[0]));
      }
    } else {
      append_lower_at(out, u, i);
    }
  }
  return out;
}

std::string swapcase(std::string_view s) {
  const std::u32string u = decode(s);
  std::string out;
  for (size_t i = 0; i < u.size(); ++i) {
    if (lower_of(u[i]) != u[i] || u[i] == 0x130) {
      append_lower_at(out, u, i);
    } else {
      append_upper(out, u[i]);
    }
  }
  return out;
}

// ---- strip / split ------------------------------------------------------------------

std::string strip(std::string_view s, const std::optional<std::string>& chars, StripSide side) {
  const std::u32string u = decode(s);
  const std::u32string set = chars ? decode(*chars) : std::u32string();
  auto strippable = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : is_space(c); };
  size_t b = 0, e = u.size();
  if (side != StripSide::Right)
    while (b < e && strippable(u[b])) ++b;
  if (side != StripSide::Left)
    while (e > b && strippable(u[e - 1])) --e;
  return encode(std::u32string_view(u).substr(b, e - b));
}

namespace {

std::vector<std::string> split_whitespace(const std::u32string& u, int64_t maxsplit) {
  std::vector<std::string> out;
  size_t i = 0;
  const size_t n = u.size();
  if (maxsplit < 0) maxsplit = INT64_MAX;
  while (maxsplit-- > 0) {
    while (i < n && is_space(u[i])) ++i;
    if (i == n) break;
    const size_t j = i;
    ++i;
    while (i < n && !is_space(u[i])) ++i;
    out.push_back(encode(std::u32string_view(u).substr(j, i - j)));
  }
  if (i < n) {
    while (i < n && is_space(u[i])) ++i;
    if (i != n) out.push_back(encode(std::u32string_view(u).substr(i)));
  }
  return out;
}

std::vector<std::string> rsplit_whitespace(const std::u32string& u, int64_t maxsplit) {
  std::vector<std::string> out;
  int64_t i = static_cast<int64_t>(u.size()) - 1;
  if (maxsplit < 0) maxsplit = INT64_MAX;
  while (maxsplit-- > 0) {
    while (i >= 0 && is_space(u[i])) --i;
    if (i < 0) break;
    const int64_t j = i;
    --i;
    while (i >= 0 && !is_space(u[i])) --i;
    out.push_back(encode(std::u32string_view(u).substr(i + 1, j - i)));
  }
  if (i >= 0) {
    while (i >= 0 && is_space(u[i])) --i;
    if (i >= 0) out.push_back(encode(std::u32string_view(u).substr(0, i + 1)));
  }
  return {out.rbegin(), out.rend()};
}

}  // namespace

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  if (!sep) return split_whitespace(decode(s), maxsplit);
  if (sep->empty()) throw Error("empty separator");
  std::vector<std::string> out;
  size_t pos = 0;
  if (maxsplit < 0) maxsplit = INT64_MAX;
  while (maxsplit-- > 0) {
    const size_t hit = s.find(*sep, pos);
    if (hit == std::string_view::npos) break;
    out.emplace_back(s.substr(pos, hit - pos));
    pos = hit + sep->size();
  }
  out.emplace_back(s.substr(pos));
  return out;
}

std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  if (!sep) return rsplit_whitespace(decode(s), maxsplit);
  if (sep->empty()) throw Error("empty separator");
  std::vector<std::string> out;
  size_t end = s.size();
  if (maxsplit < 0) maxsplit = INT64_MAX;
  while (maxsplit-- > 0 && end >= sep->size()) {
    const size_t hit = s.rfind(*sep, end - sep->size());
    if (hit == std::string_view::npos) break;
    out.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
    end = hit;
  }
  out.emplace_back(s.substr(0, end));
  return {out.rbegin(), out.rend()};
}

std::vector<std::string> splitlines(std::string_view s, bool keepends) {
  const std::u32string u = decode(s);
  std::vector<std::string> out;
  size_t i = 0;
  const size_t n = u.size();
  while (i < n) {
    const size_t j = i;
    while (i < n && !is_line_break(u[i])) ++i;
    size_t eol = i;
    if (i < n) {
      if (u[i] == '\r' && i + 1 < n && u[i + 1] == '\n') {
        i += 2;
      } else {
        ++i;
      }
      if (keepends) eol = i;
    }
    out.push_back(encode(std::u32string_view(u).substr(j, eol - j)));
  }
  return out;
}

std::string replace(std::string_view s, std::string_view old, std::string_view replacement, int64_t count) {
  if (count < 0) count = INT64_MAX;
  std::string out;
  if (old.empty()) {  // inserts between code points and at both ends
    const std::u32string u = decode(s);
    for (size_t i = 0; i <= u.size(); ++i) {
      if (count > 0) {
        out += replacement;
        --count;
      }
      if (i < u.size()) append_code_point(out, u[i]);
    }
    return out;
  }
  size_t pos = 0;
  while (count > 0) {
    const size_t hit = s.find(old, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out.append(replacement);
    pos = hit + old.size();
    --count;
  }
  out.append(s.substr(pos));
  return out;
}

int64_t count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<int64_t>(length(s)) + 1;
  int64_t n = 0;
  size_t pos = 0;
  while ((pos = s.find(sub, pos)) != std::string_view::npos) {
    ++n;
    pos += sub.size();
  }
  return n;
}

namespace {

// Python's slice-style normalisation of the optional start / end of find().
void normalise_range(int64_t len, std::optional<int64_t> start, std::optional<int64_t> end, int64_t& b, int64_t& e) {
  b = start.value_or(0);
  e = end.value_or(len);
  if (b < 0) b = std::max<int64_t>(0, b + len);
  if (e < 0) e = std::max<int64_t>(0, e + len);
  if (e > len) e = len;
}

int64_t find_impl(std::string_view s, std::string_view sub, std::optional<int64_t> start, std::optional<int64_t> end,
                  bool reverse) {
  const std::u32string u = decode(s);
  const std::u32string needle = decode(sub);
  int64_t b, e;
  normalise_range(static_cast<int64_t>(u.size()), start, end, b, e);
  if (b > static_cast<int64_t>(u.size()) || e - b < static_cast<int64_t>(needle.size())) return -1;
  const std::u32string_view hay = std::u32string_view(u).substr(b, e - b);
  const size_t hit = reverse ? hay.rfind(needle) : hay.find(needle);
  return hit == std::u32string_view::npos ? -1 : static_cast<int64_t>(hit) + b;
}

}  // namespace

int64_t find(std::string_view s, std::string_view sub, std::optional<int64_t> start, std::optional<int64_t> end) {
  return find_impl(s, sub, start, end, false);
}

int64_t rfind(std::string_view s, std::string_view sub, std::optional<int64_t> start, std::optional<int64_t> end) {
  return find_impl(s, sub, start, end, true);
}

namespace {
std::string repeat(char32_t fill, int64_t n) {
  std::string unit;
  append_code_point(unit, fill);
  std::string out;
  out.reserve(unit.size() * static_cast<size_t>(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) out += unit;
  return out;
}
}  // namespace

std::string center(std::string_view s, int64_t width, char32_t fill) {
  const int64_t len = static_cast<int64_t>(length(s));
  const int64_t marg = width - len;
  if (marg <= 0) return std::string(s);
  const int64_t left = marg / 2 + (marg & width & 1);
  return repeat(fill, left) + std::string(s) + repeat(fill, marg - left);
}

std::string ljust(std::string_view s, int64_t width, char32_t fill) {
  const int64_t len = static_cast<int64_t>(length(s));
  return width <= len ? std::string(s) : std::string(s) + repeat(fill, width - len);
}

std::string rjust(std::string_view s, int64_t width, char32_t fill) {
  const int64_t len = static_cast<int64_t>(length(s));
  return width <= len ? std::string(s) : repeat(fill, width - len) + std::string(s);
}

std::string zfill(std::string_view s, int64_t width) {
  const int64_t len = static_cast<int64_t>(length(s));
  if (width <= len) return std::string(s);
  std::string pad(static_cast<size_t>(width - len), '0');
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) return std::string(1, s[0]) + pad + std::string(s.substr(1));
  return pad + std::string(s);
}

// ---- indexing -------------------------------------------------------------------------

std::optional<std::string> item(std::string_view s, int64_t index) {
  if (is_ascii(s)) {
    const int64_t n = static_cast<int64_t>(s.size());
    if (index < 0) index += n;
    if (index < 0 || index >= n) return std::nullopt;
    return std::string(1, s[static_cast<size_t>(index)]);
  }
  const std::u32string u = decode(s);
  const int64_t n = static_cast<int64_t>(u.size());
  if (index < 0) index += n;
  if (index < 0 || index >= n) return std::nullopt;
  std::string out;
  append_code_point(out, u[static_cast<size_t>(index)]);
  return out;
}

std::string slice(std::string_view s, std::optional<int64_t> start, std::optional<int64_t> stop, int64_t step) {
  const std::u32string u = decode(s);
  const int64_t n = static_cast<int64_t>(u.size());
  if (step == 0) throw Error("slice step cannot be zero");
  int64_t b, e;
  if (step > 0) {
    b = start.value_or(0);
    e = stop.value_or(n);
    if (b < 0) b = std::max<int64_t>(0, b + n);
    if (e < 0) e = std::max<int64_t>(0, e + n);
    b = std::min(b, n);
    e = std::min(e, n);
  } else {
    b = start.value_or(n - 1);
    e = stop.value_or(-n - 1);
    if (b < 0) b += n;
    if (e < 0) e += n;
    b = std::clamp<int64_t>(b, -1, n - 1);
    e = std::clamp<int64_t>(e, -1, n - 1);
  }
  std::string out;
  if (step > 0) {
    for (int64_t i = b; i < e; i += step) append_code_point(out, u[static_cast<size_t>(i)]);
  } else {
    for (int64_t i = b; i > e; i += step) append_code_point(out, u[static_cast<size_t>(i)]);
  }
  return out;
}

// ---- repr and numbers --------------------------------------------------------------

std::string repr(std::string_view s) {
  const std::u32string u = decode(s);
  const bool has_single = u.find(U'\'') != std::u32string::npos;
  const bool has_double = u.find(U'"') != std::u32string::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  char buf[16];
  for (char32_t c : u) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    } else if (c < 0x80 || is_printable(c)) {
      append_code_point(out, c);
    } else if (c <= 0xFF) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    } else if (c <= 0xFFFF) {
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(c));
      out += buf;
    }
  }
  out.push_back(quote);
  return out;
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // Shortest round-trip digits, then Python's layout: positional notation
  // when -4 < exponent10 < 16, scientific otherwise ("1e+16", "1.5e-05").
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t epos = sci.find('e');
  std::string digits = sci.substr(0, epos);
  const int exponent = std::atoi(sci.c_str() + epos + 1);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int decpt = exponent + 1;  // position of the decimal point after the first digit
  std::string out = sign;
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
    } else if (static_cast<size_t>(decpt) >= digits.size()) {
      out += digits + std::string(static_cast<size_t>(decpt) - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(decpt)) + "." + digits.substr(static_cast<size_t>(decpt));
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  std::snprintf(buf, sizeof buf, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  return out + buf;
}

namespace {

// Removes single underscores between digits (Python literal rules); false
// if an underscore is misplaced.
bool strip_underscores(std::string& digits) {
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (digits[i] == '_') {
      if (i == 0 || i + 1 == digits.size() || digits[i + 1] == '_' || !std::isxdigit(static_cast<unsigned char>(digits[i - 1])))
        return false;
      continue;
    }
    out.push_back(digits[i]);
  }
  digits = out;
  return true;
}

std::string strip_ascii_space(std::string_view s) { return strip(s, std::nullopt); }

}  // namespace

std::optional<int64_t> parse_int(std::string_view text, int base) {
  std::string s = strip_ascii_space(text);
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.erase(0, 1);
  }
  auto has_prefix = [&](char p) {
    return s.size() >= 2 && s[0] == '0' && (s[1] == p || s[1] == static_cast<char>(std::toupper(p)));
  };
  if (base == 0) {
    if (has_prefix('x')) { base = 16; s.erase(0, 2); }
    else if (has_prefix('o')) { base = 8; s.erase(0, 2); }
    else if (has_prefix('b')) { base = 2; s.erase(0, 2); }
    else {
      base = 10;
      if (s.size() > 1 && s[0] == '0' && s.find_first_not_of("0_") != std::string::npos) return std::nullopt;
    }
  } else if ((base == 16 && has_prefix('x')) || (base == 8 && has_prefix('o')) || (base == 2 && has_prefix('b'))) {
    s.erase(0, 2);
    if (!s.empty() && s[0] == '_') s.erase(0, 1);
  }
  if (base < 2 || base > 36 || s.empty() || !strip_underscores(s)) return std::nullopt;
  int64_t value = 0;
  auto res = std::from_chars(s.data(), s.data() + s.size(), value, base);
  if (res.ec != std::errc() || res.ptr != s.data() + s.size()) return std::nullopt;
  return negative ? -value : value;
}

std::optional<double> parse_float(std::string_view text) {
  std::string s = strip_ascii_space(text);
  std::string lowered = lower(s);
  std::string body = lowered;
  double sign = 1.0;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    if (body[0] == '-') sign = -1.0;
    body.erase(0, 1);
  }
  if (body == "inf" || body == "infinity") return sign * INFINITY;
  if (body == "nan") return NAN;
  // digits [. digits] [e [sign] digits], with single underscores between digits
  size_t i = 0;
  bool any_digit = false;
  auto digits = [&]() {
    const size_t start = i;
    while (i < body.size() && (std::isdigit(static_cast<unsigned char>(body[i])) || body[i] == '_')) ++i;
    std::string part = body.substr(start, i - start);
    if (!part.empty()) any_digit = true;
    return part;
  };
  std::string mantissa = digits();
  std::string fraction;
  if (i < body.size() && body[i] == '.') {
    ++i;
    fraction = digits();
  }
  if (!any_digit) return std::nullopt;
  std::string exponent;
  bool has_exponent = false;
  if (i < body.size() && body[i] == 'e') {
    has_exponent = true;
    ++i;
    if (i < body.size() && (body[i] == '+' || body[i] == '-')) exponent.push_back(body[i++]);
    const size_t before = i;
    std::string e = digits();
    if (i == before || !strip_underscores(e)) return std::nullopt;
    exponent += e;
  }
  if (i != body.size() || !strip_underscores(mantissa) || !strip_underscores(fraction)) return std::nullopt;
  std::string clean = mantissa + "." + fraction + (has_exponent ? "e" + exponent : "");
  return sign * std::strtod(clean.c_str(), nullptr);
}

}  // namespace flatline::jinja::pystr
