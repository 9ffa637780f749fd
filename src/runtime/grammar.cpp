#include "runtime/grammar.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <map>

#include "util/error.h"

namespace flatline {

namespace {

constexpr uint32_t kInfinite = std::numeric_limits<uint32_t>::max();
constexpr uint32_t kMaxCodepoint = 0x10FFFF;
constexpr size_t kMaxElements = 4u << 20;   // a grammar larger than this is a mistake or an attack
constexpr uint32_t kMaxRepetition = 100000;  // x{m,n}: m, n at most this
constexpr size_t kMaxStackDepth = 1024;      // nesting the matcher follows

struct CodepointRange {
  uint32_t lo, hi;
};
struct ByteRange {
  uint8_t lo, hi;
};
using Utf8Sequence = std::vector<ByteRange>;

size_t utf8_encode(uint32_t cp, uint8_t* out) {
  if (cp < 0x80) {
    out[0] = static_cast<uint8_t>(cp);
    return 1;
  }
  if (cp < 0x800) {
    out[0] = static_cast<uint8_t>(0xC0 | (cp >> 6));
    out[1] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = static_cast<uint8_t>(0xE0 | (cp >> 12));
    out[1] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
    out[2] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = static_cast<uint8_t>(0xF0 | (cp >> 18));
  out[1] = static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F));
  out[2] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
  out[3] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
  return 4;
}

// Code points lo..hi of one UTF-8 length as byte-range sequences: split
// until every byte after the first differing one spans its full range, so
// each piece is a plain product of byte ranges.
void split_same_length(uint32_t lo, uint32_t hi, size_t n, std::vector<Utf8Sequence>& out) {
  for (size_t i = 1; i < n; ++i) {
    const uint32_t m = (1u << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        split_same_length(lo, lo | m, n, out);
        split_same_length((lo | m) + 1, hi, n, out);
        return;
      }
      if ((hi & m) != m) {
        split_same_length(lo, (hi & ~m) - 1, n, out);
        split_same_length(hi & ~m, hi, n, out);
        return;
      }
    }
  }
  uint8_t a[4], b[4];
  utf8_encode(lo, a);
  utf8_encode(hi, b);
  Utf8Sequence seq;
  for (size_t k = 0; k < n; ++k) seq.push_back({a[k], b[k]});
  out.push_back(std::move(seq));
}

// A range of scalar values (no surrogates) as UTF-8 byte sequences.
void utf8_sequences(uint32_t lo, uint32_t hi, std::vector<Utf8Sequence>& out) {
  static const uint32_t kLast[] = {0x7F, 0x7FF, 0xFFFF, kMaxCodepoint};
  for (size_t len = 1; len <= 4 && lo <= hi; ++len) {
    if (lo > kLast[len - 1]) continue;
    const uint32_t end = std::min(hi, kLast[len - 1]);
    split_same_length(lo, end, len, out);
    if (end == hi) break;
    lo = end + 1;
  }
}

// Sorted, merged, without surrogates; complemented when `negate`.
std::vector<CodepointRange> normalise(std::vector<CodepointRange> ranges, bool negate) {
  std::sort(ranges.begin(), ranges.end(), [](auto& a, auto& b) { return a.lo < b.lo; });
  std::vector<CodepointRange> merged;
  for (const auto& r : ranges) {
    if (!merged.empty() && r.lo <= merged.back().hi + 1) merged.back().hi = std::max(merged.back().hi, r.hi);
    else merged.push_back(r);
  }
  if (negate) {
    std::vector<CodepointRange> inverse;
    uint32_t next = 0;
    for (const auto& r : merged) {
      if (r.lo > next) inverse.push_back({next, r.lo - 1});
      next = r.hi + 1;
    }
    if (next <= kMaxCodepoint) inverse.push_back({next, kMaxCodepoint});
    merged = std::move(inverse);
  }
  std::vector<CodepointRange> out;
  for (const auto& r : merged) {  // surrogates are not characters
    if (r.hi < 0xD800 || r.lo > 0xDFFF) out.push_back(r);
    else {
      if (r.lo < 0xD800) out.push_back({r.lo, 0xD7FF});
      if (r.hi > 0xDFFF) out.push_back({0xE000, r.hi});
    }
  }
  return out;
}

}  // namespace

// GBNF text -> rules. One instance per parse.
class GrammarCompiler {
 public:
  explicit GrammarCompiler(std::string_view text) : text_(text) {}

