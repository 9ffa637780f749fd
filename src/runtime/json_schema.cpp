#include "runtime/json_schema.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <vector>

#include "util/error.h"

namespace flatline {

using json = nlohmann::ordered_json;

namespace {

constexpr uint64_t kUnbounded = UINT64_MAX;
constexpr uint64_t kMaxMagnitude = 999999999999999ull;  // 15 digits: exact in a double, in int64
constexpr int kMaxDepth = 64;                            // nesting of schemas followed

// The primitive rules every schema may use (added on first use).
const std::map<std::string, std::string>& primitive_bodies() {
  static const std::map<std::string, std::string> bodies = {
      {"json-value", "json-object | json-array | json-string | json-number | \"true\" | \"false\" | \"null\""},
      {"json-object", "\"{\" ( json-string \": \" json-value ( \", \" json-string \": \" json-value )* )? \"}\""},
      {"json-array", "\"[\" ( json-value ( \", \" json-value )* )? \"]\""},
      {"json-string", "\"\\\"\" json-char* \"\\\"\""},
      // No raw control characters; \u escapes of surrogates are left out
      // (a lone one is not a character, and strict parsers refuse it).
      {"json-char",
       "[^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" ( [0-9a-cA-CefEF] json-hex json-hex json-hex | "
       "[dD] [0-7] json-hex json-hex ) )"},
      {"json-hex", "[0-9a-fA-F]"},
      {"json-int-part", "\"0\" | [1-9] [0-9]{0,14}"},
      {"json-integer", "\"-\"? json-int-part"},
      {"json-fraction", "\".\" [0-9]{1,15}"},
      {"json-number", "\"-\"? json-int-part json-fraction? ( [eE] [-+]? [1-9] [0-9]? )?"},
      {"json-boolean", "\"true\" | \"false\""},
      {"json-null", "\"null\""},
      // Formats (RFC 3339 and friends), strict enough that every text is valid.
      {"json-date",
       "json-year \"-\" ( ( \"01\" | \"03\" | \"05\" | \"07\" | \"08\" | \"10\" | \"12\" ) \"-\" json-day31 | ( \"04\" | "
       "\"06\" | \"09\" | \"11\" ) \"-\" json-day30 | \"02-\" json-day28 )"},
      // Year 0000 is outside RFC 3339's range for Python's date (and ISO 8601 without an agreement).
      {"json-year", "\"000\" [1-9] | \"00\" [1-9] [0-9] | \"0\" [1-9] [0-9]{2} | [1-9] [0-9]{3}"},
      {"json-day31", "\"0\" [1-9] | [12] [0-9] | \"3\" [01]"},
      {"json-day30", "\"0\" [1-9] | [12] [0-9] | \"30\""},
      {"json-day28", "\"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8]"},
      {"json-time",
       "( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,6} )? ( \"Z\" | [+-] ( [01] "
       "[0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )"},
      {"json-date-time", "json-date \"T\" json-time"},
      {"json-uuid",
       "json-hex{8} \"-\" json-hex{4} \"-\" json-hex{4} \"-\" json-hex{4} \"-\" json-hex{12}"},
      {"json-email", "[a-zA-Z0-9._+-]{1,32} \"@\" [a-zA-Z0-9-]{1,32} ( \".\" [a-zA-Z0-9-]{1,16} ){1,3}"},
      {"json-ipv4", "json-octet \".\" json-octet \".\" json-octet \".\" json-octet"},
      {"json-octet", "\"25\" [0-5] | \"2\" [0-4] [0-9] | \"1\" [0-9] [0-9] | [1-9]? [0-9]"},
      {"json-uri", "( \"https\" | \"http\" ) \"://\" [a-zA-Z0-9-]{1,32} ( \".\" [a-zA-Z0-9-]{1,16} )* ( \"/\" [a-zA-Z0-9._~-]{0,32} )*"},
  };
  return bodies;
}

// Names a rule may use: letters, digits, '-'.
std::string sanitise(const std::string& hint) {
  std::string out;
  for (char c : hint) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) out += c;
    else if (!out.empty() && out.back() != '-') out += '-';
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  if (out.empty() || out.size() > 40) out = out.empty() ? "schema" : out.substr(0, 40);
  if (out.compare(0, 5, "json-") == 0 || out == "root") out = "s-" + out;
  return out;
}

std::string hex4(uint32_t v) {
  static const char* digits = "0123456789ABCDEF";
  std::string s = "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) s += digits[(v >> shift) & 15];
  return s;
}

std::string class_escape(uint32_t cp) {
  if (cp > 0xFFFF) {
    static const char* digits = "0123456789ABCDEF";
    std::string s = "\\U";
    for (int shift = 28; shift >= 0; shift -= 4) s += digits[(cp >> shift) & 15];
    return s;
  }
  return hex4(cp);
}

// ---------------------------------------------------------------------------
// Integer ranges: the non-negative integers lo..hi as alternatives of digit
// patterns, e.g. 1..255 -> [1-9] | [1-9] [0-9] | "1" [0-9] [0-9] | "2" [0-4] [0-9] | "25" [0-5].

uint64_t fill_nines(uint64_t n, int k) {
  uint64_t p = 1;
  for (int i = 0; i < k; ++i) p *= 10;
  return n - n % p + (p - 1);
}
uint64_t fill_zeros(uint64_t n, int k) {
  uint64_t p = 1;
  for (int i = 0; i < k; ++i) p *= 10;
  return n - n % p;
}

std::string digits_pattern(const std::string& a, const std::string& b) {
  std::string out;
  size_t i = 0;
  while (i < a.size() && a[i] == b[i]) ++i;
  if (i > 0) out += "\"" + a.substr(0, i) + "\"";
  if (i < a.size()) {
    if (!out.empty()) out += " ";
    out += a[i] == b[i] ? std::string("\"") + a[i] + "\"" : std::string("[") + a[i] + "-" + b[i] + "]";
    const size_t rest = a.size() - i - 1;
    if (rest > 0) out += " [0-9]" + (rest > 1 ? "{" + std::to_string(rest) + "}" : std::string());
  }
  return out;
}

std::vector<std::string> bounded_range(uint64_t lo, uint64_t hi) {
  std::set<uint64_t> stops{hi};
  for (int k = 1; k <= 16; ++k) {
    const uint64_t s = fill_nines(lo, k);
    if (s < lo || s >= hi) break;
    stops.insert(s);
  }
  for (int k = 1; k <= 16; ++k) {
    const uint64_t z = fill_zeros(hi + 1, k);
    if (z == 0) break;
    const uint64_t s = z - 1;
    if (s <= lo || s > hi) break;
    stops.insert(s);
  }
  std::vector<std::string> out;
  uint64_t start = lo;
  for (uint64_t s : stops) {
    if (s < start) continue;
    out.push_back(digits_pattern(std::to_string(start), std::to_string(s)));
    start = s + 1;
  }
  return out;
}

// lo..hi (hi may be kUnbounded), no leading zeros.
std::string nonnegative_range(uint64_t lo, uint64_t hi) {
  std::vector<std::string> alts;
  if (lo == 0) {
    alts.push_back("\"0\"");
    lo = 1;
  }
  if (hi == kUnbounded) {
    // Up to the next power of ten exactly, then any longer number.
    const size_t digits = std::to_string(lo).size();
    uint64_t top = 1;
    for (size_t i = 0; i < digits; ++i) top *= 10;
    if (lo <= top - 1)
      for (auto& p : bounded_range(lo, top - 1)) alts.push_back(p);
    if (digits < 15) alts.push_back("[1-9] [0-9]{" + std::to_string(digits) + "," + std::to_string(14) + "}");
  } else if (lo <= hi) {
    for (auto& p : bounded_range(lo, hi)) alts.push_back(p);
  }
  std::string out;
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
  return out.empty() ? std::string() : "( " + out + " )";
}

// ---------------------------------------------------------------------------
// Regular expressions (JSON Schema "pattern") -> GBNF for the JSON string
// content they match. The whole string must match (a pattern matches
// anywhere, so a string that is one match is valid).

struct RegexToGbnf {
  std::string_view re;
  size_t pos = 0;
  std::string path;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(path + ": pattern \"" + std::string(re) + "\": " + what + " (at offset " + std::to_string(pos) +
                "); see docs/GRAMMAR.md for the supported subset");
  }

