// Python str semantics over UTF-8 std::string: what Jinja templates see when
// they call str methods (strip, split, title, ...), index or slice strings,
// or print floats. Python counts and indexes code points, so these helpers
// decode where it matters and keep an ASCII fast path.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flatline::jinja::pystr {

// Invalid UTF-8 bytes decode to U+DC80 + byte (Python's surrogateescape)
// and encode back to the same byte, so any byte string round-trips.
std::u32string decode(std::string_view s);
std::string encode(std::u32string_view s);
void append_code_point(std::string& out, char32_t c);
bool is_ascii(std::string_view s);
size_t length(std::string_view s);  // in code points

bool is_space(char32_t c);       // str.isspace
bool is_line_break(char32_t c);  // str.splitlines boundaries
bool is_alpha(char32_t c);       // approximation of str.isalpha beyond Latin/Greek/Cyrillic
bool is_digit(char32_t c);
bool is_word_char(char32_t c);   // regex \w
bool is_printable(char32_t c);   // str.isprintable, for repr()
char32_t to_lower(char32_t c);
char32_t to_upper(char32_t c);   // single code point (see upper() for ß)
bool is_cased(char32_t c);

std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string title(std::string_view s);       // str.title
std::string capitalize(std::string_view s);  // str.capitalize
std::string swapcase(std::string_view s);

enum class StripSide { Both, Left, Right };
// chars == nullopt strips whitespace (str.isspace), else any of chars.
std::string strip(std::string_view s, const std::optional<std::string>& chars, StripSide side = StripSide::Both);

// sep == nullopt: split on runs of whitespace, dropping empty parts.
// Throws jinja::Error for an empty separator (as Python raises ValueError).
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit = -1);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit = -1);
std::vector<std::string> splitlines(std::string_view s, bool keepends = false);
std::string replace(std::string_view s, std::string_view old, std::string_view replacement, int64_t count = -1);
int64_t count(std::string_view s, std::string_view sub);
// Code-point index of the first / last occurrence in s[start:end], or -1.
int64_t find(std::string_view s, std::string_view sub, std::optional<int64_t> start = {},
             std::optional<int64_t> end = {});
int64_t rfind(std::string_view s, std::string_view sub, std::optional<int64_t> start = {},
              std::optional<int64_t> end = {});
std::string center(std::string_view s, int64_t width, char32_t fill = U' ');
std::string ljust(std::string_view s, int64_t width, char32_t fill = U' ');
std::string rjust(std::string_view s, int64_t width, char32_t fill = U' ');
std::string zfill(std::string_view s, int64_t width);

// s[index] and s[start:stop:step] in code points, Python's clamping rules.
// item returns nullopt when the index is out of range.
std::optional<std::string> item(std::string_view s, int64_t index);
std::string slice(std::string_view s, std::optional<int64_t> start, std::optional<int64_t> stop, int64_t step);

// repr(str): quotes and escapes as Python does.
std::string repr(std::string_view s);
// repr(float) / str(float): shortest round-trip digits, "1.0", "1e+16", "nan", "inf".
std::string float_repr(double d);
// Python int(str, base) and float(str); nullopt if Python would raise ValueError.
std::optional<int64_t> parse_int(std::string_view s, int base = 10);
std::optional<double> parse_float(std::string_view s);

}  // namespace flatline::jinja::pystr