  std::shared_ptr<const Grammar> run(const std::string& root_name) {
    skip_space();
    while (pos_ < text_.size()) {
      const size_t at = pos_;
      std::string name = parse_name();
      skip_space();
      if (!consume("::=")) fail("expected '::=' after the rule name '" + name + "'");
      const uint32_t r = rule_index(name, at);
      if (defined_[r]) fail_at(at, "rule '" + name + "' is defined twice");
      defined_[r] = true;
      rules_[r] = parse_alternatives(/*nested=*/false);
      skip_space();
    }
    auto it = index_.find(root_name);
    if (it == index_.end() || !defined_[it->second])
      throw Error("grammar: there is no rule '" + root_name + "' (the start rule)");
    for (size_t r = 0; r < rules_.size(); ++r)
      if (!defined_[r]) fail_at(first_use_[r], "rule '" + names_[r] + "' is used but never defined");
    return finish(it->second);
  }

 private:
  using Alternative = std::vector<Grammar::Element>;
  using Alternatives = std::vector<Alternative>;

  // -- errors ---------------------------------------------------------------
  [[noreturn]] void fail_at(size_t at, const std::string& what) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < text_.size(); ++i) {
      if (text_[i] == '\n') ++line, col = 1;
      else ++col;
    }
    throw Error("grammar line " + std::to_string(line) + ", column " + std::to_string(col) + ": " + what);
  }
  [[noreturn]] void fail(const std::string& what) const { fail_at(pos_, what); }
  std::string found() const {
    if (pos_ >= text_.size()) return "the end of the grammar";
    return "'" + std::string(1, text_[pos_]) + "'";
  }

  // -- lexing ---------------------------------------------------------------
  void skip_space() {
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == '#') {
        while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
      } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else {
        break;
      }
    }
  }
  bool consume(std::string_view s) {
    if (text_.substr(pos_, s.size()) != s) return false;
    pos_ += s.size();
    return true;
  }
  static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  }
  std::string parse_name() {
    const size_t b = pos_;
    while (pos_ < text_.size() && name_char(text_[pos_])) ++pos_;
    if (b == pos_) fail("expected a rule name, found " + found());
    return std::string(text_.substr(b, pos_ - b));
  }
  // At `name ::=`: the next rule starts (rules are not separated otherwise).
  bool at_rule_start() const {
    size_t p = pos_;
    while (p < text_.size() && name_char(text_[p])) ++p;
    if (p == pos_) return false;
    while (p < text_.size() && (text_[p] == ' ' || text_[p] == '\t' || text_[p] == '\n' || text_[p] == '\r')) ++p;
    return text_.substr(p, 3) == "::=";
  }
  uint32_t parse_hex(size_t digits) {
    uint32_t v = 0;
    for (size_t i = 0; i < digits; ++i) {
      if (pos_ >= text_.size()) fail("expected " + std::to_string(digits) + " hex digits, found the end");
      const char c = text_[pos_];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) fail("expected a hex digit, found " + found());
      v = v * 16 + static_cast<uint32_t>(d);
      ++pos_;
    }
    return v;
  }
  // One character of a literal or class (escapes resolved), as a code point.
  uint32_t parse_char() {
    if (pos_ >= text_.size()) fail("unterminated literal or character class");
    const unsigned char c = static_cast<unsigned char>(text_[pos_]);
    if (c == '\\') {
      ++pos_;
      if (pos_ >= text_.size()) fail("expected an escape after '\\'");
      const char e = text_[pos_++];
      switch (e) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case '0': return 0;
        case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': return static_cast<unsigned char>(e);
        case 'x': return parse_hex(2);
        case 'u': return parse_hex(4);
        case 'U': {
          const uint32_t cp = parse_hex(8);
          if (cp > kMaxCodepoint) fail("\\U escape beyond U+10FFFF");
          return cp;
        }
        default: --pos_; fail("unknown escape '\\" + std::string(1, e) + "'");
      }
    }
    // A UTF-8 character as written.
    const size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || pos_ + len > text_.size()) fail("invalid UTF-8 in the grammar");
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t i = 1; i < len; ++i) {
      const unsigned char cc = static_cast<unsigned char>(text_[pos_ + i]);
      if ((cc & 0xC0) != 0x80) fail("invalid UTF-8 in the grammar");
      cp = (cp << 6) | (cc & 0x3F);
    }
    pos_ += len;
    return cp;
  }

  // -- rules and elements ---------------------------------------------------
  uint32_t rule_index(const std::string& name, size_t used_at) {
    auto [it, fresh] = index_.emplace(name, static_cast<uint32_t>(rules_.size()));
    if (fresh) {
      rules_.emplace_back();
      names_.push_back(name);
      defined_.push_back(false);
      first_use_.push_back(used_at);
    }
    return it->second;
  }
  uint32_t new_rule(const std::string& base, Alternatives alts) {
    const std::string name = base + "~" + std::to_string(rules_.size());
    const uint32_t r = rule_index(name, pos_);
    defined_[r] = true;
    rules_[r] = std::move(alts);
    return r;
  }
  uint32_t byte_set(const std::bitset<256>& set) {
    const std::string key = set.to_string();
    auto [it, fresh] = set_index_.emplace(key, static_cast<uint32_t>(sets_.size()));
    if (fresh) sets_.push_back(set);
    return it->second;
  }
  Grammar::Element bytes(uint8_t lo, uint8_t hi) {
    std::bitset<256> set;
    for (unsigned b = lo; b <= hi; ++b) set.set(b);
    return {Grammar::Element::Bytes, byte_set(set)};
  }
  static Grammar::Element rule_ref(uint32_t r) { return {Grammar::Element::Rule, r}; }
  void count(size_t n) {
    total_elements_ += n;
    if (total_elements_ > kMaxElements) fail("the grammar is too large (more than " + std::to_string(kMaxElements) + " elements)");
  }

  // A set of code points as one element: a byte set when all are ASCII,
  // else a rule with one alternative per UTF-8 byte-range sequence.
  Alternative char_class(const std::vector<CodepointRange>& ranges) {
    if (ranges.empty()) fail("the character class matches nothing");
    std::vector<Utf8Sequence> seqs;
    for (const auto& r : ranges) utf8_sequences(r.lo, r.hi, seqs);
    std::bitset<256> single;
    Alternatives alts;
    for (const auto& s : seqs) {
      if (s.size() == 1) {
        for (unsigned b = s[0].lo; b <= s[0].hi; ++b) single.set(b);
        continue;
      }
      Alternative a;
      for (const auto& br : s) a.push_back(bytes(br.lo, br.hi));
      alts.push_back(std::move(a));
    }
    if (single.any()) alts.insert(alts.begin(), Alternative{{Grammar::Element::Bytes, byte_set(single)}});
    count(alts.size() * 4);
    if (alts.size() == 1 && alts[0].size() == 1) return alts[0];
    return {rule_ref(new_rule("class", std::move(alts)))};
  }

  Alternative parse_literal() {
    ++pos_;  // opening quote
    Alternative seq;
    while (true) {
      if (pos_ >= text_.size() || text_[pos_] == '\n') fail("unterminated string literal");
      if (text_[pos_] == '"') {
        ++pos_;
        break;
      }
      uint8_t buf[4];
      const size_t n = utf8_encode(parse_char(), buf);
      for (size_t i = 0; i < n; ++i) seq.push_back(bytes(buf[i], buf[i]));
    }
    count(seq.size());
    return seq;
  }

  Alternative parse_class() {
    ++pos_;  // '['
    bool negate = false;
    if (pos_ < text_.size() && text_[pos_] == '^') {
      negate = true;
      ++pos_;
    }
    std::vector<CodepointRange> ranges;
    while (true) {
      if (pos_ >= text_.size()) fail("unterminated character class");
      if (text_[pos_] == ']') {
        ++pos_;
        break;
      }
      const uint32_t lo = parse_char();
      uint32_t hi = lo;
      if (pos_ + 1 < text_.size() && text_[pos_] == '-' && text_[pos_ + 1] != ']') {
        ++pos_;
        hi = parse_char();
        if (hi < lo) fail("character range out of order");
      }
      ranges.push_back({lo, hi});
    }
    return char_class(normalise(std::move(ranges), negate));
  }

  // One item before its postfix operator.
  Alternative parse_primary() {
    const char c = text_[pos_];
    if (c == '"') return parse_literal();
    if (c == '[') return parse_class();
    if (c == '.') {
      ++pos_;
      return char_class(normalise({{0, kMaxCodepoint}}, false));
    }
    if (c == '(') {
      ++pos_;
      Alternatives alts = parse_alternatives(/*nested=*/true);
      skip_space();
      if (!consume(")")) fail("expected ')', found " + found());
      if (alts.size() == 1) return alts[0];
      return {rule_ref(new_rule("group", std::move(alts)))};
    }
    if (name_char(c)) {
      const size_t at = pos_;
      return {rule_ref(rule_index(parse_name(), at))};
    }
    fail("expected a literal, a character class, a rule name or '(', found " + found());
  }

  uint32_t parse_count() {
    const size_t b = pos_;
    uint64_t v = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      v = v * 10 + static_cast<uint64_t>(text_[pos_] - '0');
      if (v > kMaxRepetition) fail("repetition count over " + std::to_string(kMaxRepetition));
      ++pos_;
    }
    if (b == pos_) fail("expected a number in the repetition, found " + found());
    return static_cast<uint32_t>(v);
  }

  // x repeated min..max times (max kInfinite: unbounded), appended to `seq`.
  void repeat(const Alternative& item, uint32_t min, uint32_t max, Alternative& seq) {
    Alternative unit = item;
    if (unit.size() != 1) unit = {rule_ref(new_rule("item", {item}))};
    count(static_cast<size_t>(min) + 2);
    for (uint32_t i = 0; i < min; ++i) seq.push_back(unit[0]);
    if (max == kInfinite) {
      // star ::= unit star | ""
      const uint32_t star = new_rule("star", {});
      rules_[star] = {{unit[0], rule_ref(star)}, {}};
      seq.push_back(rule_ref(star));
      return;
    }
    // Nested optionals: opt_k ::= unit opt_{k-1} | "" (unambiguous, unlike k plain optionals).
    uint32_t inner = kInfinite;
    count(max - min);
    for (uint32_t k = min; k < max; ++k) {
      Alternative a{unit[0]};
      if (inner != kInfinite) a.push_back(rule_ref(inner));
      inner = new_rule("opt", {a, {}});
    }
    if (inner != kInfinite) seq.push_back(rule_ref(inner));
  }

  Alternative parse_sequence(bool nested) {
    Alternative seq;
    while (true) {
      skip_space();
      if (pos_ >= text_.size()) break;
      const char c = text_[pos_];
      if (c == '|' || c == ')') break;
      if (!nested && at_rule_start()) break;
      Alternative item = parse_primary();
      // Postfix operators (no space before them, as in GBNF).
      if (pos_ < text_.size() && (text_[pos_] == '*' || text_[pos_] == '+' || text_[pos_] == '?' || text_[pos_] == '{')) {
        const char op = text_[pos_++];
        uint32_t min = 0, max = kInfinite;
        if (op == '+') min = 1;
        else if (op == '?') max = 1;
        else if (op == '{') {
          skip_space();
          min = parse_count();
          skip_space();
          max = min;
          if (consume(",")) {
            skip_space();
            max = pos_ < text_.size() && text_[pos_] == '}' ? kInfinite : parse_count();
            skip_space();
          }
          if (!consume("}")) fail("expected '}' to close the repetition, found " + found());
          if (max < min) fail("repetition {" + std::to_string(min) + "," + std::to_string(max) + "}: the maximum is below the minimum");
        }
        repeat(item, min, max, seq);
      } else {
        seq.insert(seq.end(), item.begin(), item.end());
      }
    }
    return seq;
  }

  Alternatives parse_alternatives(bool nested) {
    Alternatives alts;
    alts.push_back(parse_sequence(nested));
    while (true) {
      skip_space();
      if (!consume("|")) break;
      alts.push_back(parse_sequence(nested));
    }
    return alts;
  }

  // -- checks and layout ----------------------------------------------------
  std::vector<uint32_t> min_lengths() const {
    std::vector<uint32_t> len(rules_.size(), kInfinite);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < rules_.size(); ++r) {
        for (const Alternative& a : rules_[r]) {
          uint64_t sum = 0;
          for (const auto& e : a) {
            const uint64_t l = e.kind == Grammar::Element::Bytes ? 1 : len[e.value];
            sum = l == kInfinite ? kInfinite : std::min<uint64_t>(sum + l, kInfinite - 1);
            if (sum == kInfinite) break;
          }
          if (sum < len[r]) {
            len[r] = static_cast<uint32_t>(sum);
            changed = true;
          }
        }
      }
    }
    return len;
  }

  void check_left_recursion(const std::vector<uint32_t>& len) const {
    // r -> rules that can come first in r (after rules that can be empty).
    std::vector<std::vector<uint32_t>> first(rules_.size());
    for (size_t r = 0; r < rules_.size(); ++r)
      for (const Alternative& a : rules_[r])
        for (const auto& e : a) {
          if (e.kind == Grammar::Element::Bytes) break;
          first[r].push_back(e.value);
          if (len[e.value] != 0) break;
        }
    std::vector<int> mark(rules_.size(), 0);  // 0 new, 1 on the path, 2 done
    std::function<void(uint32_t)> visit = [&](uint32_t r) {
      mark[r] = 1;
      for (uint32_t s : first[r]) {
        if (mark[s] == 1)
          throw Error("grammar: rule '" + display(s) + "' is left-recursive (it can start with itself); rewrite it "
                      "with repetition, e.g. x ::= y (\",\" y)*");
        if (mark[s] == 0) visit(s);
      }
      mark[r] = 2;
    };
    for (size_t r = 0; r < rules_.size(); ++r)
      if (mark[r] == 0) visit(static_cast<uint32_t>(r));
  }

  std::string display(uint32_t r) const {
    const std::string& n = names_[r];
    return n.find('~') == std::string::npos ? n : "a group in '" + names_[parent_of(r)] + "'";
  }
  uint32_t parent_of(uint32_t r) const {
    for (size_t p = 0; p < rules_.size(); ++p)
      if (names_[p].find('~') == std::string::npos)
        for (const Alternative& a : rules_[p])
          for (const auto& e : a)
            if (e.kind == Grammar::Element::Rule && e.value == r) return static_cast<uint32_t>(p);
    return r;
  }

  std::shared_ptr<const Grammar> finish(uint32_t root) {
    const std::vector<uint32_t> len = min_lengths();
    for (size_t r = 0; r < rules_.size(); ++r)
      if (len[r] == kInfinite)
        throw Error("grammar: rule '" + display(static_cast<uint32_t>(r)) +
                    "' can never finish (every alternative refers to a rule that never finishes)");
    check_left_recursion(len);

    auto g = std::make_shared<Grammar>();
    g->names_ = names_;
    g->sets_ = sets_;
    g->root_ = root;
    g->rules_.resize(rules_.size());
    for (size_t r = 0; r < rules_.size(); ++r) {
      for (const Alternative& a : rules_[r]) {
        g->rules_[r].push_back(static_cast<uint32_t>(g->elements_.size()));
        g->elements_.insert(g->elements_.end(), a.begin(), a.end());
        g->elements_.push_back({Grammar::Element::End, 0});
      }
    }
    // Fewest bytes to the end of each alternative, from the back.
    g->min_rest_.assign(g->elements_.size(), 0);
    for (size_t i = g->elements_.size(); i-- > 0;) {
      const auto& e = g->elements_[i];
      if (e.kind == Grammar::Element::End) continue;
      const uint32_t own = e.kind == Grammar::Element::Bytes ? 1 : len[e.value];
      g->min_rest_[i] = static_cast<uint32_t>(std::min<uint64_t>(uint64_t(own) + g->min_rest_[i + 1], kInfinite - 1));
    }
    return g;
  }

  std::string_view text_;
  size_t pos_ = 0;
  std::vector<Alternatives> rules_;
  std::vector<std::string> names_;
  std::vector<bool> defined_;
  std::vector<size_t> first_use_;
  std::map<std::string, uint32_t> index_;
  std::vector<std::bitset<256>> sets_;
  std::map<std::string, uint32_t> set_index_;
  size_t total_elements_ = 0;
};