  using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

  static Ranges complement(Ranges r) {
    std::sort(r.begin(), r.end());
    Ranges out;
    uint32_t next = 0;
    for (auto [lo, hi] : r) {
      if (lo > next) out.push_back({next, lo - 1});
      next = std::max(next, hi + 1);
    }
    if (next <= 0x10FFFF) out.push_back({next, 0x10FFFF});
    return out;
  }

  // A set of characters as JSON string content: plain characters as a
  // class, quote / backslash / control characters by their escapes.
  static std::string json_chars(const Ranges& ranges) {
    std::vector<std::string> alts;
    std::string cls;
    std::set<uint32_t> specials;
    for (auto [lo, hi] : ranges) {
      for (uint32_t c = lo; c <= std::min<uint32_t>(hi, 0x1F); ++c) specials.insert(c);
      if (lo <= '"' && '"' <= hi) specials.insert('"');
      if (lo <= '\\' && '\\' <= hi) specials.insert('\\');
      // The plain part: [lo, hi] minus 0x00-0x1F, '"' and '\'.
      auto add = [&](uint32_t a, uint32_t b) {
        if (a > b) return;
        cls += class_escape(a);
        if (b > a) cls += "-" + class_escape(b);
      };
      uint32_t a = std::max<uint32_t>(lo, 0x20);
      for (uint32_t cut : {uint32_t('"'), uint32_t('\\')}) {
        if (a <= cut && cut <= hi) {
          add(a, cut - 1);
          a = cut + 1;
        }
      }
      add(a, hi);
    }
    if (!cls.empty()) alts.push_back("[" + cls + "]");
    for (uint32_t c : specials) {
      std::string esc;
      switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\t': esc = "\\t"; break;
        case '\r': esc = "\\r"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default: {
          static const char* d = "0123456789abcdef";
          esc = std::string("\\u00") + d[c >> 4] + d[c & 15];
        }
      }
      alts.push_back(gbnf_literal(esc));
    }
    if (alts.empty()) return "";
    if (alts.size() == 1) return alts[0];
    std::string out = "(";
    for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : " ") + alts[i];
    return out + " )";
  }

  uint32_t read_codepoint() {
    const unsigned char c = static_cast<unsigned char>(re[pos]);
    const size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    if (pos + len > re.size()) fail("invalid UTF-8");
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t i = 1; i < len; ++i) cp = (cp << 6) | (static_cast<unsigned char>(re[pos + i]) & 0x3F);
    pos += len;
    return cp;
  }

  // After a backslash: a class shorthand (returns true, fills `out`) or one character.
  bool escape(Ranges& out, uint32_t& single) {
    if (pos >= re.size()) fail("a trailing backslash");
    const char e = re[pos++];
    const Ranges digit{{'0', '9'}}, word{{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}},
        space{{'\t', '\r'}, {' ', ' '}};
    switch (e) {
      case 'd': out = digit; return true;
      case 'D': out = complement(digit); return true;
      case 'w': out = word; return true;
      case 'W': out = complement(word); return true;
      case 's': out = space; return true;
      case 'S': out = complement(space); return true;
      case 'n': single = '\n'; return false;
      case 't': single = '\t'; return false;
      case 'r': single = '\r'; return false;
      case 'f': single = '\f'; return false;
      case 'v': single = '\v'; return false;
      case 'b': case 'B': fail("word boundaries are not supported");
      case 'u': {
        if (pos + 4 > re.size()) fail("\\u needs four hex digits");
        single = static_cast<uint32_t>(std::stoul(std::string(re.substr(pos, 4)), nullptr, 16));
        pos += 4;
        return false;
      }
      default:
        if (e >= '1' && e <= '9') fail("back-references are not supported");
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) fail(std::string("the escape \\") + e + " is not supported");
        single = static_cast<unsigned char>(e);
        return false;
    }
  }

  std::string parse_class() {
    ++pos;  // '['
    bool negate = false;
    if (pos < re.size() && re[pos] == '^') negate = true, ++pos;
    Ranges ranges;
    bool first = true;
    while (true) {
      if (pos >= re.size()) fail("an unterminated character class");
      if (re[pos] == ']' && !first) {
        ++pos;
        break;
      }
      first = false;
      uint32_t lo;
      if (re[pos] == '\\') {
        ++pos;
        Ranges sh;
        if (escape(sh, lo)) {
          ranges.insert(ranges.end(), sh.begin(), sh.end());
          continue;
        }
      } else {
        lo = read_codepoint();
      }
      uint32_t hi = lo;
      if (pos + 1 < re.size() && re[pos] == '-' && re[pos + 1] != ']') {
        ++pos;
        if (re[pos] == '\\') {
          ++pos;
          Ranges sh;
          if (escape(sh, hi)) fail("a class shorthand cannot end a range");
        } else {
          hi = read_codepoint();
        }
        if (hi < lo) fail("a character range out of order");
      }
      ranges.push_back({lo, hi});
    }
    if (negate) ranges = complement(ranges);
    const std::string out = json_chars(ranges);
    if (out.empty()) fail("a character class that matches nothing");
    return out;
  }

  std::string parse_atom() {
    const char c = re[pos];
    if (c == '(') {
      ++pos;
      if (re.substr(pos, 2) == "?:") pos += 2;
      else if (pos < re.size() && re[pos] == '?') fail("look-around and named groups are not supported");
      std::string inner = parse_alternation();
      if (pos >= re.size() || re[pos] != ')') fail("an unclosed group");
      ++pos;
      return "( " + (inner.empty() ? "\"\"" : inner) + " )";
    }
    if (c == '[') return parse_class();
    if (c == '.') {
      ++pos;
      return json_chars(complement({{'\n', '\n'}, {'\r', '\r'}}));
    }
    if (c == '\\') {
      ++pos;
      Ranges sh;
      uint32_t single;
      if (escape(sh, single)) return json_chars(sh);
      return json_chars({{single, single}});
    }
    if (c == '^' || c == '$') fail("anchors are only supported at the ends");
    if (c == '*' || c == '+' || c == '?' || c == '{') fail("a quantifier with nothing before it");
    const uint32_t cp = read_codepoint();
    return json_chars({{cp, cp}});
  }

  std::string parse_sequence() {
    std::string out;
    while (pos < re.size() && re[pos] != '|' && re[pos] != ')') {
      if (re[pos] == '$' && pos + 1 == re.size()) {
        ++pos;
        break;
      }
      std::string atom = parse_atom();
      if (pos < re.size()) {
        const char q = re[pos];
        if (q == '*' || q == '+' || q == '?') {
          ++pos;
          atom = "( " + atom + " )" + q;
        } else if (q == '{') {
          const size_t close = re.find('}', pos);
          if (close == std::string_view::npos) fail("an unclosed {m,n}");
          std::string body(re.substr(pos + 1, close - pos - 1));
          for (char d : body)
            if (!(d >= '0' && d <= '9') && d != ',') fail("a malformed {m,n}");
          if (body.empty() || body[0] == ',') body = "0" + body;
          pos = close + 1;
          atom = "( " + atom + " ){" + body + "}";
        }
        if (pos < re.size() && (re[pos] == '?' || re[pos] == '+')) ++pos;  // lazy / possessive: same language
      }
      out += (out.empty() ? "" : " ") + atom;
    }
    return out;
  }

  std::string parse_alternation() {
    std::vector<std::string> alts{parse_sequence()};
    while (pos < re.size() && re[pos] == '|') {
      ++pos;
      alts.push_back(parse_sequence());
    }
    if (alts.size() == 1) return alts[0];
    std::string out;
    for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + (alts[i].empty() ? "\"\"" : alts[i]);
    return out;
  }

  std::string run() {
    if (!re.empty() && re[0] == '^') ++pos;
    std::string out = parse_alternation();
    if (pos != re.size()) fail("an unmatched ')'");
    return out.empty() ? "\"\"" : "( " + out + " )";
  }
};

