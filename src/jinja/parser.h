// Jinja2's grammar (the statements and expressions chat templates use) over
// the lexer's tokens. Errors name line and column and what was expected.
#pragma once

#include <string_view>

#include "jinja/ast.h"
#include "jinja/lexer.h"

namespace flatline::jinja {

// Deepest nesting of expressions / statements accepted, so a hostile
// template cannot overflow the stack of the parser or the interpreter.
inline constexpr int kMaxParseDepth = 256;

ast::Body parse_template(std::string_view source);

}  // namespace flatline::jinja
