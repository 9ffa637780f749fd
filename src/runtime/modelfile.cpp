#include "runtime/modelfile.h"

#include <cctype>

namespace flatline {

namespace {

constexpr const char* kInstructions = "FROM, PARAMETER, TEMPLATE, SYSTEM, MESSAGE, LICENSE or ADAPTER";

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string shown(std::string_view s) {
  constexpr size_t kMax = 40;
  return "\"" + std::string(s.substr(0, kMax)) + (s.size() > kMax ? "...\"" : "\"");
}

// Walks the text, counting lines.
class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;  // a UTF-8 byte order mark
  }
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }
  int line() const { return line_; }
  bool at_line_end() const { return at_end() || peek() == '\n'; }

  void advance() {
    if (text_[pos_] == '\n') ++line_;
    ++pos_;
  }
  void skip_blanks() {
    while (!at_end() && is_blank(peek())) advance();
  }
  void skip_whitespace() {
    while (!at_end() && (is_blank(peek()) || peek() == '\n')) advance();
  }
  void skip_line() {
    while (!at_line_end()) advance();
  }
  // Characters up to the next blank or line end.
  std::string word() {
    const size_t start = pos_;
    while (!at_line_end() && !is_blank(peek())) advance();
    return std::string(text_.substr(start, pos_ - start));
  }
  bool starts_with(std::string_view s) const { return text_.substr(pos_, s.size()) == s; }
  void skip(size_t n) {
    for (size_t i = 0; i < n && !at_end(); ++i) advance();
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  int line_ = 1;
};

std::string triple_quoted(Cursor& c, int start_line) {
  c.skip(3);
  std::string out;
  while (!c.starts_with("\"\"\"")) {
    if (c.at_end()) throw ModelfileError(start_line, "\"\"\" is not closed (no matching \"\"\" before the end)");
    out += c.peek();
    c.advance();
  }
  c.skip(3);
  return out;
}

std::string quoted(Cursor& c, int line) {
  c.advance();
  std::string out;
  while (c.peek() != '"') {
    if (c.at_line_end()) throw ModelfileError(line, "the quoted value is not closed on its line (use \"\"\" for several lines)");
    if (c.peek() == '\\') {
      c.advance();
      if (c.at_line_end()) continue;
      const char e = c.peek();
      out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
    } else {
      out += c.peek();
    }
    c.advance();
  }
  c.advance();
  return out;
}

std::string rest_of_line(Cursor& c) {
  std::string out;
  while (!c.at_line_end()) {
    out += c.peek();
    c.advance();
  }
  while (!out.empty() && is_blank(out.back())) out.pop_back();
  return out;
}

// The value after an instruction (or after a PARAMETER name / MESSAGE role).
std::string value(Cursor& c, const std::string& what) {
  const int line = c.line();
  c.skip_blanks();
  if (c.at_line_end()) throw ModelfileError(line, what + " needs a value");
  const bool is_quoted = c.peek() == '"';
  std::string out = c.starts_with("\"\"\"") ? triple_quoted(c, line) : is_quoted ? quoted(c, line) : rest_of_line(c);
  if (is_quoted) {
    const int end_line = c.line();
    c.skip_blanks();
    if (!c.at_line_end())
      throw ModelfileError(end_line, what + ": unexpected text after the closing quote: " + shown(rest_of_line(c)));
  }
  return out;
}

// A PARAMETER name or MESSAGE role: one word on the instruction's line.
std::string argument_word(Cursor& c, const std::string& what) {
  const int line = c.line();
  c.skip_blanks();
  std::string w = c.word();
  if (w.empty()) throw ModelfileError(line, what + " needs a value");
  return w;
}

void parse_parameter(Cursor& c, int line, Modelfile& out) {
  ModelfileParameter p;
  p.line = line;
  p.name = lower(argument_word(c, "PARAMETER"));
  p.value = value(c, "PARAMETER " + p.name);
  out.parameters.push_back(std::move(p));
}

void parse_message(Cursor& c, int line, Modelfile& out) {
  ModelfileMessage m;
  m.line = line;
  m.role = lower(argument_word(c, "MESSAGE"));
  if (m.role != "system" && m.role != "user" && m.role != "assistant")
    throw ModelfileError(line, "MESSAGE role must be one of \"system\", \"user\", or \"assistant\", found " + shown(m.role));
  m.content = value(c, "MESSAGE " + m.role);
  out.messages.push_back(std::move(m));
}

void parse_instruction(Cursor& c, const std::string& name, int line, Modelfile& out) {
  const std::string upper_name = [&] {
    std::string u = name;
    for (char& ch : u) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return u;
  }();
  if (name == "parameter") return parse_parameter(c, line, out);
  if (name == "message") return parse_message(c, line, out);
  ModelfileValue v{"", line};
  if (name == "from") {
    if (out.from) throw ModelfileError(line, "a second FROM (the first is on line " + std::to_string(out.from->line) + ")");
    v.text = value(c, upper_name);
    out.from = std::move(v);
  } else if (name == "template") {
    v.text = value(c, upper_name);
    out.template_text = std::move(v);
  } else if (name == "system") {
    v.text = value(c, upper_name);
    out.system = std::move(v);
  } else if (name == "license") {
    v.text = value(c, upper_name);
    out.licenses.push_back(std::move(v));
  } else if (name == "adapter") {
    v.text = value(c, upper_name);
    out.adapters.push_back(std::move(v));
  } else {
    throw ModelfileError(line, "unknown instruction " + shown(name) + " (expected " + kInstructions + ")");
  }
}

}  // namespace

Modelfile parse_modelfile(std::string_view text) {
  if (text.size() > kMaxModelfileBytes)
    throw ModelfileError(1, "the Modelfile is " + std::to_string(text.size()) + " bytes; at most " +
                                std::to_string(kMaxModelfileBytes) + " are accepted");
  Modelfile out;
  Cursor c(text);
  for (c.skip_whitespace(); !c.at_end(); c.skip_whitespace()) {
    if (c.peek() == '#') {
      c.skip_line();
      continue;
    }
    const int line = c.line();
    const std::string word = c.word();
    if (!std::isalpha(static_cast<unsigned char>(word[0])))
      throw ModelfileError(line, "expected an instruction (" + std::string(kInstructions) + "), found " + shown(word));
    parse_instruction(c, lower(word), line, out);
  }
  if (!out.from) throw ModelfileError(1, "no FROM line (a Modelfile must name the model it starts from)");
  return out;
}

}  // namespace flatline