std::string join_alternatives(const std::vector<std::string>& alts) {
  if (alts.size() == 1) return alts[0];
  std::string out;
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
  return out;
}

bool is_type(const json& schema, const char* t) {
  auto it = schema.find("type");
  return it != schema.end() && it->is_string() && *it == t;
}

int64_t integral_bound(const json& v, const std::string& path, const char* key) {
  if (!v.is_number()) throw Error(path + "." + key + ": expected a number, found " + v.dump());
  const double d = v.get<double>();
  if (!std::isfinite(d)) throw Error(path + "." + key + ": expected a finite number");
  return static_cast<int64_t>(std::max(-1e15, std::min(1e15, d)));
}

}  // namespace

// ---------------------------------------------------------------------------

std::string gbnf_literal(std::string_view bytes) {
  std::string out = "\"";
  static const char* hex = "0123456789ABCDEF";
  for (char ch : bytes) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7F) out += std::string("\\x") + hex[c >> 4] + hex[c & 15];
    else out += ch;
  }
  return out + "\"";
}

std::string json_compact_text(const json& value) {
  if (value.is_object()) {
    std::string out = "{";
    bool first = true;
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (!first) out += ", ";
      first = false;
      out += json(it.key()).dump(-1, ' ', false, json::error_handler_t::replace) + ": " + json_compact_text(it.value());
    }
    return out + "}";
  }
  if (value.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < value.size(); ++i) out += (i ? ", " : "") + json_compact_text(value[i]);
    return out + "]";
  }
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string JsonGrammarBuilder::primitive(const std::string& name) {
  if (primitives_.insert(name).second) {
    // Add what it refers to as well.
    const std::string& body = primitive_bodies().at(name);
    rules_[name] = body;
    for (const auto& [other, _] : primitive_bodies())
      if (other != name && body.find(other) != std::string::npos) {
        // Whole-word match: names are followed by a space, ')', '*', '?', '{' or the end.
        for (size_t at = body.find(other); at != std::string::npos; at = body.find(other, at + 1)) {
          const size_t end = at + other.size();
          const bool starts = at == 0 || body[at - 1] == ' ' || body[at - 1] == '(';
          const bool ends = end == body.size() || std::string(" )*?{+").find(body[end]) != std::string::npos;
          if (starts && ends) {
            primitive(other);
            break;
          }
        }
      }
  }
  return name;
}

