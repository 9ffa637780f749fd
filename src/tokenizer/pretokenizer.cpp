#include "tokenizer/pretokenizer.h"

#include <algorithm>
#include <utility>

#include "tokenizer/unicode.h"
#include "util/error.h"

namespace flatline::tokenizer_detail {

namespace {

// --- code point classes -------------------------------------------------------

uint8_t class_bits(uint32_t cp) {
  uint8_t bits = unicode::is_white_space(cp) ? kClassWhiteSpace : 0;
  switch (unicode::category_class(cp)) {
    case unicode::CategoryClass::kLetter: bits |= kClassLetter; break;
    case unicode::CategoryClass::kNumber: bits |= kClassNumber; break;
    case unicode::CategoryClass::kPunctuation: bits |= kClassPunctuation; break;
    case unicode::CategoryClass::kSymbol: bits |= kClassSymbol; break;
    case unicode::CategoryClass::kMark: bits |= kClassMark; break;
    default: break;
  }
  return bits;
}

using Text = CodepointText;

bool is(const Text& t, size_t i, size_t end, uint8_t bits) { return i < end && (t.classes[i] & bits); }
bool is_letter(const Text& t, size_t i, size_t end) { return is(t, i, end, kClassLetter); }
bool is_number(const Text& t, size_t i, size_t end) { return is(t, i, end, kClassNumber); }
bool is_space(const Text& t, size_t i, size_t end) { return is(t, i, end, kClassWhiteSpace); }
// [^\s\p{L}\p{N}]
bool is_other(const Text& t, size_t i, size_t end) {
  return i < end && !(t.classes[i] & (kClassLetter | kClassNumber | kClassWhiteSpace));
}
bool is_cr_or_lf(const Text& t, size_t i, size_t end) { return i < end && (t.cps[i] == '\r' || t.cps[i] == '\n'); }

template <typename Pred>
size_t run_end(const Text& t, size_t i, size_t end, Pred pred) {
  while (pred(t, i, end)) ++i;
  return i;
}

uint32_t ascii_lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

// 's|'t|'re|'ve|'m|'ll|'d (optionally case-insensitive): match length or 0.
size_t match_contraction(const Text& t, size_t pos, size_t end, bool ignore_case) {
  if (t.cps[pos] != '\'' || pos + 1 >= end) return 0;
  const auto at = [&](size_t i) { return ignore_case ? ascii_lower(t.cps[i]) : t.cps[i]; };
  const uint32_t a = at(pos + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (pos + 2 >= end) return 0;
  const uint32_t b = at(pos + 2);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// " ?X+" : one optional leading space, then a run of X.
template <typename Pred>
size_t match_space_then_run(const Text& t, size_t pos, size_t end, Pred pred) {
  const size_t start = t.cps[pos] == ' ' && pred(t, pos + 1, end) ? pos + 1 : pos;
  return pred(t, start, end) ? run_end(t, start, end, pred) - pos : 0;
}

// "\s+(?!\S)" : a whitespace run that is not followed by non-space, so it
// gives its last character to the next word. 0 if it cannot match.
size_t match_space_not_before_word(size_t run, size_t pos, size_t end) {
  if (run == 0) return 0;
  if (pos + run == end) return run;
  return run > 1 ? run - 1 : 0;
}

// --- patterns -----------------------------------------------------------------

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
size_t match_gpt2(const Text& t, size_t pos, size_t end) {
  if (size_t n = match_contraction(t, pos, end, false)) return n;
  if (size_t n = match_space_then_run(t, pos, end, is_letter)) return n;
  if (size_t n = match_space_then_run(t, pos, end, is_number)) return n;
  if (size_t n = match_space_then_run(t, pos, end, is_other)) return n;
  return match_space_not_before_word(run_end(t, pos, end, is_space) - pos, pos, end);
}

// Llama 3 (MaxDigits 3) and Qwen2 (MaxDigits 1):
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
template <size_t MaxDigits>
size_t match_llama3(const Text& t, size_t pos, size_t end) {
  if (size_t n = match_contraction(t, pos, end, true)) return n;
  if (is_letter(t, pos, end)) return run_end(t, pos, end, is_letter) - pos;
  if (!is_cr_or_lf(t, pos, end) && !is_number(t, pos, end) && is_letter(t, pos + 1, end)) {
    return run_end(t, pos + 1, end, is_letter) - pos;
  }
  if (is_number(t, pos, end)) return std::min(run_end(t, pos, end, is_number) - pos, MaxDigits);
  const size_t start = t.cps[pos] == ' ' && is_other(t, pos + 1, end) ? pos + 1 : pos;
  if (is_other(t, start, end)) return run_end(t, run_end(t, start, end, is_other), end, is_cr_or_lf) - pos;
  // \s*[\r\n]+ ends after the last CR/LF of the whitespace run.
  const size_t space_end = run_end(t, pos, end, is_space);
  for (size_t i = space_end; i > pos; --i) {
    if (is_cr_or_lf(t, i - 1, end)) return i - pos;
  }
  const size_t run = space_end - pos;
  if (size_t n = match_space_not_before_word(run, pos, end)) return n;
  return run;  // \s+
}

// Single-class patterns.
size_t match_cr_or_lf(const Text& t, size_t pos, size_t end) { return is_cr_or_lf(t, pos, end) ? 1 : 0; }
size_t match_number(const Text& t, size_t pos, size_t end) { return is_number(t, pos, end) ? 1 : 0; }
size_t match_numbers(const Text& t, size_t pos, size_t end) { return run_end(t, pos, end, is_number) - pos; }
size_t match_three_ascii_digits(const Text& t, size_t pos, size_t end) {
  if (pos + 3 > end) return 0;
  for (size_t i = pos; i < pos + 3; ++i) {
    if (t.cps[i] < '0' || t.cps[i] > '9') return 0;
  }
  return 3;
}

// "\s?X+"
template <bool (*Pred)(const Text&, size_t, size_t)>
size_t match_optional_space_then_run(const Text& t, size_t pos, size_t end) {
  const size_t start = is_space(t, pos, end) && Pred(t, pos + 1, end) ? pos + 1 : pos;
  return Pred(t, start, end) ? run_end(t, start, end, Pred) - pos : 0;
}

// "X+"
template <bool (*Pred)(const Text&, size_t, size_t)>
size_t match_run(const Text& t, size_t pos, size_t end) {
  return run_end(t, pos, end, Pred) - pos;
}

// [\p{P}\$\+<=>\^~\|]+ (default) and with ` (falcon).
template <bool WithBacktick>
bool is_punct_or_operator(const Text& t, size_t i, size_t end) {
  if (i >= end) return false;
  if (t.classes[i] & kClassPunctuation) return true;
  const uint32_t c = t.cps[i];
  return c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '~' || c == '|' ||
         (WithBacktick && c == '`');
}

// Character classes written out as code point ranges (from the tokenizer.json
// regexes of DeepSeek and BLOOM). llama.cpp runs these through std::wregex
// after turning non-ASCII whitespace into U+000B, so such characters never
// fall inside a range.
struct Range {
  uint32_t lo, hi;
};

// `ranges` must be sorted and not overlap.
template <size_t N>
bool in_ranges(uint32_t cp, const Range (&ranges)[N]) {
  const Range* it = std::upper_bound(ranges, ranges + N, cp, [](uint32_t c, const Range& r) { return c < r.lo; });
  return it != ranges && cp <= it[-1].hi;
}

bool is_wide_space_replaced(const Text& t, size_t i) { return t.cps[i] > 0x7F && (t.classes[i] & kClassWhiteSpace); }

// DeepSeek LLM's letter class: cased letters of Latin, Greek, Cyrillic,
// Armenian, Georgian, Cherokee, ... scripts.
constexpr Range kDeepseekLettersRanges[] = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA}, {0x1BC, 0x1BF},
    {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377}, {0x37B, 0x37D}, {0x37F, 0x37F},
    {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481},
    {0x48A, 0x52F}, {0x531, 0x556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA},
    {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D},
    {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D},
    {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC},
    {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102},
    {0x2107, 0x2107}, {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126},
    {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149},
    {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3},
    {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787}, {0xA78B, 0xA78E}, {0xAB70, 0xABBF},
    {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0x10400, 0x1044F},
    {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF},
    {0x1E900, 0x1E943}};

bool is_deepseek_letter(const Text& t, size_t i, size_t end) {
  return i < end && !is_wide_space_replaced(t, i) && in_ranges(t.cps[i], kDeepseekLettersRanges);
}

// [!-/:-~！-／：-～‘-‟　-。]
constexpr Range kDeepseekPunctRanges[] = {{0x21, 0x2F}, {0x3A, 0x7E}, {0x2018, 0x201F}, {0x3000, 0x3002},
                                    {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E}};

bool is_deepseek_punct(const Text& t, size_t i, size_t end) {
  return i < end && !is_wide_space_replaced(t, i) && in_ranges(t.cps[i], kDeepseekPunctRanges);
}

// [一-龥ࠀ-一가-퟿], i.e. U+4E00-9FA5, U+0800-4E00 and U+AC00-D7FF.
constexpr Range kDeepseekCjkRanges[] = {{0x0800, 0x9FA5}, {0xAC00, 0xD7FF}};

bool is_deepseek_cjk(const Text& t, size_t i, size_t end) {
  return i < end && !is_wide_space_replaced(t, i) && in_ranges(t.cps[i], kDeepseekCjkRanges);
}

// [^(\s|.,!?…。，、।۔،)] of BLOOM-family pre-tokenizers.
constexpr Range kBloomSeparators[] = {{'!', '!'},       {'(', ')'},       {',', ','},       {'.', '.'},
                                      {'?', '?'},       {'|', '|'},       {0x060C, 0x060C}, {0x06D4, 0x06D4},
                                      {0x0964, 0x0964}, {0x2026, 0x2026}, {0x3001, 0x3002}, {0xFF0C, 0xFF0C}};

bool is_bloom_word(const Text& t, size_t i, size_t end) {
  return i < end && !(t.classes[i] & kClassWhiteSpace) && !in_ranges(t.cps[i], kBloomSeparators);
}

size_t match_bloom(const Text& t, size_t pos, size_t end) {
  return match_space_then_run(t, pos, end, is_bloom_word);
}

bool is_letter_pred(const Text& t, size_t i, size_t end) { return is_letter(t, i, end); }
bool is_punct_pred(const Text& t, size_t i, size_t end) { return is(t, i, end, kClassPunctuation); }

// --- steps ----------------------------------------------------------------------

// Runs a matcher over every span like std::regex_iterator: the leftmost
// match is taken, and the text between matches stays a piece of its own.
template <size_t (*Match)(const Text&, size_t, size_t)>
void split_matches(const Text& t, const std::vector<Span>& in, std::vector<Span>& out) {
  for (const Span& s : in) {
    size_t gap = s.begin;
    size_t pos = s.begin;
    while (pos < s.end) {
      const size_t n = Match(t, pos, s.end);
      if (n == 0) {
        ++pos;
        continue;
      }
      if (gap < pos) out.push_back({static_cast<uint32_t>(gap), static_cast<uint32_t>(pos)});
      out.push_back({static_cast<uint32_t>(pos), static_cast<uint32_t>(pos + n)});
      pos += n;
      gap = pos;
    }
    if (gap < s.end) out.push_back({static_cast<uint32_t>(gap), s.end});
  }
}

// "\s+$": the whitespace at the end of each span.
void split_trailing_space(const Text& t, const std::vector<Span>& in, std::vector<Span>& out) {
  for (const Span& s : in) {
    uint32_t start = s.end;
    while (start > s.begin && (t.classes[start - 1] & kClassWhiteSpace)) --start;
    if (start > s.begin) out.push_back({s.begin, start});
    if (start < s.end) out.push_back({start, s.end});
  }
}

constexpr SplitStep kGpt2 = split_matches<match_gpt2>;
constexpr SplitStep kLlama3 = split_matches<match_llama3<3>>;
constexpr SplitStep kQwen2 = split_matches<match_llama3<1>>;
constexpr SplitStep kCrOrLf = split_matches<match_cr_or_lf>;
constexpr SplitStep kNumber = split_matches<match_number>;
constexpr SplitStep kNumbers = split_matches<match_numbers>;
constexpr SplitStep kThreeAsciiDigits = split_matches<match_three_ascii_digits>;
constexpr SplitStep kPunctRunDefault = split_matches<match_run<is_punct_or_operator<false>>>;
constexpr SplitStep kPunctRunFalcon = split_matches<match_run<is_punct_or_operator<true>>>;
constexpr SplitStep kDeepseekLetters = split_matches<match_optional_space_then_run<is_deepseek_letter>>;
constexpr SplitStep kDeepseekPunct = split_matches<match_optional_space_then_run<is_deepseek_punct>>;
constexpr SplitStep kDeepseekCjk = split_matches<match_run<is_deepseek_cjk>>;
constexpr SplitStep kSpaceLetters = split_matches<match_optional_space_then_run<is_letter_pred>>;
constexpr SplitStep kSpacePunct = split_matches<match_optional_space_then_run<is_punct_pred>>;
constexpr SplitStep kBloom = split_matches<match_bloom>;

struct Definition {
  std::vector<std::string> names;
  std::vector<SplitStep> steps;
  bool ignore_merges = false;
  bool add_bos = false;
};

// The regex lists of llama.cpp's llm_tokenizer_bpe, by tokenizer.ggml.pre.
const std::vector<Definition>& definitions() {
  static const std::vector<Definition> defs = {
      {{"", "default"}, {kPunctRunDefault, kGpt2, kNumbers, kThreeAsciiDigits}},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"},
       {kLlama3}, true, true},
      {{"dbrx", "smaug-bpe"}, {kLlama3}},
      {{"deepseek-llm"},
       {kCrOrLf, kDeepseekLetters, kDeepseekPunct, split_trailing_space, kDeepseekCjk, kNumbers}},
      {{"deepseek-coder"}, {kCrOrLf, kSpaceLetters, kSpacePunct, kDeepseekCjk, kNumber}},
      {{"falcon"}, {kPunctRunFalcon, kGpt2, kThreeAsciiDigits}},
      {{"gpt-2", "gpt2", "mpt", "olmo", "phi-2", "jais", "trillion", "granite-docling", "exaone4", "roberta-bpe",
        "jina-es", "jina-de", "jina-v1-en", "jina-v2-es", "jina-v2-de", "jina-v2-code", "gigachat", "a.x-4.0",
        "mellum"},
       {kGpt2}},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"}, {kNumber, kGpt2}},
      {{"qwen2", "deepseek-r1-qwen", "kormo", "megrez", "stablelm2", "hunyuan"}, {kQwen2}},
      {{"poro-chat", "bloom", "gpt3-finnish"}, {kBloom}},
      {{"viking"}, {kBloom, kNumber}},
  };
  return defs;
}

}  // namespace

