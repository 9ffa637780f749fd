// Splits template source into tokens the way Jinja2's lexer does with the
// settings Hugging Face uses for chat templates (trim_blocks, lstrip_blocks):
// text, {{ }}, {% %} with their whitespace control, comments dropped, raw
// blocks kept as text, and the tokens inside tags.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "jinja/ast.h"

namespace flatline::jinja {

enum class TokenType { Text, VariableBegin, VariableEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, End };

struct Token {
  TokenType type;
  std::string text;    // Text, Name, Operator; a String's decoded value
  int64_t int_value = 0;
  double float_value = 0;
  ast::Location where;
};

struct LexerOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

// Throws jinja::Error naming line and column for an unterminated tag,
// string or comment, an unexpected character, or unbalanced brackets.
std::vector<Token> tokenize(std::string_view source, const LexerOptions& options = {});

const char* token_type_name(TokenType type);
std::string describe(const Token& token);  // for "expected X, found Y" messages

}  // namespace flatline::jinja