std::string JsonGrammarBuilder::any_value() { return primitive("json-value"); }
std::string JsonGrammarBuilder::any_object() { return primitive("json-object"); }

std::string JsonGrammarBuilder::add_rule(const std::string& hint, const std::string& body) {
  auto found = by_body_.find(body);
  if (found != by_body_.end()) return found->second;
  std::string name = sanitise(hint);
  for (int i = 2; rules_.count(name); ++i) name = sanitise(hint) + "-" + std::to_string(i);
  rules_[name] = body;
  by_body_[body] = name;
  return name;
}

std::string JsonGrammarBuilder::gbnf(const std::string& root_body) const {
  std::string out = "root ::= " + root_body + "\n";
  for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
  return out;
}

std::string JsonGrammarBuilder::add_schema(const json& schema, const std::string& name_hint, const json* root) {
  const json* saved = root_;
  root_ = root ? root : &schema;
  const std::string expr = visit(schema, "schema", name_hint);
  root_ = saved;
  return add_rule(name_hint, expr);
}

const json& JsonGrammarBuilder::resolve_ref(const std::string& ref, const std::string& path) const {
  if (ref == "#") return *root_;
  if (ref.compare(0, 2, "#/") != 0)
    throw Error(path + ".$ref: only references inside the schema (\"#/...\") are supported, found \"" + ref + "\"");
  const json* node = root_;
  size_t at = 2;
  while (at <= ref.size()) {
    size_t end = ref.find('/', at);
    if (end == std::string::npos) end = ref.size();
    std::string part = ref.substr(at, end - at);
    // JSON pointer escapes.
    for (size_t p = part.find("~1"); p != std::string::npos; p = part.find("~1")) part.replace(p, 2, "/");
    for (size_t p = part.find("~0"); p != std::string::npos; p = part.find("~0")) part.replace(p, 2, "~");
    if (node->is_object() && node->contains(part)) node = &(*node)[part];
    else if (node->is_array() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit) &&
             std::stoul(part) < node->size())
      node = &(*node)[std::stoul(part)];
    else throw Error(path + ".$ref: \"" + ref + "\" does not point into the schema");
    at = end + 1;
  }
  return *node;
}