std::shared_ptr<const Grammar> Grammar::parse(std::string_view gbnf, const std::string& root) {
  return GrammarCompiler(gbnf).run(root);
}

// ---------------------------------------------------------------------------
// GrammarMatcher

size_t GrammarMatcher::StackHash::operator()(const std::vector<uint32_t>& v) const {
  uint64_t h = 1469598103934665603ull ^ v.size();
  for (uint32_t x : v) {
    h ^= x;
    h *= 1099511628211ull;
  }
  return static_cast<size_t>(h ^ (h >> 29));
}

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar) : grammar_(std::move(grammar)) {
  std::vector<uint32_t> ids;
  std::unordered_map<Stack, char, StackHash> seen;
  for (uint32_t a : grammar_->alternatives(grammar_->root())) close(Stack{a}, ids, seen);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  start_ = ids.empty() ? kDead : intern_state(std::move(ids));
}

uint32_t GrammarMatcher::intern_stack(const Stack& stack) {
  auto [it, fresh] = stack_ids_.emplace(stack, static_cast<uint32_t>(stacks_.size()));
  if (fresh) stacks_.push_back(stack);
  return it->second;
}

GrammarMatcher::State GrammarMatcher::intern_state(std::vector<uint32_t> ids) {
  auto it = state_ids_.find(ids);
  if (it != state_ids_.end()) return it->second;
  StateInfo info;
  info.min_remaining = kInfinite;
  for (uint32_t id : ids) {
    const Stack& s = stacks_[id];
    if (s.empty()) info.accepts = true;
    uint64_t sum = 0;
    for (uint32_t pos : s) sum += grammar_->min_rest(pos);
    info.min_remaining = static_cast<uint32_t>(std::min<uint64_t>(info.min_remaining, sum));
  }
  info.stacks = ids;
  const State s = static_cast<State>(info_.size());
  info_.push_back(std::move(info));
  state_ids_.emplace(std::move(ids), s);
  return s;
}