std::vector<std::string> known_pre_tokenizers() {
  std::vector<std::string> names;
  for (const Definition& d : definitions()) {
    for (const std::string& n : d.names) {
      if (!n.empty()) names.push_back(n);
    }
  }
  return names;
}

PreTokenizer PreTokenizer::from_name(std::string_view name) {
  for (const Definition& d : definitions()) {
    for (const std::string& n : d.names) {
      if (name == n) {
        PreTokenizer p;
        p.name_ = name.empty() ? "default" : std::string(name);
        p.steps_ = d.steps;
        p.ignore_merges_ = d.ignore_merges;
        p.add_bos_ = d.add_bos;
        return p;
      }
    }
  }
  std::string known;
  for (const auto& n : known_pre_tokenizers()) known += (known.empty() ? "" : ", ") + n;
  throw Error("pre-tokenizer '" + std::string(name) + "' (tokenizer.ggml.pre) is not supported; expected one of: " +
              known);
}

void PreTokenizer::split(std::string_view utf8, std::vector<std::string>& words) const {
  words.clear();
  Text text;
  text.cps = unicode::decode_utf8(utf8);
  if (text.cps.empty()) return;
  text.classes.resize(text.cps.size());
  for (size_t i = 0; i < text.cps.size(); ++i) text.classes[i] = class_bits(text.cps[i]);

  std::vector<Span> spans = {{0, static_cast<uint32_t>(text.cps.size())}};
  std::vector<Span> next;
  for (SplitStep step : steps_) {
    next.clear();
    step(text, spans, next);
    spans.swap(next);
  }
  words.reserve(spans.size());
  for (const Span& s : spans) {
    std::string word;
    for (uint32_t i = s.begin; i < s.end; ++i) unicode::append_utf8(word, text.cps[i]);
    words.push_back(std::move(word));
  }
}

}  // namespace flatline::tokenizer_detail