std::string JsonGrammarBuilder::visit(const json& schema, const std::string& path, const std::string& hint) {
  if (++depth_ > kMaxDepth) throw Error(path + ": the schema nests deeper than " + std::to_string(kMaxDepth) + " levels");
  struct Leave {
    int& d;
    ~Leave() { --d; }
  } leave{depth_};

  if (schema.is_boolean()) {
    if (!schema.get<bool>()) throw Error(path + ": the schema false matches nothing");
    return primitive("json-value");
  }
  if (!schema.is_object()) throw Error(path + ": a schema must be an object or a boolean, found " + schema.dump());

  if (auto ref = schema.find("$ref"); ref != schema.end()) {
    if (!ref->is_string()) throw Error(path + ".$ref: expected a string");
    const std::string target = ref->get<std::string>();
    auto known = refs_.find(target);
    if (known != refs_.end()) return known->second;
    // Named before it is built, so a recursive schema refers to itself.
    std::string name = sanitise("ref-" + target.substr(target.rfind('/') == std::string::npos ? 0 : target.rfind('/') + 1));
    for (int i = 2; rules_.count(name); ++i) name = sanitise("ref-" + target) + "-" + std::to_string(i);
    refs_[target] = name;
    rules_[name] = "\"\"";  // placeholder
    rules_[name] = visit(resolve_ref(target, path), path + ".$ref", name);
    return name;
  }
  if (auto c = schema.find("const"); c != schema.end()) return gbnf_literal(json_compact_text(*c));
  if (auto e = schema.find("enum"); e != schema.end()) {
    if (!e->is_array() || e->empty()) throw Error(path + ".enum: expected a non-empty array");
    std::vector<std::string> alts;
    for (const auto& v : *e) alts.push_back(gbnf_literal(json_compact_text(v)));
    return "( " + join_alternatives(alts) + " )";
  }
  for (const char* key : {"anyOf", "oneOf"}) {
    if (auto a = schema.find(key); a != schema.end()) {
      if (!a->is_array() || a->empty()) throw Error(path + "." + key + ": expected a non-empty array of schemas");
      // Keywords beside anyOf (type, properties...) apply to every branch.
      json rest = schema;
      rest.erase(key);
      std::vector<std::string> alts;
      for (size_t i = 0; i < a->size(); ++i) {
        json branch = (*a)[i];
        if (branch.is_object() && rest.size() > 0)
          for (auto it = rest.begin(); it != rest.end(); ++it)
            if (!branch.contains(it.key()) && it.key() != "description" && it.key() != "title") branch[it.key()] = it.value();
        alts.push_back(add_rule(hint + "-" + std::to_string(i),
                                visit(branch, path + "." + key + "[" + std::to_string(i) + "]", hint + "-" + std::to_string(i))));
      }
      return "( " + join_alternatives(alts) + " )";
    }
  }
  if (auto all = schema.find("allOf"); all != schema.end()) {
    if (!all->is_array() || all->empty()) throw Error(path + ".allOf: expected a non-empty array of schemas");
    // Merge object schemas: the union of their properties and required lists.
    json merged = schema;
    merged.erase("allOf");
    for (size_t i = 0; i < all->size(); ++i) {
      const json* part = &(*all)[i];
      if (part->is_object() && part->contains("$ref") && (*part)["$ref"].is_string())
        part = &resolve_ref((*part)["$ref"].get<std::string>(), path);
      if (!part->is_object())
        throw Error(path + ".allOf[" + std::to_string(i) + "]: only object schemas can be combined");
      for (auto it = part->begin(); it != part->end(); ++it) {
        if (it.key() == "properties" && it->is_object()) {
          for (auto p = it->begin(); p != it->end(); ++p) merged["properties"][p.key()] = p.value();
        } else if (it.key() == "required" && it->is_array()) {
          for (const auto& r : *it) merged["required"].push_back(r);
        } else if (!merged.contains(it.key())) {
          merged[it.key()] = it.value();
        }
      }
    }
    return visit(merged, path, hint);
  }

  std::string nullable;
  if (auto n = schema.find("nullable"); n != schema.end() && n->is_boolean() && n->get<bool>()) nullable = " | \"null\"";

  if (auto t = schema.find("type"); t != schema.end() && t->is_array()) {
    std::vector<std::string> alts;
    for (const auto& one : *t) {
      json s = schema;
      s["type"] = one;
      s.erase("nullable");
      alts.push_back(visit(s, path, hint));
    }
    if (alts.empty()) throw Error(path + ".type: expected at least one type");
    return "( " + join_alternatives(alts) + nullable + " )";
  }

  std::string type;
  if (auto t = schema.find("type"); t != schema.end()) {
    if (!t->is_string()) throw Error(path + ".type: expected a string or an array of strings");
    type = t->get<std::string>();
  } else if (schema.contains("properties") || schema.contains("additionalProperties") || schema.contains("required")) {
    type = "object";
  } else if (schema.contains("items") || schema.contains("prefixItems")) {
    type = "array";
  }

  std::string body;
  if (type == "object") body = object_rule(schema, path, hint);
  else if (type == "array") body = array_rule(schema, path, hint);
  else if (type == "string") body = string_rule(schema, path);
  else if (type == "integer") body = integer_rule(schema, path);
  else if (type == "number") body = number_rule(schema, path);
  else if (type == "boolean") body = primitive("json-boolean");
  else if (type == "null") body = primitive("json-null");
  else if (type.empty()) body = primitive("json-value");
  else throw Error(path + ".type: unknown type \"" + type + "\"");
  return nullable.empty() ? body : "( " + body + nullable + " )";
}

