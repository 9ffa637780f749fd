#include "jinja/lexer.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "jinja/error.h"
#include "jinja/pystr.h"

namespace flatline::jinja {

const char* token_type_name(TokenType type) {
  switch (type) {
    case TokenType::Text: return "template text";
    case TokenType::VariableBegin: return "'{{'";
    case TokenType::VariableEnd: return "'}}'";
    case TokenType::BlockBegin: return "'{%'";
    case TokenType::BlockEnd: return "'%}'";
    case TokenType::Name: return "name";
    case TokenType::String: return "string";
    case TokenType::Integer: return "integer";
    case TokenType::Float: return "float";
    case TokenType::Operator: return "operator";
    case TokenType::End: return "end of template";
  }
  return "token";
}

std::string describe(const Token& token) {
  switch (token.type) {
    case TokenType::Name: return "'" + token.text + "'";
    case TokenType::Operator: return "'" + token.text + "'";
    case TokenType::String: return "string " + pystr::repr(token.text);
    case TokenType::Integer: return "integer " + std::to_string(token.int_value);
    case TokenType::Float: return "float " + pystr::float_repr(token.float_value);
    default: return token_type_name(token.type);
  }
}

namespace {

// Jinja joins the source's lines with "\n" (so "\r\n" and "\r" become "\n")
// and drops one trailing newline unless keep_trailing_newline.
std::string normalize_newlines(std::string_view source, bool keep_trailing_newline) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!keep_trailing_newline && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
 public:
  Lexer(std::string source, const LexerOptions& options) : src_(std::move(source)), options_(options) {
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      if (!lex_root()) break;
    }
    tokens_.push_back(Token{TokenType::End, "", 0, 0, location_at(src_.size())});
    return std::move(tokens_);
  }

 private:
  std::string src_;
  LexerOptions options_;
  size_t pos_ = 0;
  bool line_starting_ = true;  // did the previous match end with a newline?
  std::vector<Token> tokens_;
  std::vector<size_t> line_starts_{0};
  std::vector<char> brackets_;  // open brackets inside the current tag