// Expands the rule references at the top of `stack` until every resulting
// stack has a byte set on top (or is empty: the text may end there).
void GrammarMatcher::close(Stack stack, std::vector<uint32_t>& out, std::unordered_map<Stack, char, StackHash>& seen) {
  const auto& elements = grammar_->elements();
  while (true) {
    if (stack.empty()) {
      out.push_back(intern_stack(stack));
      return;
    }
    const Grammar::Element& e = elements[stack.back()];
    if (e.kind == Grammar::Element::Bytes) {
      out.push_back(intern_stack(stack));
      return;
    }
    if (e.kind == Grammar::Element::End) {
      stack.pop_back();  // the parent frame already points past the reference
      continue;
    }
    const uint32_t pos = stack.back();
    stack.pop_back();
    // A reference in tail position returns nowhere: not pushing it keeps
    // right recursion (x ::= y x | "") at a constant depth.
    if (elements[pos + 1].kind != Grammar::Element::End) stack.push_back(pos + 1);
    if (stack.size() >= kMaxStackDepth) return;  // deeper than any sane grammar: a dead branch
    for (uint32_t a : grammar_->alternatives(e.value)) {
      Stack next = stack;
      next.push_back(a);
      if (seen.emplace(next, 0).second) close(std::move(next), out, seen);
    }
    return;
  }
}