std::string JsonGrammarBuilder::object_rule(const json& schema, const std::string& path, const std::string& hint) {
  const json empty = json::object();
  const json& props = schema.contains("properties") ? schema["properties"] : empty;
  if (!props.is_object()) throw Error(path + ".properties: expected an object");
  std::set<std::string> required;
  if (auto r = schema.find("required"); r != schema.end()) {
    if (!r->is_array()) throw Error(path + ".required: expected an array of property names");
    for (const auto& name : *r) {
      if (!name.is_string()) throw Error(path + ".required: expected property names (strings)");
      required.insert(name.get<std::string>());
    }
  }
  // Extra properties only when the schema asks for them.
  std::string extra;
  if (auto a = schema.find("additionalProperties"); a != schema.end()) {
    if (a->is_object()) extra = add_rule(hint + "-additional", visit(*a, path + ".additionalProperties", hint + "-additional"));
    else if (a->is_boolean() && a->get<bool>()) extra = primitive("json-value");
  } else if (props.empty()) {
    extra = primitive("json-value");  // {"type": "object"}: any object
  }
  // Required properties that are not described are still produced (any value).
  std::vector<std::pair<std::string, const json*>> list;
  for (auto it = props.begin(); it != props.end(); ++it) list.push_back({it.key(), &it.value()});
  static const json any = true;
  for (const std::string& name : required)
    if (!props.contains(name)) list.push_back({name, &any});

  const size_t n = list.size();
  std::vector<std::string> kv(n);
  std::vector<bool> optional(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string key_hint = hint + "-" + list[i].first;
    const std::string value = add_rule(key_hint, visit(*list[i].second, path + ".properties." + list[i].first, key_hint));
    kv[i] = gbnf_literal(json(list[i].first).dump(-1, ' ', false, json::error_handler_t::replace) + ": ") + " " + value;
    optional[i] = !required.count(list[i].first);
  }
  std::string extra_kv;
  if (!extra.empty()) extra_kv = primitive("json-string") + " \": \" " + extra;

  // after[i]: properties i.. when one was written already; first[i]: when none was.
  std::string after = extra.empty() ? "" : "( \", \" " + extra_kv + " )*";
  std::string first = extra.empty() ? "" : "( " + extra_kv + " ( \", \" " + extra_kv + " )* )?";
  for (size_t i = n; i-- > 0;) {
    const std::string after_next = after.empty() ? "" : " " + after;
    const std::string new_after = optional[i] ? "( \", \" " + kv[i] + " )?" + after_next : "\", \" " + kv[i] + after_next;
    std::string new_first = kv[i] + after_next;
    if (optional[i]) new_first = "( " + new_first + (first.empty() ? " )?" : " | " + first + " )");
    // Name the pieces, so the grammar stays linear in the number of properties.
    after = i + 1 < n || !extra.empty() ? add_rule(hint + "-after-" + std::to_string(i), new_after) : new_after;
    first = add_rule(hint + "-from-" + std::to_string(i), new_first);
  }
  return "\"{\" " + (first.empty() ? std::string() : first + " ") + "\"}\"";
}

