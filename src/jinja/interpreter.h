// Executes a parsed template: scopes as Jinja2 has them (a for-loop
// iteration, a macro call, a with block each get their own; if blocks do
// not), Python's operators and attribute / item lookup as the sandbox does
// them, and the limits that keep a hostile template from hanging or
// exhausting memory.
#pragma once

#include <ctime>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "jinja/ast.h"
#include "jinja/value.h"

namespace flatline::jinja {

struct Limits {
  size_t max_output_bytes = 16u << 20;     // the rendered text, and any one string value
  size_t max_total_bytes = 256u << 20;     // all text the render builds (concatenation, join, ...)
  int64_t max_loop_iterations = 1000000;   // for-loop iterations plus items built by filters
  int max_recursion_depth = 100;           // nested macro calls
};

class Scope;
using ScopePtr = std::shared_ptr<Scope>;

class Scope {
 public:
  explicit Scope(ScopePtr parent = nullptr) : parent_(std::move(parent)) {}
  const Value* find(const std::string& name) const;
  void set(const std::string& name, Value value);

 private:
  ScopePtr parent_;
  std::vector<std::pair<std::string, Value>> vars_;
};

class Interpreter {
 public:
  Interpreter(const Limits& limits, const std::tm& now) : limits_(limits), now_(now) {}

  std::string render(const ast::Body& body, const ScopePtr& globals);

  // Python / Jinja semantics the filters, tests and methods share.
  Value call(const Value& callee, CallArgs& args);
  Value call_filter(const std::string& name, const Value& input, CallArgs& args);
  bool call_test(const std::string& name, const Value& value, CallArgs& args);
  Value getattr(const Value& object, const std::string& name);
  Value getitem(const Value& object, const Value& key);
  // iter(v) materialised; consumes generators; throws for non-iterables.
  std::vector<Value> iterate(const Value& v);
  int64_t length(const Value& v);  // len(v)
  Value binary(const std::string& op, const Value& a, const Value& b);
  bool contains(const Value& container, const Value& item);

  // Limits: every loop iteration / built item, and every byte of text built.
  void count_iterations(int64_t n = 1);
  void charge_text(size_t bytes);
  const std::tm& now() const { return now_; }
  const Limits& limits() const { return limits_; }

 private:
  enum class Flow { Normal, Break, Continue };
  friend class LoopObject;
  friend struct MacroCall;

  Limits limits_;
  std::tm now_;
  int64_t iterations_ = 0;
  size_t text_bytes_ = 0;
  int macro_depth_ = 0;
  int eval_depth_ = 0;
  int current_line_ = 0;

  Flow exec_body(const ast::Body& body, const ScopePtr& scope, std::string& out);
  Flow exec(const ast::Stmt& s, const ScopePtr& scope, std::string& out);
  Flow exec_for(const ast::Stmt& s, const ScopePtr& scope, std::string& out, const Value& iterable, int depth);
  void exec_set(const ast::Stmt& s, const ScopePtr& scope, std::string& out);
  void exec_call_block(const ast::Stmt& s, const ScopePtr& scope, std::string& out);
  void assign(const ast::Target& target, const Value& value, const ScopePtr& scope);
  Value make_macro(const std::string& name, const std::vector<ast::Parameter>& params, const ast::Body& body,
                   const ScopePtr& scope);
  Value apply_filters(const std::vector<ast::ExprPtr>& filters, Value value, const ScopePtr& scope);
  void append(std::string& out, const std::string& text);

  Value eval(const ast::Expr& e, const ScopePtr& scope);
  Value eval_call(const ast::Expr& e, const ScopePtr& scope);
  Value eval_compare(const ast::Expr& e, const ScopePtr& scope);
  Value eval_slice(const ast::Expr& e, const ScopePtr& scope);
  CallArgs eval_args(const std::vector<ast::Argument>& args, const ScopePtr& scope);
  Value unary(const std::string& op, const Value& v);
};

// Binds Python-style positional / keyword arguments to a signature, for
// filters, tests, methods and globals.
class ArgReader {
 public:
  ArgReader(std::string function, const CallArgs& args, std::initializer_list<const char*> names,
            bool extra_keywords_allowed = false);
  bool has(size_t index) const { return index < values_.size() && values_[index] != nullptr; }
  const Value& get(size_t index) const;  // Undefined when absent
  Value get_or(size_t index, Value fallback) const { return has(index) ? get(index) : fallback; }
  int64_t get_int(size_t index, int64_t fallback) const;
  bool get_bool(size_t index, bool fallback) const;
  std::optional<std::string> get_optional_string(size_t index) const;  // None / absent -> nullopt
  const std::string& name() const { return function_; }

 private:
  std::string function_;
  std::vector<std::string> names_;
  std::vector<const Value*> values_;
};

// Builtin filters, tests and methods (filters.cpp, tests.cpp, methods.cpp).
using FilterFunction = Value (*)(Interpreter&, const Value&, CallArgs&);
using TestFunction = bool (*)(Interpreter&, const Value&, CallArgs&);
FilterFunction find_filter(const std::string& name);
TestFunction find_test(const std::string& name);
// The bound method `object.name` if the Python type has one (an unsafe
// Undefined for the ones the immutable sandbox blocks), else nullopt.
std::optional<Value> find_method(const Value& object, const std::string& name);
// Python's str(v) % args and str.format.
// A Markup format string HTML-escapes the plain strings it formats.
std::string percent_format(Interpreter& interp, const Value& format, const Value& args);
std::string brace_format(Interpreter& interp, const Value& format, const CallArgs& args);
// json.dumps as HF's tojson filter calls it.
std::string json_dumps(const Value& v, bool ensure_ascii, const Value& indent, const Value& separators, bool sort_keys);

}  // namespace flatline::jinja
