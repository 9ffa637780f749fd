#include "jinja/parser.h"

#include <initializer_list>

#include "jinja/error.h"

namespace flatline::jinja {

using ast::Body;
using ast::Expr;
using ast::ExprKind;
using ast::ExprPtr;
using ast::Stmt;
using ast::StmtKind;
using ast::StmtPtr;

namespace {

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Body parse() {
    Body body = subparse({});
    if (current().type != TokenType::End) fail_here("unexpected " + describe(current()));
    return body;
  }

 private:
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;                 // for break / continue
  struct OpenBlock {
    std::string tag;
    int line;
    std::vector<std::string> end_names;
  };
  std::vector<OpenBlock> open_blocks_;  // block statements being parsed, innermost last

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > kMaxParseDepth)
        p.fail_here("the template nests expressions or statements deeper than " + std::to_string(kMaxParseDepth) +
                    " levels");
    }
    ~DepthGuard() { --p.depth_; }
  };

  // ---- token stream ----------------------------------------------------------------

  const Token& current() const { return tokens_[pos_]; }
  const Token& look() const { return tokens_[std::min(pos_ + 1, tokens_.size() - 1)]; }
  Token next() {
    Token t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }
  bool is_op(const char* op) const { return current().type == TokenType::Operator && current().text == op; }
  bool is_name(const char* name) const { return current().type == TokenType::Name && current().text == name; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }

  [[noreturn]] void fail_at(const ast::Location& w, const std::string& message) const {
    throw Error("template syntax error at line " + std::to_string(w.line) + ", column " + std::to_string(w.column) +
                ": " + message);
  }
  [[noreturn]] void fail_here(const std::string& message) const { fail_at(current().where, message); }

  void expect_op(const char* op) {
    if (!skip_op(op)) fail_here(std::string("expected '") + op + "', found " + describe(current()));
  }
  Token expect_name() {
    if (current().type != TokenType::Name) fail_here("expected a name, found " + describe(current()));
    return next();
  }
  void expect_type(TokenType type) {
    if (current().type != type) {
      if (current().type == TokenType::End && !open_blocks_.empty()) fail_eof();
      fail_here(std::string("expected ") + token_type_name(type) + ", found " + describe(current()));
    }
    next();
  }

  ExprPtr make(ExprKind kind, const ast::Location& w) { return std::make_unique<Expr>(kind, w); }

  // ---- template structure -------------------------------------------------------------

  // Text and tags until a block tag whose name is one of end_names (not consumed).
  Body subparse(std::initializer_list<const char*> end_names) {
    Body body;
    while (current().type != TokenType::End) {
      const Token& t = current();
      if (t.type == TokenType::Text) {
        auto s = std::make_unique<Stmt>(StmtKind::Text, t.where);
        s->text = t.text;
        body.push_back(std::move(s));
        next();
      } else if (t.type == TokenType::VariableBegin) {
        const ast::Location w = t.where;
        next();
        auto s = std::make_unique<Stmt>(StmtKind::Output, w);
        s->expr = parse_tuple(false, true, {}, false);
        expect_type(TokenType::VariableEnd);
        body.push_back(std::move(s));
      } else if (t.type == TokenType::BlockBegin) {
        next();
        for (const char* end : end_names)
          if (is_name(end)) return body;
        parse_statement(body);
        expect_type(TokenType::BlockEnd);
      } else {
        fail_here("unexpected " + describe(t));
      }
    }
    return body;
  }

  // After a statement's header: "%}", then the body up to one of end_names.
  Body parse_statements(const Stmt& owner, const char* tag, std::initializer_list<const char*> end_names,
                        bool drop_needle) {
    skip_op(":");
    expect_type(TokenType::BlockEnd);
    open_blocks_.push_back({tag, owner.where.line, {end_names.begin(), end_names.end()}});
    Body body = subparse(end_names);
    if (current().type == TokenType::End) fail_eof();
    open_blocks_.pop_back();
    if (drop_needle) next();
    return body;
  }

  static std::string alternatives(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += std::string(out.empty() ? "" : " or ") + "'" + n + "'";
    return out;
  }

  std::string open_block_description() const {
    const OpenBlock& b = open_blocks_.back();
    return "the '" + b.tag + "' on line " + std::to_string(b.line) + " needs " + alternatives(b.end_names);
  }

  [[noreturn]] void fail_eof() const {
    std::string message = "unexpected end of template";
    if (!open_blocks_.empty()) message += ": " + open_block_description();
    fail_here(message);
  }

  [[noreturn]] void fail_unknown_tag(const Token& t) const {
    std::string message = "unknown tag '" + t.text + "'";
    if (!open_blocks_.empty()) message += "; " + open_block_description();
    fail_at(t.where, message);
  }



  void parse_statement(Body& out) {
    DepthGuard guard(*this);
    const Token t = current();
    if (t.type != TokenType::Name) fail_here("expected a tag name after '{%', found " + describe(t));
    const std::string& n = t.text;
    if (n == "if") return out.push_back(parse_if());
    if (n == "for") return out.push_back(parse_for());
    if (n == "set") return out.push_back(parse_set());
    if (n == "macro") return out.push_back(parse_macro());
    if (n == "call") return out.push_back(parse_call_block());
    if (n == "filter") return out.push_back(parse_filter_block());
    if (n == "with") return out.push_back(parse_with());
    if (n == "print") return parse_print(out);
    if (n == "generation") {
      next();
      auto s = std::make_unique<Stmt>(StmtKind::Block, t.where);
      s->body = parse_statements(*s, "generation", {"endgeneration"}, true);
      return out.push_back(std::move(s));
    }
    if (n == "break" || n == "continue") {
      next();
      if (loop_depth_ == 0) fail_at(t.where, "'" + n + "' outside of a for loop");
      return out.push_back(std::make_unique<Stmt>(n == "break" ? StmtKind::Break : StmtKind::Continue, t.where));
    }
    if (n == "extends" || n == "include" || n == "import" || n == "from" || n == "block" || n == "autoescape")
      fail_at(t.where, "the '" + n + "' tag is not supported (chat templates are single, self-contained strings)");
    fail_unknown_tag(t);
  }

  StmtPtr parse_if() {
    auto s = std::make_unique<Stmt>(StmtKind::If, next().where);
    while (true) {
      ExprPtr test = parse_tuple(false, false, {}, false);
      Body body = parse_statements(*s, "if", {"elif", "else", "endif"}, false);
      s->branches.emplace_back(std::move(test), std::move(body));
      const Token t = next();
      if (t.text == "elif") continue;
      if (t.text == "else") s->else_body = parse_statements(*s, "if", {"endif"}, true);
      break;
    }
    return s;
  }

  StmtPtr parse_for() {
    auto s = std::make_unique<Stmt>(StmtKind::For, next().where);
    s->target = parse_assign_target(false, {"in"});
    if (!skip_name("in")) fail_here("expected 'in' after the for loop's target, found " + describe(current()));
    s->expr = parse_tuple(false, false, {"recursive"}, false);
    if (skip_name("if")) s->condition = parse_expression(true);
    s->recursive = skip_name("recursive");
    ++loop_depth_;
    s->body = parse_statements(*s, "for", {"endfor", "else"}, false);
    --loop_depth_;
    if (next().text == "else") s->else_body = parse_statements(*s, "for", {"endfor"}, true);
    return s;
  }

  StmtPtr parse_set() {
    auto s = std::make_unique<Stmt>(StmtKind::Set, next().where);
    s->target = parse_assign_target(true, {});
    if (skip_op("=")) {
      s->expr = parse_tuple(false, true, {}, false);
      return s;
    }
    s->kind = StmtKind::SetBlock;
    s->filters = parse_filter_chain(false);
    s->body = parse_statements(*s, "set", {"endset"}, true);
    return s;
  }

  StmtPtr parse_macro() {
    auto s = std::make_unique<Stmt>(StmtKind::Macro, next().where);
    s->text = expect_name().text;
    s->params = parse_signature();
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;  // a macro body is its own function: no loop to break out of
    s->body = parse_statements(*s, "macro", {"endmacro"}, true);
    loop_depth_ = saved_loops;
    return s;
  }

  std::vector<ast::Parameter> parse_signature() {
    std::vector<ast::Parameter> params;
    expect_op("(");
    bool has_default = false;
    while (!is_op(")")) {
      if (!params.empty()) expect_op(",");
      ast::Parameter p;
      p.name = expect_name().text;
      if (skip_op("=")) {
        p.default_value = parse_expression(true);
        has_default = true;
      } else if (has_default) {
        fail_here("non-default argument follows default argument");
      }
      params.push_back(std::move(p));
    }
    expect_op(")");
    return params;
  }

  StmtPtr parse_call_block() {
    auto s = std::make_unique<Stmt>(StmtKind::CallBlock, next().where);
    if (is_op("(")) s->params = parse_signature();
    s->expr = parse_expression(true);
    if (s->expr->kind != ExprKind::Call) fail_at(s->where, "expected a call after '{% call %}'");
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_statements(*s, "call", {"endcall"}, true);
    loop_depth_ = saved_loops;
    return s;
  }

  StmtPtr parse_filter_block() {
    auto s = std::make_unique<Stmt>(StmtKind::FilterBlock, next().where);
    s->filters = parse_filter_chain(true);
    s->body = parse_statements(*s, "filter", {"endfilter"}, true);
    return s;
  }

  StmtPtr parse_with() {
    auto s = std::make_unique<Stmt>(StmtKind::With, next().where);
    while (current().type != TokenType::BlockEnd) {
      if (!s->assignments.empty()) expect_op(",");
      ast::Target target = parse_assign_target(false, {});
      expect_op("=");
      s->assignments.emplace_back(std::move(target), parse_expression(true));
    }
    s->body = parse_statements(*s, "with", {"endwith"}, true);
    return s;
  }

  void parse_print(Body& out) {
    const ast::Location w = next().where;
    bool first = true;
    while (current().type != TokenType::BlockEnd) {
      if (!first) expect_op(",");
      first = false;
      auto s = std::make_unique<Stmt>(StmtKind::Output, w);
      s->expr = parse_expression(true);
      out.push_back(std::move(s));
    }
  }

  // name | name, name, ... | ns.attribute
  ast::Target parse_assign_target(bool with_namespace, std::initializer_list<const char*> extra_end) {
    ast::Target target;
    if (with_namespace && current().type == TokenType::Name && look().type == TokenType::Operator && look().text == ".") {
      target.name = next().text;
      next();
      target.attribute = expect_name().text;
      return target;
    }
    std::vector<std::string> names;
    bool is_tuple = false;
    bool parenthesised = skip_op("(");
    while (true) {
      if (!names.empty()) expect_op(",");
      if (is_tuple_end(extra_end) || (parenthesised && is_op(")"))) break;
      const Token t = current();
      if (t.type != TokenType::Name) fail_here("can't assign to " + describe(t) + ": expected a variable name");
      if (t.text == "true" || t.text == "false" || t.text == "none" || t.text == "True" || t.text == "False" ||
          t.text == "None")
        fail_here("can't assign to the constant '" + t.text + "'");
      names.push_back(next().text);
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (parenthesised) {
      expect_op(")");
      is_tuple = true;
    }
    if (names.empty()) fail_here("expected a variable name to assign to, found " + describe(current()));
    if (is_tuple) {
      target.names = std::move(names);
    } else {
      target.name = names[0];
    }
    return target;
  }

  std::vector<ExprPtr> parse_filter_chain(bool start_inline) {
    std::vector<ExprPtr> filters;
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      filters.push_back(parse_filter_call(nullptr));
    }
    return filters;
  }

  // ---- expressions --------------------------------------------------------------------

  bool is_tuple_end(std::initializer_list<const char*> extra_end) const {
    const Token& t = current();
    if (t.type == TokenType::VariableEnd || t.type == TokenType::BlockEnd || (t.type == TokenType::Operator && t.text == ")"))
      return true;
    for (const char* e : extra_end)
      if (t.type == TokenType::Name && t.text == e) return true;
    return false;
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr, std::initializer_list<const char*> extra_end,
                      bool explicit_parentheses) {
    const ast::Location w = current().where;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) fail_here("expected an expression, found " + describe(current()));
    }
    ExprPtr t = make(ExprKind::Tuple, w);
    t->items = std::move(items);
    return t;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    ast::Location w = current().where;
    ExprPtr expr = parse_or();
    while (skip_name("if")) {
      ExprPtr condition = parse_or();
      ExprPtr otherwise;
      if (skip_name("else")) otherwise = parse_condexpr();
      ExprPtr c = make(ExprKind::Conditional, w);
      c->a = std::move(expr);
      c->b = std::move(condition);
      c->c = std::move(otherwise);
      expr = std::move(c);
      w = current().where;
    }
    return expr;
  }

  ExprPtr binary(const char* op, ExprPtr left, ExprPtr right, const ast::Location& w) {
    ExprPtr e = make(ExprKind::Binary, w);
    e->name = op;
    e->a = std::move(left);
    e->b = std::move(right);
    return e;
  }

  ExprPtr parse_or() {
    const ast::Location w = current().where;
    ExprPtr left = parse_and();
    while (skip_name("or")) left = binary("or", std::move(left), parse_and(), w);
    return left;
  }

  ExprPtr parse_and() {
    const ast::Location w = current().where;
    ExprPtr left = parse_not();
    while (skip_name("and")) left = binary("and", std::move(left), parse_not(), w);
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      const ast::Location w = next().where;
      ExprPtr e = make(ExprKind::Unary, w);
      e->name = "not";
      e->a = parse_not();
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const ast::Location w = current().where;
    ExprPtr expr = parse_math1();
    std::vector<std::pair<std::string, ExprPtr>> ops;
    while (true) {
      const Token& t = current();
      if (t.type == TokenType::Operator &&
          (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">=")) {
        const std::string op = next().text;
        ops.emplace_back(op, parse_math1());
      } else if (skip_name("in")) {
        ops.emplace_back("in", parse_math1());
      } else if (is_name("not") && look().type == TokenType::Name && look().text == "in") {
        next();
        next();
        ops.emplace_back("notin", parse_math1());
      } else {
        break;
      }
    }
    if (ops.empty()) return expr;
    ExprPtr c = make(ExprKind::Compare, w);
    c->a = std::move(expr);
    c->comparisons = std::move(ops);
    return c;
  }

  ExprPtr parse_math1() {
    const ast::Location w = current().where;
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const char* name = is_op("+") ? "+" : "-";
      next();
      left = binary(name, std::move(left), parse_concat(), w);
    }
    return left;
  }

  ExprPtr parse_concat() {
    const ast::Location w = current().where;
    ExprPtr left = parse_math2();
    while (skip_op("~")) left = binary("~", std::move(left), parse_math2(), w);
    return left;
  }

  ExprPtr parse_math2() {
    const ast::Location w = current().where;
    ExprPtr left = parse_pow();
    while (true) {
      const char* name = is_op("*") ? "*" : is_op("/") ? "/" : is_op("//") ? "//" : is_op("%") ? "%" : nullptr;
      if (!name) break;
      next();
      left = binary(name, std::move(left), parse_pow(), w);
    }
    return left;
  }

  ExprPtr parse_pow() {
    const ast::Location w = current().where;
    ExprPtr left = parse_unary(true);
    while (skip_op("**")) left = binary("**", std::move(left), parse_unary(true), w);
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    const ast::Location w = current().where;
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const std::string op = next().text;
      node = make(ExprKind::Unary, w);
      node->name = op;
      node->a = parse_unary(false);
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token t = current();
    switch (t.type) {
      case TokenType::Name: {
        next();
        ExprPtr e = make(ExprKind::Literal, t.where);
        if (t.text == "true" || t.text == "True") {
          e->value = Value(true);
        } else if (t.text == "false" || t.text == "False") {
          e->value = Value(false);
        } else if (t.text == "none" || t.text == "None") {
          e->value = Value::none();
        } else {
          e->kind = ExprKind::Name;
          e->name = t.text;
        }
        return e;
      }
      case TokenType::String: {
        std::string text;
        while (current().type == TokenType::String) text += next().text;  // adjacent literals concatenate
        ExprPtr e = make(ExprKind::Literal, t.where);
        e->value = Value(std::move(text));
        return e;
      }
      case TokenType::Integer: {
        next();
        ExprPtr e = make(ExprKind::Literal, t.where);
        e->value = Value(t.int_value);
        return e;
      }
      case TokenType::Float: {
        next();
        ExprPtr e = make(ExprKind::Literal, t.where);
        e->value = Value(t.float_value);
        return e;
      }
      case TokenType::Operator:
        if (t.text == "(") {
          next();
          ExprPtr e = parse_tuple(false, true, {}, true);
          expect_op(")");
          return e;
        }
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        break;
      default: break;
    }
    fail_here("unexpected " + describe(t) + (t.type == TokenType::VariableEnd || t.type == TokenType::BlockEnd
                                                   ? ", expected an expression"
                                                   : ""));
  }

  ExprPtr parse_list() {
    ExprPtr e = make(ExprKind::List, next().where);
    while (!is_op("]")) {
      if (!e->items.empty()) expect_op(",");
      if (is_op("]")) break;
      e->items.push_back(parse_expression(true));
    }
    expect_op("]");
    return e;
  }

  ExprPtr parse_dict() {
    ExprPtr e = make(ExprKind::Dict, next().where);
    while (!is_op("}")) {
      if (!e->items.empty()) expect_op(",");
      if (is_op("}")) break;
      e->items.push_back(parse_expression(true));
      expect_op(":");
      e->items.push_back(parse_expression(true));
    }
    expect_op("}");
    return e;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        next();
        node = parse_filter_call(std::move(node));
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token t = next();
    if (t.text == ".") {
      const Token attr = next();
      if (attr.type == TokenType::Name) {
        ExprPtr e = make(ExprKind::GetAttr, t.where);
        e->a = std::move(node);
        e->name = attr.text;
        return e;
      }
      if (attr.type != TokenType::Integer) fail_at(attr.where, "expected a name or number after '.', found " + describe(attr));
      ExprPtr index = make(ExprKind::Literal, attr.where);
      index->value = Value(attr.int_value);
      ExprPtr e = make(ExprKind::GetItem, t.where);
      e->a = std::move(node);
      e->b = std::move(index);
      return e;
    }
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    ExprPtr e = make(ExprKind::GetItem, t.where);
    e->a = std::move(node);
    if (args.size() == 1) {
      if (args[0]->kind == ExprKind::Slice) {
        args[0]->a = std::move(e->a);
        return std::move(args[0]);
      }
      e->b = std::move(args[0]);
    } else {
      ExprPtr tuple = make(ExprKind::Tuple, t.where);
      tuple->items = std::move(args);
      e->b = std::move(tuple);
    }
    return e;
  }

  // index, or start:stop:step with any part missing. A slice is returned
  // as a Slice node whose object (a) the caller fills in.
  ExprPtr parse_subscribed() {
    const ast::Location w = current().where;
    ExprPtr start;
    if (!is_op(":")) {
      start = parse_expression(true);
      if (!is_op(":")) return start;
    }
    next();  // ':'
    ExprPtr s = make(ExprKind::Slice, w);
    s->b = std::move(start);
    if (!is_op(":") && !is_op("]") && !is_op(",")) s->c = parse_expression(true);
    if (skip_op(":")) {
      if (!is_op("]") && !is_op(",")) s->items.push_back(parse_expression(true));
    }
    return s;
  }

  std::vector<ast::Argument> parse_call_args() {
    const ast::Location w = current().where;
    expect_op("(");
    std::vector<ast::Argument> args;
    bool require_comma = false, seen_keyword = false, seen_star = false, seen_star_star = false;
    auto ensure = [&](bool ok) {
      if (!ok) fail_at(w, "invalid syntax for function call expression");
    };
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      ast::Argument a;
      if (skip_op("*")) {
        ensure(!seen_star && !seen_star_star);
        seen_star = true;
        a.star = true;
        a.value = parse_expression(true);
      } else if (skip_op("**")) {
        ensure(!seen_star_star);
        seen_star_star = true;
        a.star_star = true;
        a.value = parse_expression(true);
      } else if (current().type == TokenType::Name && look().type == TokenType::Operator && look().text == "=") {
        ensure(!seen_star_star);
        a.keyword = next().text;
        next();
        a.value = parse_expression(true);
        seen_keyword = true;
      } else {
        ensure(!seen_star && !seen_star_star && !seen_keyword);
        a.value = parse_expression(true);
      }
      args.push_back(std::move(a));
      require_comma = true;
    }
    expect_op(")");
    return args;
  }

  ExprPtr parse_call(ExprPtr node) {
    ExprPtr e = make(ExprKind::Call, current().where);
    e->a = std::move(node);
    e->args = parse_call_args();
    return e;
  }

  std::string dotted_name() {
    std::string name = expect_name().text;
    while (is_op(".")) {
      next();
      name += "." + expect_name().text;
    }
    return name;
  }

  ExprPtr parse_filter_call(ExprPtr operand) {
    const ast::Location w = current().where;
    ExprPtr e = make(ExprKind::Filter, w);
    e->a = std::move(operand);
    e->name = dotted_name();
    if (is_op("(")) e->args = parse_call_args();
    return e;
  }

  ExprPtr parse_test(ExprPtr operand) {
    const ast::Location w = next().where;  // 'is'
    ExprPtr e = make(ExprKind::Test, w);
    e->a = std::move(operand);
    e->negated = skip_name("not");
    e->name = dotted_name();
    const Token& t = current();
    if (is_op("(")) {
      e->args = parse_call_args();
    } else if ((t.type == TokenType::Name || t.type == TokenType::String || t.type == TokenType::Integer ||
                t.type == TokenType::Float || is_op("(") || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail_here("you cannot chain multiple tests with 'is'");
      ast::Argument a;
      a.value = parse_postfix(parse_primary());
      e->args.push_back(std::move(a));
    }
    return e;
  }
};

}  // namespace

ast::Body parse_template(std::string_view source) {
  Parser parser(tokenize(source));
  return parser.parse();
}

}  // namespace flatline::jinja