std::string JsonGrammarBuilder::array_rule(const json& schema, const std::string& path, const std::string& hint) {
  auto count = [&](const char* key, uint64_t fallback) -> uint64_t {
    auto it = schema.find(key);
    if (it == schema.end()) return fallback;
    if (!it->is_number_integer() || it->get<int64_t>() < 0)
      throw Error(path + "." + key + ": expected a non-negative integer, found " + it->dump());
    return std::min<uint64_t>(it->get<uint64_t>(), 100000);
  };
  const uint64_t min_items = count("minItems", 0);
  const uint64_t max_items = count("maxItems", kUnbounded);
  if (max_items != kUnbounded && max_items < min_items)
    throw Error(path + ": maxItems (" + std::to_string(max_items) + ") is below minItems (" + std::to_string(min_items) + ")");

  std::vector<std::string> prefix;
  const json* items = nullptr;
  bool more_allowed = true;
  const json* prefix_items = schema.contains("prefixItems") ? &schema["prefixItems"] : nullptr;
  if (auto it = schema.find("items"); it != schema.end()) {
    if (it->is_array()) prefix_items = &*it;  // draft 4 tuples
    else if (it->is_boolean() && !it->get<bool>()) more_allowed = false;
    else items = &*it;
  }
  if (prefix_items) {
    if (!prefix_items->is_array()) throw Error(path + ".prefixItems: expected an array of schemas");
    for (size_t i = 0; i < prefix_items->size(); ++i)
      prefix.push_back(add_rule(hint + "-" + std::to_string(i),
                                visit((*prefix_items)[i], path + ".prefixItems[" + std::to_string(i) + "]", hint + "-" + std::to_string(i))));
    if (schema.contains("additionalItems") && schema["additionalItems"].is_boolean() && !schema["additionalItems"].get<bool>())
      more_allowed = false;
  }
  std::string item;
  if (more_allowed) item = items ? add_rule(hint + "-item", visit(*items, path + ".items", hint + "-item")) : primitive("json-value");

  // Every prefix item is written (a valid choice whenever maxItems allows it).
  std::string seq;
  for (size_t i = 0; i < prefix.size(); ++i) seq += (i ? " \", \" " : "") + prefix[i];
  const uint64_t k = prefix.size();
  if (max_items != kUnbounded && k > max_items) throw Error(path + ": more prefixItems than maxItems allows");
  if (!more_allowed) {
    if (k < min_items) throw Error(path + ": minItems needs more items than prefixItems and items: false allow");
    return "\"[\" " + (seq.empty() ? "" : seq + " ") + "\"]\"";
  }
  const uint64_t min_more = min_items > k ? min_items - k : 0;
  const uint64_t max_more = max_items == kUnbounded ? kUnbounded : max_items - k;
  auto reps = [](uint64_t lo, uint64_t hi) {
    return "{" + std::to_string(lo) + "," + (hi == kUnbounded ? "" : std::to_string(hi)) + "}";
  };
  std::string more;
  if (max_more == 0) {
    more = "";
  } else if (k > 0) {
    more = "( \", \" " + item + " )" + reps(min_more, max_more);
  } else if (min_more == 0) {
    more = "( " + item + " ( \", \" " + item + " )" + reps(0, max_more == kUnbounded ? kUnbounded : max_more - 1) + " )?";
  } else {
    more = item + " ( \", \" " + item + " )" + reps(min_more - 1, max_more == kUnbounded ? kUnbounded : max_more - 1);
  }
  std::string body = "\"[\"";
  if (!seq.empty()) body += " " + seq;
  if (!more.empty()) body += " " + more;
  return body + " \"]\"";
}

std::string JsonGrammarBuilder::string_rule(const json& schema, const std::string& path) {
  if (auto f = schema.find("format"); f != schema.end() && f->is_string()) {
    static const std::map<std::string, std::string> formats = {
        {"date", "json-date"}, {"time", "json-time"}, {"date-time", "json-date-time"}, {"uuid", "json-uuid"},
        {"email", "json-email"}, {"ipv4", "json-ipv4"}, {"uri", "json-uri"}, {"url", "json-uri"}};
    auto it = formats.find(f->get<std::string>());
    if (it != formats.end()) return "\"\\\"\" " + primitive(it->second) + " \"\\\"\"";
    // Other formats are annotations: any string is valid.
  }
  if (auto p = schema.find("pattern"); p != schema.end()) {
    if (!p->is_string()) throw Error(path + ".pattern: expected a string");
    const std::string re = p->get<std::string>();
    RegexToGbnf conv{re, 0, path};
    return "\"\\\"\" " + conv.run() + " \"\\\"\"";
  }
  uint64_t min = 0, max = kUnbounded;
  if (auto v = schema.find("minLength"); v != schema.end()) {
    if (!v->is_number_integer() || v->get<int64_t>() < 0) throw Error(path + ".minLength: expected a non-negative integer");
    min = std::min<uint64_t>(v->get<uint64_t>(), 100000);
  }
  if (auto v = schema.find("maxLength"); v != schema.end()) {
    if (!v->is_number_integer() || v->get<int64_t>() < 0) throw Error(path + ".maxLength: expected a non-negative integer");
    max = std::min<uint64_t>(v->get<uint64_t>(), 100000);
  }
  if (max != kUnbounded && max < min) throw Error(path + ": maxLength is below minLength");
  if (min == 0 && max == kUnbounded) return primitive("json-string");
  return "\"\\\"\" " + primitive("json-char") + "{" + std::to_string(min) + "," +
         (max == kUnbounded ? "" : std::to_string(max)) + "} \"\\\"\"";
}