int32_t* GrammarMatcher::transitions(State s) {
  StateInfo& info = info_[static_cast<size_t>(s)];
  if (!info.next) {
    info.next.reset(new int32_t[256]);
    std::fill(info.next.get(), info.next.get() + 256, kUnknown);
  }
  return info.next.get();
}

GrammarMatcher::State GrammarMatcher::compute_next(State s, uint8_t byte) {
  const auto& elements = grammar_->elements();
  const auto& sets = grammar_->byte_sets();
  std::vector<uint32_t> out;
  std::unordered_map<Stack, char, StackHash> seen;
  const std::vector<uint32_t> ids = info_[static_cast<size_t>(s)].stacks;  // a copy: interning may grow info_
  for (uint32_t id : ids) {
    const Stack& top = stacks_[id];
    if (top.empty() || !sets[elements[top.back()].value][byte]) continue;
    Stack next = top;
    ++next.back();
    close(std::move(next), out, seen);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  const State r = out.empty() ? kDead : intern_state(std::move(out));
  transitions(s)[byte] = r;
  return r;
}

GrammarMatcher::State GrammarMatcher::feed(State s, std::string_view bytes) {
  for (char c : bytes) {
    if (s == kDead) return kDead;
    s = next(s, static_cast<uint8_t>(c));
  }
  return s;
}

GrammarMatcher::State GrammarMatcher::compact(State keep) {
  auto stacks_of = [&](State s) {
    std::vector<Stack> out;
    for (uint32_t id : info_[static_cast<size_t>(s)].stacks) out.push_back(stacks_[id]);
    return out;
  };
  const std::vector<Stack> kept = stacks_of(keep);
  const std::vector<Stack> initial = start_ == kDead ? std::vector<Stack>{} : stacks_of(start_);
  stacks_.clear();
  stack_ids_.clear();
  info_.clear();
  state_ids_.clear();
  auto reintern = [&](const std::vector<Stack>& stacks) {
    std::vector<uint32_t> ids;
    for (const Stack& s : stacks) ids.push_back(intern_stack(s));
    std::sort(ids.begin(), ids.end());
    return intern_state(std::move(ids));
  };
  if (!initial.empty()) start_ = reintern(initial);
  return reintern(kept);
}

}  // namespace flatline