  ast::Location location_at(size_t offset) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    const size_t line = static_cast<size_t>(it - line_starts_.begin());  // >= 1: line_starts_[0] == 0
    return ast::Location{static_cast<int>(line), static_cast<int>(offset - line_starts_[line - 1] + 1)};
  }

  [[noreturn]] void fail(size_t offset, const std::string& message) {
    const ast::Location w = location_at(offset);
    throw Error("template syntax error at line " + std::to_string(w.line) + ", column " + std::to_string(w.column) +
                ": " + message);
  }

  void emit_text(std::string text, size_t offset) {
    if (!text.empty()) tokens_.push_back(Token{TokenType::Text, std::move(text), 0, 0, location_at(offset)});
  }

  bool starts_with_at(size_t p, std::string_view s) const { return src_.compare(p, s.size(), s) == 0; }

  // Whitespace control for the text before a tag. sign is '-', '+' or 0.
  std::string control_text(std::string text, char sign, bool lstrip_applies) {
    if (sign == '-') return pystr::strip(text, std::nullopt, pystr::StripSide::Right);
    if (sign != '+' && options_.lstrip_blocks && lstrip_applies) {
      const size_t nl = text.rfind('\n');
      const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if (l_pos > 0 || line_starting_) {
        if (text.find_first_not_of(" \t", l_pos) == std::string::npos) text.resize(l_pos);
      }
    }
    return text;
  }

  // Python's \s* after "-%}" etc.: any Unicode whitespace.
  size_t skip_whitespace(size_t p) const {
    while (p < src_.size()) {
      const unsigned char c = static_cast<unsigned char>(src_[p]);
      if (c < 0x80) {
        if (!pystr::is_space(c)) break;
        ++p;
        continue;
      }
      // decode one code point
      const std::u32string cp = pystr::decode(std::string_view(src_).substr(p, 4));
      if (cp.empty() || !pystr::is_space(cp[0])) break;
      std::string enc;
      pystr::append_code_point(enc, cp[0]);
      p += enc.size();
    }
    return p;
  }

  // Is there "{%[-+]? raw [-]?%}" at p? Returns the end of the raw opener.
  bool raw_begin_at(size_t p, size_t& body_start) {
    if (!starts_with_at(p, "{%")) return false;
    size_t q = p + 2;
    if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ++q;
    q = skip_whitespace(q);
    if (!starts_with_at(q, "raw")) return false;
    q += 3;
    if (q < src_.size() && is_name_char(src_[q])) return false;
    q = skip_whitespace(q);
    if (starts_with_at(q, "-%}")) {
      body_start = skip_whitespace(q + 3);
    } else if (starts_with_at(q, "%}")) {
      body_start = q + 2;
    } else {
      return false;
    }
    return true;
  }

  // One round of the root state: text up to the next tag, then the tag.
  bool lex_root() {
    size_t tag = pos_;
    while (true) {
      tag = src_.find('{', tag);
      if (tag == std::string::npos || tag + 1 >= src_.size()) break;
      const char next = src_[tag + 1];
      if (next == '{' || next == '%' || next == '#') break;
      ++tag;
    }
    if (tag == std::string::npos || tag + 1 >= src_.size()) {
      emit_text(src_.substr(pos_), pos_);
      pos_ = src_.size();
      return false;
    }
    const char kind = src_[tag + 1];
    const char sign = (tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+')) ? src_[tag + 2] : 0;
    std::string text = src_.substr(pos_, tag - pos_);
    size_t raw_body = 0;
    const bool raw = kind == '%' && raw_begin_at(tag, raw_body);
    emit_text(control_text(std::move(text), sign, kind != '{'), pos_);
    if (raw) return lex_raw(tag, raw_body);
    if (kind == '#') return lex_comment(tag, sign);
    return lex_tag(tag, kind, sign);
  }

  bool lex_comment(size_t tag, char sign) {
    // Jinja checks, at each position, "+#}", then "-#}\s*", then "#}\n?".
    size_t end = std::string::npos;
    for (size_t p = tag + 2 + (sign ? 1 : 0); p < src_.size(); ++p) {
      if (starts_with_at(p, "+#}")) {
        end = p + 3;
      } else if (starts_with_at(p, "-#}")) {
        end = skip_whitespace(p + 3);
      } else if (starts_with_at(p, "#}")) {
        end = p + 2;
        if (options_.trim_blocks && end < src_.size() && src_[end] == '\n') ++end;
      }
      if (end != std::string::npos) break;
    }
    if (end == std::string::npos) fail(tag, "missing end of comment tag '#}'");
    line_starting_ = src_[end - 1] == '\n';
    pos_ = end;
    return true;
  }

  bool lex_raw(size_t tag, size_t body_start) {
    // Body up to "{%[-+]? endraw [-+]?%}".
    size_t p = body_start;
    while (true) {
      p = src_.find("{%", p);
      if (p == std::string::npos) fail(tag, "missing end of raw directive ({% endraw %})");
      size_t q = p + 2;
      char sign = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];
      q = skip_whitespace(q);
      if (starts_with_at(q, "endraw") && !(q + 6 < src_.size() && is_name_char(src_[q + 6]))) {
        q = skip_whitespace(q + 6);
        size_t end = 0;
        if (starts_with_at(q, "+%}")) {
          end = q + 3;
        } else if (starts_with_at(q, "-%}")) {
          end = skip_whitespace(q + 3);
        } else if (starts_with_at(q, "%}")) {
          end = q + 2;
          if (options_.trim_blocks && end < src_.size() && src_[end] == '\n') ++end;
        }
        if (end) {
          line_starting_ = src_[body_start - 1] == '\n';  // state after the raw opener
          emit_text(control_text(src_.substr(body_start, p - body_start), sign, true), body_start);
          line_starting_ = src_[end - 1] == '\n';
          pos_ = end;
          return true;
        }
      }
      p += 2;
    }
  }

  bool lex_tag(size_t tag, char kind, char sign) {
    const bool block = kind == '%';
    tokens_.push_back(Token{block ? TokenType::BlockBegin : TokenType::VariableBegin, block ? "{%" : "{{", 0, 0,
                            location_at(tag)});
    size_t p = tag + 2 + (sign ? 1 : 0);
    brackets_.clear();
    while (true) {
      if (p >= src_.size()) fail(tag, std::string("unexpected end of template, expected '") + (block ? "%}" : "}}") + "' to close the tag opened here");
      if (brackets_.empty() && try_tag_end(p, block)) return true;
      const char c = src_[p];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
        ++p;
        continue;
      }
      if (static_cast<unsigned char>(c) >= 0x80) {
        const size_t after = skip_whitespace(p);
        if (after != p) {
          p = after;
          continue;
        }
      }
      p = lex_token(p);
    }
  }

  bool try_tag_end(size_t p, bool block) {
    size_t end = 0;
    if (block) {
      if (starts_with_at(p, "+%}")) {
        end = p + 3;
      } else if (starts_with_at(p, "-%}")) {
        end = skip_whitespace(p + 3);
      } else if (starts_with_at(p, "%}")) {
        end = p + 2;
        if (options_.trim_blocks && end < src_.size() && src_[end] == '\n') ++end;
      }
    } else {
      if (starts_with_at(p, "-}}")) {
        end = skip_whitespace(p + 3);
      } else if (starts_with_at(p, "}}")) {
        end = p + 2;
      }
    }
    if (!end) return false;
    tokens_.push_back(Token{block ? TokenType::BlockEnd : TokenType::VariableEnd, block ? "%}" : "}}", 0, 0,
                            location_at(p)});
    line_starting_ = src_[end - 1] == '\n';
    pos_ = end;
    return true;
  }

  size_t lex_token(size_t p) {
    const char c = src_[p];
    if (is_digit(c)) return lex_number(p);
    if (is_name_start(c)) {
      size_t q = p;
      while (q < src_.size() && is_name_char(src_[q])) ++q;
      tokens_.push_back(Token{TokenType::Name, src_.substr(p, q - p), 0, 0, location_at(p)});
      return q;
    }
    if (c == '\'' || c == '"') return lex_string(p);
    return lex_operator(p);
  }

  // Jinja's float rule: digits with '_' separators, then a fraction and / or
  // an exponent; otherwise an integer (decimal, 0b, 0o, 0x).
  size_t lex_number(size_t p) {
    auto digits = [&](size_t q, auto is_ok) {
      size_t r = q;
      while (r < src_.size() && (is_ok(src_[r]) || (src_[r] == '_' && r + 1 < src_.size() && is_ok(src_[r + 1]) && r > q)))
        ++r;
      return r;
    };
    auto dec = [](char ch) { return ch >= '0' && ch <= '9'; };
    const bool after_dot = p > 0 && src_[p - 1] == '.';
    size_t q = digits(p, dec);
    size_t f = q;
    bool is_float = false;
    if (!after_dot) {
      if (f + 1 < src_.size() && src_[f] == '.' && dec(src_[f + 1])) {
        f = digits(f + 1, dec);
        is_float = true;
      }
      if (f < src_.size() && (src_[f] == 'e' || src_[f] == 'E')) {
        size_t e = f + 1;
        if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
        if (e < src_.size() && dec(src_[e])) {
          f = digits(e, dec);
          is_float = true;
        }
      }
    }
    const ast::Location where = location_at(p);
    if (is_float) {
      std::string text = src_.substr(p, f - p);
      text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
      tokens_.push_back(Token{TokenType::Float, text, 0, std::strtod(text.c_str(), nullptr), where});
      return f;
    }
    // Integers: "0" alone (or 0_0...) is a complete token, as in Jinja.
    size_t end = q;
    int base = 10;
    std::string body;
    if (src_[p] == '0' && p + 1 < src_.size() && std::strchr("xXoObB", src_[p + 1])) {
      const char b = static_cast<char>(std::tolower(src_[p + 1]));
      base = b == 'x' ? 16 : b == 'o' ? 8 : 2;
      auto ok = [base](char ch) {
        if (base == 16) return std::isxdigit(static_cast<unsigned char>(ch)) != 0;
        if (base == 8) return ch >= '0' && ch <= '7';
        return ch == '0' || ch == '1';
      };
      size_t r = p + 2;
      while (r < src_.size() && (ok(src_[r]) || (src_[r] == '_' && r + 1 < src_.size() && ok(src_[r + 1])))) ++r;
      if (r == p + 2) fail(p, "invalid integer literal");
      body = src_.substr(p + 2, r - p - 2);
      end = r;
    } else if (src_[p] == '0') {
      size_t r = p + 1;
      while (r < src_.size()) {
        if (src_[r] == '0') {
          ++r;
        } else if (src_[r] == '_' && r + 1 < src_.size() && src_[r + 1] == '0') {
          r += 2;
        } else {
          break;
        }
      }
      body = "0";
      end = r;
    } else {
      body = src_.substr(p, q - p);
    }
    body.erase(std::remove(body.begin(), body.end(), '_'), body.end());
    int64_t value = 0;
    auto res = std::from_chars(body.data(), body.data() + body.size(), value, base);
    if (res.ec != std::errc()) fail(p, "integer literal " + src_.substr(p, end - p) + " does not fit in 64 bits");
    tokens_.push_back(Token{TokenType::Integer, src_.substr(p, end - p), value, 0, where});
    return end;
  }

  size_t lex_string(size_t p) {
    const char quote = src_[p];
    size_t q = p + 1;
    while (q < src_.size() && src_[q] != quote) {
      if (src_[q] == '\\' && q + 1 < src_.size()) ++q;
      ++q;
    }
    if (q >= src_.size()) fail(p, "unterminated string literal");
    tokens_.push_back(Token{TokenType::String, unescape(src_.substr(p + 1, q - p - 1), p), 0, 0, location_at(p)});
    return q + 1;
  }

  // Python's "unicode-escape" decoding, which Jinja applies to literals.
  std::string unescape(const std::string& body, size_t offset) {
    std::string out;
    out.reserve(body.size());
    for (size_t i = 0; i < body.size(); ++i) {
      if (body[i] != '\\' || i + 1 >= body.size()) {
        out.push_back(body[i]);
        continue;
      }
      const char e = body[++i];
      auto hex = [&](int n) -> char32_t {
        char32_t v = 0;
        for (int k = 0; k < n; ++k) {
          if (i + 1 >= body.size() || !std::isxdigit(static_cast<unsigned char>(body[i + 1])))
            fail(offset, std::string("truncated \\") + e + " escape in string literal");
          const char h = body[++i];
          v = v * 16 + static_cast<char32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : std::tolower(h) - 'a' + 10);
        }
        return v;
      };
      switch (e) {
        case '\n': break;  // line continuation
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'v': out.push_back('\v'); break;
        case 'x': pystr::append_code_point(out, hex(2)); break;
        case 'u': pystr::append_code_point(out, hex(4)); break;
        case 'U': {
          const char32_t c = hex(8);
          if (c > 0x10FFFF) fail(offset, "illegal Unicode character in string literal");
          pystr::append_code_point(out, c);
          break;
        }
        case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
          char32_t v = static_cast<char32_t>(e - '0');
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k)
            v = v * 8 + static_cast<char32_t>(body[++i] - '0');
          pystr::append_code_point(out, v);
          break;
        }
        default:  // unknown escapes stay as written
          out.push_back('\\');
          out.push_back(e);
      }
    }
    return out;
  }

  size_t lex_operator(size_t p) {
    static const char* const kOperators[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
                                             "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"};
    for (const char* op : kOperators) {
      if (!starts_with_at(p, op)) continue;
      const std::string text(op);
      if (text == "(" || text == "[" || text == "{") {
        brackets_.push_back(text == "(" ? ')' : text == "[" ? ']' : '}');
      } else if (text == ")" || text == "]" || text == "}") {
        if (brackets_.empty()) fail(p, "unexpected '" + text + "'");
        const char expected = brackets_.back();
        brackets_.pop_back();
        if (expected != text[0]) fail(p, "unexpected '" + text + "', expected '" + std::string(1, expected) + "'");
      }
      tokens_.push_back(Token{TokenType::Operator, text, 0, 0, location_at(p)});
      return p + text.size();
    }
    fail(p, std::string("unexpected character '") + src_[p] + "'");
  }
};

}  // namespace

std::vector<Token> tokenize(std::string_view source, const LexerOptions& options) {
  Lexer lexer(normalize_newlines(source, options.keep_trailing_newline), options);
  return lexer.run();
}

}  // namespace flatline::jinja