namespace {

// [lo, hi] as a closed integer interval from the schema's bounds (exclusive
// ones moved in by one); absent = unbounded (INT64 extremes).
void integer_bounds(const json& schema, const std::string& path, int64_t& lo, int64_t& hi) {
  lo = INT64_MIN;
  hi = INT64_MAX;
  auto value = [&](const char* key, double& out) {
    auto it = schema.find(key);
    if (it == schema.end()) return false;
    integral_bound(*it, path, key);  // type check
    out = std::max(-1e15, std::min(1e15, it->get<double>()));
    return true;
  };
  double v;
  if (value("minimum", v)) lo = static_cast<int64_t>(std::ceil(v));
  if (value("maximum", v)) hi = static_cast<int64_t>(std::floor(v));
  if (value("exclusiveMinimum", v)) lo = std::max(lo, static_cast<int64_t>(std::floor(v)) + 1);
  if (value("exclusiveMaximum", v)) hi = std::min(hi, static_cast<int64_t>(std::ceil(v)) - 1);
}

// Integers lo..hi (INT64 extremes: unbounded) as GBNF.
std::string integer_range(int64_t lo, int64_t hi) {
  std::vector<std::string> alts;
  const bool lo_open = lo == INT64_MIN, hi_open = hi == INT64_MAX;
  if (hi_open || hi >= 0) {
    const uint64_t a = lo_open || lo < 0 ? 0 : static_cast<uint64_t>(lo);
    const uint64_t b = hi_open ? kUnbounded : static_cast<uint64_t>(hi);
    if (b == kUnbounded || a <= b) alts.push_back(nonnegative_range(a, std::min(b, b == kUnbounded ? b : kMaxMagnitude)));
  }
  if (lo_open || lo < 0) {
    // Negative values -m with m in [max(1, -hi), -lo].
    const uint64_t m_lo = hi_open || hi >= 0 ? 1 : static_cast<uint64_t>(-hi);
    const uint64_t m_hi = lo_open ? kUnbounded : static_cast<uint64_t>(-lo);
    if (m_hi == kUnbounded || m_lo <= m_hi) alts.push_back("\"-\" " + nonnegative_range(m_lo, m_hi));
  }
  alts.erase(std::remove(alts.begin(), alts.end(), std::string()), alts.end());
  return alts.empty() ? std::string() : "( " + join_alternatives(alts) + " )";
}

}  // namespace

std::string JsonGrammarBuilder::integer_rule(const json& schema, const std::string& path) {
  int64_t lo, hi;
  integer_bounds(schema, path, lo, hi);
  if (lo == INT64_MIN && hi == INT64_MAX) return primitive("json-integer");
  if (lo > hi) throw Error(path + ": no integer lies between the minimum and the maximum");
  return integer_range(lo, hi);
}

std::string JsonGrammarBuilder::number_rule(const json& schema, const std::string& path) {
  const bool bounded = schema.contains("minimum") || schema.contains("maximum") || schema.contains("exclusiveMinimum") ||
                       schema.contains("exclusiveMaximum");
  if (!bounded) return primitive("json-number");
  auto bound = [&](const char* key, double fallback) {
    auto it = schema.find(key);
    if (it == schema.end()) return fallback;
    if (!it->is_number()) throw Error(path + "." + key + ": expected a number, found " + it->dump());
    return std::max(-1e15, std::min(1e15, it->get<double>()));
  };
  const double lo = bound("minimum", -1e300), hi = bound("maximum", 1e300);
  const double xlo = bound("exclusiveMinimum", -1e300), xhi = bound("exclusiveMaximum", 1e300);
  const bool lo_open = lo <= -1e300 && xlo <= -1e300, hi_open = hi >= 1e300 && xhi >= 1e300;
  // Integers within the bounds, plus k.fraction where the whole interval
  // [k, k+1) (or (-(k+1), -k] for negatives) lies inside them.
  std::vector<std::string> alts;
  {
    int64_t ilo, ihi;
    integer_bounds(schema, path, ilo, ihi);
    if (ilo <= ihi) {
      const std::string ints = integer_range(ilo, ihi);
      if (!ints.empty()) alts.push_back(ints);
    }
  }
  auto ok_low = [&](double v) { return v >= lo && v > xlo; };
  auto ok_high = [&](double v) { return v <= hi && v < xhi; };
  // Non-negative k with k >= bounds' low end and k + 1 <= the high end.
  {
    double k_lo = std::max(0.0, std::ceil(std::max(lo, xlo)));
    while (k_lo < 1e15 && !ok_low(k_lo)) k_lo += 1;
    const double k_hi = hi_open ? 1e15 : std::floor(std::min(hi, xhi)) - 1;
    if (k_lo <= k_hi)
      alts.push_back(nonnegative_range(static_cast<uint64_t>(k_lo), hi_open ? kUnbounded : static_cast<uint64_t>(k_hi)) +
                     " " + primitive("json-fraction"));
  }
  // Negative -(m + f): m + 1 <= -low end, m >= -high end.
  if (lo_open || std::max(lo, xlo) < 0) {
    const double m_hi = lo_open ? 1e15 : std::floor(-std::max(lo, xlo)) - 1;
    double m_lo = std::max(0.0, std::ceil(-std::min(hi, xhi)));
    while (m_lo < 1e15 && !ok_high(-m_lo)) m_lo += 1;
    if (m_lo <= m_hi)
      alts.push_back("\"-\" " + nonnegative_range(static_cast<uint64_t>(m_lo), lo_open ? kUnbounded : static_cast<uint64_t>(m_hi)) +
                     " " + primitive("json-fraction"));
  }
  if (alts.empty()) throw Error(path + ": flatline cannot produce a number between these bounds (see docs/GRAMMAR.md)");
  return "( " + join_alternatives(alts) + " )";
}

std::string json_schema_to_gbnf(const json& schema) {
  JsonGrammarBuilder b;
  const std::string root = b.add_schema(schema, "value");
  return b.gbnf(root);
}

}  // namespace flatline
