#include "jinja/interpreter.h"

#include <cmath>
#include <limits>
#include <unordered_set>

#include "jinja/error.h"
#include "jinja/pystr.h"

namespace flatline::jinja {

using ast::Expr;
using ast::ExprKind;
using ast::Stmt;
using ast::StmtKind;

// ---- scopes ------------------------------------------------------------------------

const Value* Scope::find(const std::string& name) const {
  for (const Scope* s = this; s; s = s->parent_.get()) {
    for (const auto& [k, v] : s->vars_)
      if (k == name) return &v;
  }
  return nullptr;
}

void Scope::set(const std::string& name, Value value) {
  for (auto& [k, v] : vars_) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  vars_.emplace_back(name, std::move(value));
}

// ---- argument binding -----------------------------------------------------------------

ArgReader::ArgReader(std::string function, const CallArgs& args, std::initializer_list<const char*> names,
                     bool extra_keywords_allowed)
    : function_(std::move(function)), names_(names.begin(), names.end()), values_(names.size(), nullptr) {
  if (args.positional.size() > names_.size())
    throw Error(function_ + "() takes at most " + std::to_string(names_.size()) + " argument(s) (" +
                std::to_string(args.positional.size()) + " given)");
  for (size_t i = 0; i < args.positional.size(); ++i) values_[i] = &args.positional[i];
  for (const auto& [key, value] : args.keyword) {
    size_t i = 0;
    while (i < names_.size() && names_[i] != key) ++i;
    if (i == names_.size()) {
      if (extra_keywords_allowed) continue;
      throw Error(function_ + "() got an unexpected keyword argument '" + key + "'");
    }
    if (values_[i]) throw Error(function_ + "() got multiple values for argument '" + key + "'");
    values_[i] = &value;
  }
}

const Value& ArgReader::get(size_t index) const {
  static const Value kAbsent;
  return has(index) ? *values_[index] : kAbsent;
}

int64_t ArgReader::get_int(size_t index, int64_t fallback) const {
  if (!has(index)) return fallback;
  const Value& v = get(index);
  if (v.is_int() || v.is_bool()) return v.int_value();
  if (v.is_float()) throw Error(function_ + "(): '" + names_[index] + "' must be an integer, not float");
  throw Error(function_ + "(): '" + names_[index] + "' must be an integer, not " + type_name(v));
}

bool ArgReader::get_bool(size_t index, bool fallback) const { return has(index) ? truthy(get(index)) : fallback; }

std::optional<std::string> ArgReader::get_optional_string(size_t index) const {
  if (!has(index) || get(index).is_none()) return std::nullopt;
  const Value& v = get(index);
  if (!v.is_string()) throw Error(function_ + "(): '" + names_[index] + "' must be a string, not " + type_name(v));
  return v.as_string();
}

// ---- limits -----------------------------------------------------------------------------

void Interpreter::count_iterations(int64_t n) {
  iterations_ += n;
  if (iterations_ > limits_.max_loop_iterations)
    throw LimitError("the template ran more than " + std::to_string(limits_.max_loop_iterations) +
                     " loop iterations (jinja::RenderOptions::max_loop_iterations)");
}

void Interpreter::charge_text(size_t bytes) {
  if (bytes > limits_.max_output_bytes)
    throw LimitError("the template built a string of " + std::to_string(bytes) + " bytes, more than the limit of " +
                     std::to_string(limits_.max_output_bytes) + " (jinja::RenderOptions::max_output_bytes)");
  text_bytes_ += bytes;
  if (text_bytes_ > limits_.max_total_bytes)
    throw LimitError("the template built more than " + std::to_string(limits_.max_total_bytes) +
                     " bytes of text in total (jinja::RenderOptions::max_total_bytes)");
}

void Interpreter::append(std::string& out, const std::string& text) {
  if (out.size() + text.size() > limits_.max_output_bytes)
    throw LimitError("the template's output exceeds " + std::to_string(limits_.max_output_bytes) +
                     " bytes (jinja::RenderOptions::max_output_bytes)");
  charge_text(text.size());
  out += text;
}

// ---- rendering ---------------------------------------------------------------------------

namespace {

// Keeps the C++ stack bounded however a template nests and recurses.
constexpr int kMaxEvalDepth = 3000;

struct DepthGuard {
  int& depth;
  explicit DepthGuard(int& d) : depth(d) {
    if (++depth > kMaxEvalDepth)
      throw LimitError("the template nests calls and expressions deeper than " + std::to_string(kMaxEvalDepth) +
                       " levels");
  }
  ~DepthGuard() { --depth; }
};

// Whether `v` holds `target` anywhere inside it. Values are shared, so a
// namespace stored into itself (directly or through a list, dict or other
// namespace) would be a reference cycle that is never freed.
bool holds(const Value& v, const NamespaceObject* target, std::unordered_set<const void*>& seen) {
  if (v.is_namespace()) {
    const NamespaceObject* ns = &v.namespace_object();
    if (ns == target) return true;
    if (!seen.insert(ns).second) return false;
    for (const auto& [k, x] : ns->attributes.entries())
      if (holds(x, target, seen)) return true;
  } else if (v.is_list()) {
    if (!seen.insert(&v.list_object()).second) return false;
    for (const Value& x : v.items())
      if (holds(x, target, seen)) return true;
  } else if (v.is_dict()) {
    if (!seen.insert(&v.dict_object()).second) return false;
    for (const auto& [k, x] : v.dict_object().entries())
      if (holds(x, target, seen)) return true;
  }
  return false;
}

}  // namespace

std::string Interpreter::render(const ast::Body& body, const ScopePtr& globals) {
  std::string out;
  try {
    exec_body(body, std::make_shared<Scope>(globals), out);
  } catch (const TemplateRaisedError& e) {
    throw TemplateRaisedError(e.raised_message(), current_line_);
  } catch (const LimitError& e) {
    throw LimitError("template error at line " + std::to_string(current_line_) + ": " + e.what());
  } catch (const Error& e) {
    throw Error("template error at line " + std::to_string(current_line_) + ": " + e.what());
  }
  return out;
}

Interpreter::Flow Interpreter::exec_body(const ast::Body& body, const ScopePtr& scope, std::string& out) {
  for (const auto& s : body) {
    const Flow f = exec(*s, scope, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Interpreter::Flow Interpreter::exec(const Stmt& s, const ScopePtr& scope, std::string& out) {
  DepthGuard guard(eval_depth_);
  current_line_ = s.where.line;
  switch (s.kind) {
    case StmtKind::Text: append(out, s.text); return Flow::Normal;
    case StmtKind::Output: {
      const Value v = eval(*s.expr, scope);
      append(out, to_str(v));
      return Flow::Normal;
    }
    case StmtKind::If:
      for (const auto& [condition, body] : s.branches) {
        current_line_ = condition->where.line;
        if (truthy(eval(*condition, scope))) return exec_body(body, scope, out);
      }
      return exec_body(s.else_body, scope, out);
    case StmtKind::For: return exec_for(s, scope, out, eval(*s.expr, scope), 0);
    case StmtKind::Set:
    case StmtKind::SetBlock: exec_set(s, scope, out); return Flow::Normal;
    case StmtKind::Macro: scope->set(s.text, make_macro(s.text, s.params, s.body, scope)); return Flow::Normal;
    case StmtKind::CallBlock: exec_call_block(s, scope, out); return Flow::Normal;
    case StmtKind::FilterBlock: {
      std::string inner;
      exec_body(s.body, std::make_shared<Scope>(scope), inner);
      append(out, to_str(apply_filters(s.filters, Value(std::move(inner)), scope)));
      return Flow::Normal;
    }
    case StmtKind::With: {
      auto inner = std::make_shared<Scope>(scope);
      for (const auto& [target, value] : s.assignments) assign(target, eval(*value, scope), inner);
      return exec_body(s.body, inner, out);
    }
    case StmtKind::Break: return Flow::Break;
    case StmtKind::Continue: return Flow::Continue;
    case StmtKind::Block: return exec_body(s.body, scope, out);
  }
  return Flow::Normal;
}

void Interpreter::assign(const ast::Target& target, const Value& value, const ScopePtr& scope) {
  if (!target.attribute.empty()) {
    const Value* ns = scope->find(target.name);
    if (!ns || !ns->is_namespace())
      throw Error("cannot assign attribute '" + target.attribute + "' on '" + target.name +
                  "': it is not a namespace() object");
    std::unordered_set<const void*> seen;
    if (holds(value, &ns->namespace_object(), seen))
      throw Error("cannot assign '" + target.name + "." + target.attribute + "': the value contains '" + target.name +
                  "' itself");
    ns->namespace_object().attributes.set(Value(target.attribute), value);
    return;
  }
  if (target.names.empty()) {
    scope->set(target.name, value);
    return;
  }
  const std::vector<Value> items = iterate(value);
  if (items.size() < target.names.size())
    throw Error("not enough values to unpack (expected " + std::to_string(target.names.size()) + ", got " +
                std::to_string(items.size()) + ")");
  if (items.size() > target.names.size())
    throw Error("too many values to unpack (expected " + std::to_string(target.names.size()) + ")");
  for (size_t i = 0; i < items.size(); ++i) scope->set(target.names[i], items[i]);
}

void Interpreter::exec_set(const Stmt& s, const ScopePtr& scope, std::string& out) {
  if (s.kind == StmtKind::Set) {
    assign(s.target, eval(*s.expr, scope), scope);
    return;
  }
  std::string captured;
  exec_body(s.body, std::make_shared<Scope>(scope), captured);
  assign(s.target, apply_filters(s.filters, Value(std::move(captured)), scope), scope);
}

Value Interpreter::apply_filters(const std::vector<ast::ExprPtr>& filters, Value value, const ScopePtr& scope) {
  for (const auto& f : filters) {
    CallArgs args = eval_args(f->args, scope);
    value = call_filter(f->name, value, args);
  }
  return value;
}

// ---- for loops -------------------------------------------------------------------------------

// Jinja's `loop`: index, first, length, previtem, cycle(), changed() ...
class LoopObject : public Object, public std::enable_shared_from_this<LoopObject> {
 public:
  LoopObject(std::shared_ptr<const std::vector<Value>> items, int depth, const Stmt* loop, ScopePtr scope)
      : items_(std::move(items)), depth_(depth), loop_(loop), scope_(std::move(scope)) {}

  size_t index0 = 0;

  std::string type_name() const override { return "LoopContext"; }
  std::string repr() const override {
    return "<LoopContext " + std::to_string(index0 + 1) + "/" + std::to_string(items_->size()) + ">";
  }
  bool callable() const override { return loop_->recursive; }

  std::optional<Value> attribute(Interpreter&, const std::string& name) override {
    const int64_t n = static_cast<int64_t>(items_->size());
    const int64_t i = static_cast<int64_t>(index0);
    if (name == "index") return Value(i + 1);
    if (name == "index0") return Value(i);
    if (name == "revindex") return Value(n - i);
    if (name == "revindex0") return Value(n - i - 1);
    if (name == "first") return Value(i == 0);
    if (name == "last") return Value(i == n - 1);
    if (name == "length") return Value(n);
    if (name == "depth") return Value(static_cast<int64_t>(depth_ + 1));
    if (name == "depth0") return Value(static_cast<int64_t>(depth_));
    if (name == "previtem")
      return i > 0 ? (*items_)[index0 - 1] : Value::undefined("there is no previous item");
    if (name == "nextitem")
      return i + 1 < n ? (*items_)[index0 + 1] : Value::undefined("there is no next item");
    if (name == "cycle") {
      const size_t at = index0;
      return Value::function("cycle", [at](Interpreter&, CallArgs& args) -> Value {
        if (args.positional.empty()) throw Error("loop.cycle() needs at least one item to cycle through");
        return args.positional[at % args.positional.size()];
      });
    }
    if (name == "changed") {
      std::shared_ptr<LoopObject> self = shared_from_this();  // the function may outlive the loop
      return Value::function("changed", [self](Interpreter&, CallArgs& args) -> Value {
        Value now = Value::list(args.positional);
        if (self->has_last_changed_ && equals(self->last_changed_, now)) return Value(false);
        self->last_changed_ = now;
        self->has_last_changed_ = true;
        return Value(true);
      });
    }
    return std::nullopt;
  }

  // loop(children) in a `recursive` loop renders the loop body for them.
  Value call(Interpreter& interp, CallArgs& args) override {
    if (!loop_->recursive) return Object::call(interp, args);
    if (args.positional.size() != 1 || !args.keyword.empty())
      throw Error("loop() in a recursive loop takes exactly one argument (the items to loop over)");
    std::string out;
    interp.exec_for(*loop_, scope_, out, args.positional[0], depth_ + 1);
    return Value(std::move(out));
  }

  std::optional<std::vector<Value>> items() const override { return *items_; }

 private:
  std::shared_ptr<const std::vector<Value>> items_;
  int depth_;
  const Stmt* loop_;
  ScopePtr scope_;
  Value last_changed_;
  bool has_last_changed_ = false;
};

Interpreter::Flow Interpreter::exec_for(const Stmt& s, const ScopePtr& scope, std::string& out, const Value& iterable,
                                        int depth) {
  std::vector<Value> items = iterate(iterable);
  if (s.condition) {  // for x in xs if cond: the loop only sees the items that pass
    std::vector<Value> kept;
    for (Value& item : items) {
      count_iterations();
      auto probe = std::make_shared<Scope>(scope);
      assign(s.target, item, probe);
      if (truthy(eval(*s.condition, probe))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    exec_body(s.else_body, scope, out);
    return Flow::Normal;
  }
  auto shared_items = std::make_shared<const std::vector<Value>>(std::move(items));
  auto loop = std::make_shared<LoopObject>(shared_items, depth, &s, scope);
  const Value loop_value{std::shared_ptr<Object>(loop)};
  for (size_t i = 0; i < shared_items->size(); ++i) {
    count_iterations();
    loop->index0 = i;
    auto iteration = std::make_shared<Scope>(scope);
    iteration->set("loop", loop_value);
    assign(s.target, (*shared_items)[i], iteration);
    if (exec_body(s.body, iteration, out) == Flow::Break) break;
  }
  return Flow::Normal;
}

// ---- macros and call blocks ----------------------------------------------------------------

namespace {

bool references_name(const Expr& e, const std::string& name);

bool references_name(const ast::Body& body, const std::string& name) {
  for (const auto& s : body) {
    if (s->expr && references_name(*s->expr, name)) return true;
    if (s->condition && references_name(*s->condition, name)) return true;
    for (const auto& [c, b] : s->branches)
      if (references_name(*c, name) || references_name(b, name)) return true;
    if (references_name(s->body, name) || references_name(s->else_body, name)) return true;
    for (const auto& f : s->filters)
      if (references_name(*f, name)) return true;
    for (const auto& [t, v] : s->assignments)
      if (references_name(*v, name)) return true;
    for (const auto& p : s->params)
      if (p.default_value && references_name(*p.default_value, name)) return true;
  }
  return false;
}

bool references_name(const Expr& e, const std::string& name) {
  if (e.kind == ExprKind::Name && e.name == name) return true;
  for (const Expr* child : {e.a.get(), e.b.get(), e.c.get()})
    if (child && references_name(*child, name)) return true;
  for (const auto& item : e.items)
    if (item && references_name(*item, name)) return true;
  for (const auto& arg : e.args)
    if (arg.value && references_name(*arg.value, name)) return true;
  for (const auto& [op, right] : e.comparisons)
    if (references_name(*right, name)) return true;
  return false;
}

}  // namespace

struct MacroCall {
  std::string name;
  const std::vector<ast::Parameter>* params;
  const ast::Body* body;
  // Weak: the scope holds the macro, a strong reference would be a cycle
  // that keeps every render's variables alive.
  std::weak_ptr<Scope> defining_scope;
  bool uses_caller, uses_kwargs, uses_varargs;

  // Jinja's Macro.__call__: positional, then keywords by name, then
  // defaults; missing parameters are Undefined; extra arguments are errors
  // unless the body uses varargs / kwargs.
  Value invoke(Interpreter& interp, CallArgs& args) const {
    if (interp.macro_depth_ >= interp.limits_.max_recursion_depth)
      throw LimitError("macro '" + name + "' was called more than " +
                       std::to_string(interp.limits_.max_recursion_depth) +
                       " levels deep (jinja::RenderOptions::max_recursion_depth)");
    struct Depth {
      int& d;
      ~Depth() { --d; }
    } depth{++interp.macro_depth_};
    ScopePtr parent = defining_scope.lock();
    if (!parent) throw Error("macro '" + name + "' was called after the block that defined it ended");
    auto scope = std::make_shared<Scope>(std::move(parent));
    std::vector<std::pair<std::string, Value>> keywords = args.keyword;
    auto take_keyword = [&](const std::string& key) -> std::optional<Value> {
      for (auto it = keywords.begin(); it != keywords.end(); ++it) {
        if (it->first == key) {
          Value v = std::move(it->second);
          keywords.erase(it);
          return v;
        }
      }
      return std::nullopt;
    };
    for (size_t i = 0; i < params->size(); ++i) {
      const ast::Parameter& p = (*params)[i];
      std::optional<Value> v;
      if (i < args.positional.size()) {
        v = args.positional[i];
      } else {
        v = take_keyword(p.name);
      }
      if (!v) {
        v = p.default_value ? interp.eval(*p.default_value, scope)
                            : Value::undefined("parameter '" + p.name + "' was not provided");
      }
      scope->set(p.name, *v);
    }
    if (uses_caller) {
      std::optional<Value> caller = take_keyword("caller");
      scope->set("caller", caller ? *caller : Value::undefined("No caller defined"));
    }
    if (uses_kwargs) {
      Value kw = Value::dict();
      for (auto& [k, v] : keywords) kw.mutable_dict().set(Value(k), v);
      scope->set("kwargs", kw);
    } else if (!keywords.empty()) {
      if (keywords.front().first == "caller")
        throw Error("macro '" + name + "' was called from a {% call %} block but does not use caller()");
      throw Error("macro '" + name + "' takes no keyword argument '" + keywords.front().first + "'");
    }
    if (uses_varargs) {
      std::vector<Value> rest;
      for (size_t i = params->size(); i < args.positional.size(); ++i) rest.push_back(args.positional[i]);
      scope->set("varargs", Value::tuple(std::move(rest)));
    } else if (args.positional.size() > params->size()) {
      throw Error("macro '" + name + "' takes not more than " + std::to_string(params->size()) + " argument(s)");
    }
    std::string out;
    interp.exec_body(*body, scope, out);
    return Value(std::move(out));
  }
};

Value Interpreter::make_macro(const std::string& name, const std::vector<ast::Parameter>& params,
                              const ast::Body& body, const ScopePtr& scope) {
  auto call = std::make_shared<MacroCall>(MacroCall{name, &params, &body, scope, references_name(body, "caller"),
                                                    references_name(body, "kwargs"), references_name(body, "varargs")});
  Value macro = Value::function(name, [call](Interpreter& interp, CallArgs& args) { return call->invoke(interp, args); });
  macro.function_object()->is_macro = true;
  return macro;
}

void Interpreter::exec_call_block(const Stmt& s, const ScopePtr& scope, std::string& out) {
  const Expr& call = *s.expr;
  Value callee = eval(*call.a, scope);
  CallArgs args = eval_args(call.args, scope);
  args.keyword.emplace_back("caller", make_macro("caller", s.params, s.body, scope));
  append(out, to_str(this->call(callee, args)));
}

// ---- expressions ----------------------------------------------------------------------------

CallArgs Interpreter::eval_args(const std::vector<ast::Argument>& args, const ScopePtr& scope) {
  CallArgs out;
  for (const auto& a : args) {
    Value v = eval(*a.value, scope);
    if (a.star) {
      for (Value& item : iterate(v)) out.positional.push_back(std::move(item));
    } else if (a.star_star) {
      if (!v.is_dict()) throw Error("argument after ** must be a mapping, not " + type_name(v));
      for (const auto& [k, val] : v.dict_object().entries()) {
        if (!k.is_string()) throw Error("keywords must be strings");
        out.keyword.emplace_back(k.as_string(), val);
      }
    } else if (!a.keyword.empty()) {
      out.keyword.emplace_back(a.keyword, std::move(v));
    } else {
      out.positional.push_back(std::move(v));
    }
  }
  return out;
}

Value Interpreter::eval(const Expr& e, const ScopePtr& scope) {
  DepthGuard guard(eval_depth_);
  switch (e.kind) {
    case ExprKind::Literal: return e.value;
    case ExprKind::Name: {
      const Value* v = scope->find(e.name);
      return v ? *v : Value::undefined("'" + e.name + "' is undefined");
    }
    case ExprKind::List:
    case ExprKind::Tuple: {
      std::vector<Value> items;
      items.reserve(e.items.size());
      for (const auto& item : e.items) items.push_back(eval(*item, scope));
      return Value::list(std::move(items), e.kind == ExprKind::Tuple ? ListFlavor::Tuple : ListFlavor::List);
    }
    case ExprKind::Dict: {
      Value d = Value::dict();
      for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
        Value key = eval(*e.items[i], scope);
        if (key.is_list() && !key.is_tuple()) throw Error("unhashable type: 'list'");
        if (key.is_dict()) throw Error("unhashable type: 'dict'");
        d.mutable_dict().set(std::move(key), eval(*e.items[i + 1], scope));
      }
      return d;
    }
    case ExprKind::GetAttr: return getattr(eval(*e.a, scope), e.name);
    case ExprKind::GetItem: return getitem(eval(*e.a, scope), eval(*e.b, scope));
    case ExprKind::Slice: return eval_slice(e, scope);
    case ExprKind::Call: return eval_call(e, scope);
    case ExprKind::Filter: {
      const Value input = eval(*e.a, scope);
      CallArgs args = eval_args(e.args, scope);
      return call_filter(e.name, input, args);
    }
    case ExprKind::Test: {
      const Value input = eval(*e.a, scope);
      CallArgs args = eval_args(e.args, scope);
      const bool result = call_test(e.name, input, args);
      return Value(e.negated ? !result : result);
    }
    case ExprKind::Unary:
      if (e.name == "not") return Value(!truthy(eval(*e.a, scope)));
      return unary(e.name, eval(*e.a, scope));
    case ExprKind::Binary: {
      if (e.name == "and") {
        Value left = eval(*e.a, scope);
        return truthy(left) ? eval(*e.b, scope) : left;
      }
      if (e.name == "or") {
        Value left = eval(*e.a, scope);
        return truthy(left) ? left : eval(*e.b, scope);
      }
      const Value left = eval(*e.a, scope);
      const Value right = eval(*e.b, scope);
      return binary(e.name, left, right);
    }
    case ExprKind::Compare: return eval_compare(e, scope);
    case ExprKind::Conditional:
      if (truthy(eval(*e.b, scope))) return eval(*e.a, scope);
      if (e.c) return eval(*e.c, scope);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.where.line) +
                              " evaluated to false and no else section was defined.");
  }
  return Value();
}

Value Interpreter::eval_call(const Expr& e, const ScopePtr& scope) {
  const Value callee = eval(*e.a, scope);
  CallArgs args = eval_args(e.args, scope);
  current_line_ = e.where.line;
  return call(callee, args);
}

Value Interpreter::call(const Value& callee, CallArgs& args) {
  switch (callee.kind()) {
    case Kind::Function: return callee.function_object()->call(*this, args);
    case Kind::Undefined: fail_undefined(callee);
    case Kind::Object:
      if (callee.object().callable()) return callee.object().call(*this, args);
      break;
    default: break;
  }
  throw Error("'" + type_name(callee) + "' object is not callable");
}

Value Interpreter::call_filter(const std::string& name, const Value& input, CallArgs& args) {
  FilterFunction f = find_filter(name);
  if (!f) throw Error("no filter named '" + name + "'");
  return f(*this, input, args);
}

bool Interpreter::call_test(const std::string& name, const Value& value, CallArgs& args) {
  TestFunction t = find_test(name);
  if (!t) throw Error("no test named '" + name + "'");
  return t(*this, value, args);
}

Value Interpreter::eval_compare(const Expr& e, const ScopePtr& scope) {
  Value left = eval(*e.a, scope);
  for (const auto& [op, right_expr] : e.comparisons) {
    Value right = eval(*right_expr, scope);
    bool ok;
    if (op == "==") {
      ok = equals(left, right);
    } else if (op == "!=") {
      ok = !equals(left, right);
    } else if (op == "in" || op == "notin") {
      ok = contains(right, left) == (op == "in");
    } else {
      if (left.is_undefined()) fail_undefined(left);
      if (right.is_undefined()) fail_undefined(right);
      if (op == "<") ok = less(left, right, "<");
      else if (op == ">") ok = less(right, left, ">");
      else if (op == "<=") ok = less(left, right, "<=") || equals(left, right);
      else ok = less(right, left, ">=") || equals(left, right);
    }
    if (!ok) return Value(false);
    left = std::move(right);
  }
  return Value(true);
}

namespace {

std::optional<int64_t> slice_bound(const Value& v, bool& invalid) {
  if (v.is_none() || v.is_undefined()) return std::nullopt;  // Jinja passes missing parts as None
  if (v.is_int() || v.is_bool()) return v.int_value();
  invalid = true;
  return std::nullopt;
}

std::string slice_repr(const std::optional<int64_t>& a, const std::optional<int64_t>& b, int64_t step, bool has_step) {
  auto s = [](const std::optional<int64_t>& x) { return x ? std::to_string(*x) : std::string("None"); };
  return "slice(" + s(a) + ", " + s(b) + ", " + (has_step ? std::to_string(step) : "None") + ")";
}

}  // namespace

Value Interpreter::eval_slice(const Expr& e, const ScopePtr& scope) {
  const Value object = eval(*e.a, scope);
  bool invalid = false;
  const std::optional<int64_t> start = e.b ? slice_bound(eval(*e.b, scope), invalid) : std::nullopt;
  const std::optional<int64_t> stop = e.c ? slice_bound(eval(*e.c, scope), invalid) : std::nullopt;
  std::optional<int64_t> step_value = e.items.empty() ? std::nullopt : slice_bound(eval(*e.items[0], scope), invalid);
  const int64_t step = step_value.value_or(1);
  if (object.is_undefined()) fail_undefined(object);
  auto not_sliceable = [&]() {
    return Value::undefined(object_type_repr(object) + " has no element " + slice_repr(start, stop, step, step_value.has_value()));
  };
  if (invalid) return not_sliceable();
  if (step == 0 && (object.is_string() || object.is_list())) throw Error("slice step cannot be zero");
  if (object.is_string()) return string_like(object, pystr::slice(object.as_string(), start, stop, step));
  if (!object.is_list()) return not_sliceable();
  const std::vector<Value>& items = object.items();
  const int64_t n = static_cast<int64_t>(items.size());
  int64_t b, en;
  if (step > 0) {
    b = start.value_or(0);
    en = stop.value_or(n);
    if (b < 0) b = std::max<int64_t>(0, b + n);
    if (en < 0) en = std::max<int64_t>(0, en + n);
    b = std::min(b, n);
    en = std::min(en, n);
  } else {
    b = start.value_or(n - 1);
    en = stop.value_or(-n - 1);
    if (b < 0) b += n;
    if (en < 0) en += n;
    b = std::clamp<int64_t>(b, -1, n - 1);
    en = std::clamp<int64_t>(en, -1, n - 1);
  }
  std::vector<Value> out;
  if (step > 0) {
    for (int64_t i = b; i < en; i += step) out.push_back(items[static_cast<size_t>(i)]);
  } else {
    for (int64_t i = b; i > en; i += step) out.push_back(items[static_cast<size_t>(i)]);
  }
  count_iterations(static_cast<int64_t>(out.size()) / 64);
  const ListFlavor flavor = object.list_object().flavor == ListFlavor::Tuple ? ListFlavor::Tuple : ListFlavor::List;
  return Value::list(std::move(out), flavor);
}

// ---- attribute and item lookup (the sandbox's getattr / getitem) -----------------------------

Value Interpreter::getattr(const Value& object, const std::string& name) {
  switch (object.kind()) {
    case Kind::Undefined: fail_undefined(object);
    case Kind::Dict: {
      if (auto method = find_method(object, name)) return *method;
      if (const Value* v = object.dict_object().find(name)) return *v;
      break;
    }
    case Kind::Namespace:
      if (const Value* v = object.namespace_object().attributes.find(name)) return *v;
      break;
    case Kind::Object:
      if (auto v = object.object().attribute(*this, name)) return *v;
      break;
    case Kind::List:
      if (object.list_object().group && (name == "grouper" || name == "list")) return object.items()[name == "list"];
      if (auto method = find_method(object, name)) return *method;
      break;
    default:
      if (auto method = find_method(object, name)) return *method;
      break;
  }
  return Value::undefined("'" + object_type_repr(object) + "' has no attribute '" + name + "'");
}

Value Interpreter::getitem(const Value& object, const Value& key) {
  switch (object.kind()) {
    case Kind::Undefined: fail_undefined(object);
    case Kind::Dict:
      if (key.is_list() && !key.is_tuple()) throw Error("unhashable type: 'list'");
      if (const Value* v = object.dict_object().find(key)) return *v;
      break;
    case Kind::List:
      if (key.is_int() || key.is_bool()) {
        const auto& items = object.items();
        int64_t i = key.int_value();
        if (i < 0) i += static_cast<int64_t>(items.size());
        if (i >= 0 && i < static_cast<int64_t>(items.size())) return items[static_cast<size_t>(i)];
      }
      break;
    case Kind::String:
      if (key.is_int() || key.is_bool()) {
        if (auto c = pystr::item(object.as_string(), key.int_value())) return string_like(object, std::move(*c));
      }
      break;
    default: break;
  }
  // Not an item: Jinja tries the attribute of that name next.
  if (key.is_string()) {
    if (object.is_namespace() || object.is_object()) {
      Value v = getattr(object, key.as_string());
      if (!v.is_undefined()) return v;
    } else if (auto method = find_method(object, key.as_string())) {
      return *method;
    }
    return Value::undefined("'" + object_type_repr(object) + "' has no attribute '" + key.as_string() + "'");
  }
  return Value::undefined(object_type_repr(object) + " has no element " + repr(key));
}

// ---- iteration and length ------------------------------------------------------------------

std::vector<Value> Interpreter::iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return {};
    case Kind::String: {
      std::vector<Value> out;
      const std::string& s = v.as_string();
      if (pystr::is_ascii(s)) {
        for (char c : s) out.emplace_back(std::string(1, c));
      } else {
        for (char32_t c : pystr::decode(s)) {
          std::string one;
          pystr::append_code_point(one, c);
          out.emplace_back(std::move(one));
        }
      }
      return out;
    }
    case Kind::List: return v.items();
    case Kind::Dict: {
      std::vector<Value> keys;
      for (const auto& [k, val] : v.dict_object().entries()) keys.push_back(k);
      return keys;
    }
    case Kind::Iterator: {
      IteratorObject& it = v.iterator_object();
      std::vector<Value> rest(it.items.begin() + static_cast<std::ptrdiff_t>(it.position), it.items.end());
      it.position = it.items.size();
      return rest;
    }
    case Kind::Object:
      if (auto items = v.object().items()) return *items;
      break;
    default: break;
  }
  throw Error("'" + type_name(v) + "' object is not iterable");
}

int64_t Interpreter::length(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return 0;
    case Kind::String: return static_cast<int64_t>(pystr::length(v.as_string()));
    case Kind::List: return static_cast<int64_t>(v.items().size());
    case Kind::Dict: return static_cast<int64_t>(v.dict_object().size());
    case Kind::Object:
      if (auto items = v.object().items()) return static_cast<int64_t>(items->size());
      break;
    default: break;
  }
  throw Error("object of type '" + type_name(v) + "' has no len()");
}

bool Interpreter::contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::Undefined: return false;
    case Kind::String:
      if (!item.is_string())
        throw Error("'in <string>' requires string as left operand, not " + type_name(item));
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Kind::List:
      for (const Value& x : container.items())
        if (equals(x, item)) return true;
      return false;
    case Kind::Dict:
      if (item.is_list() && !item.is_tuple()) throw Error("unhashable type: 'list'");
      if (item.is_dict()) throw Error("unhashable type: 'dict'");
      return container.dict_object().find(item) != nullptr;
    case Kind::Iterator: {
      IteratorObject& it = container.iterator_object();
      while (it.position < it.items.size()) {
        if (equals(it.items[it.position++], item)) return true;
      }
      return false;
    }
    case Kind::Object:
      if (auto items = container.object().items()) {
        for (const Value& x : *items)
          if (equals(x, item)) return true;
        return false;
      }
      break;
    default: break;
  }
  throw Error("argument of type '" + type_name(container) + "' is not iterable");
}

// ---- operators ---------------------------------------------------------------------------------

namespace {

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  throw Error("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
}

int64_t checked(bool overflow, int64_t value, const std::string& op) {
  if (overflow)
    throw Error("integer overflow in '" + op + "' (flatline's Jinja uses 64-bit integers; Python's are unbounded)");
  return value;
}

double float_floor_div(double a, double b) {
  if (b == 0) throw Error("float floor division by zero");
  double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1.0;
  double floordiv;
  if (div != 0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, a / b);
  }
  return floordiv;
}

double float_mod(double a, double b) {
  if (b == 0) throw Error("float modulo");
  double mod = std::fmod(a, b);
  if (mod != 0) {
    if ((b < 0) != (mod < 0)) mod += b;
  } else {
    mod = std::copysign(0.0, b);
  }
  return mod;
}

}  // namespace

Value Interpreter::binary(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string out = to_str(a);
    out += to_str(b);
    charge_text(out.size());
    return Value(std::move(out));
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  const bool numbers = a.is_number() && b.is_number();
  const bool ints = numbers && !a.is_float() && !b.is_float();
  if (op == "+") {
    if (ints) {
      int64_t r;
      const bool overflow = __builtin_add_overflow(a.int_value(), b.int_value(), &r);
      return Value(checked(overflow, r, op));
    }
    if (numbers) return Value(a.float_value() + b.float_value());
    if (a.is_string() && b.is_string()) {
      charge_text(a.as_string().size() + b.as_string().size());
      if (a.is_markup() || b.is_markup()) return Value::markup(escape_unless_markup(a) + escape_unless_markup(b));
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple() && a.list_object().flavor <= ListFlavor::Tuple &&
        b.list_object().flavor <= ListFlavor::Tuple) {
      std::vector<Value> items = a.items();
      items.insert(items.end(), b.items().begin(), b.items().end());
      count_iterations(static_cast<int64_t>(items.size()) / 64);
      return Value::list(std::move(items), a.list_object().flavor);
    }
    if (a.is_string()) throw Error("can only concatenate str (not \"" + type_name(b) + "\") to str");
    if (a.is_list() && a.list_object().flavor <= ListFlavor::Tuple)
      throw Error("can only concatenate " + type_name(a) + " (not \"" + type_name(b) + "\") to " + type_name(a));
    unsupported(op, a, b);
  }
  if (op == "-") {
    if (ints) {
      int64_t r;
      const bool overflow = __builtin_sub_overflow(a.int_value(), b.int_value(), &r);
      return Value(checked(overflow, r, op));
    }
    if (numbers) return Value(a.float_value() - b.float_value());
    unsupported(op, a, b);
  }
  if (op == "*") {
    if (ints) {
      int64_t r;
      const bool overflow = __builtin_mul_overflow(a.int_value(), b.int_value(), &r);
      return Value(checked(overflow, r, op));
    }
    if (numbers) return Value(a.float_value() * b.float_value());
    const Value* seq = (a.is_string() || a.is_list()) ? &a : (b.is_string() || b.is_list()) ? &b : nullptr;
    const Value* count = seq == &a ? &b : &a;
    if (seq && (count->is_int() || count->is_bool()) && (!seq->is_list() || seq->list_object().flavor <= ListFlavor::Tuple)) {
      const int64_t n = std::max<int64_t>(0, count->int_value());
      if (seq->is_string()) {
        const size_t unit = seq->as_string().size();
        if (unit && static_cast<uint64_t>(n) > limits_.max_output_bytes / unit + 1) charge_text(limits_.max_output_bytes + 1);
        charge_text(unit * static_cast<size_t>(n));
        const size_t total = unit * static_cast<size_t>(n);
        std::string out;
        out.reserve(total);
        if (n > 0) out = seq->as_string();
        while (out.size() < total) out.append(out, 0, std::min(out.size(), total - out.size()));  // doubling
        return string_like(*seq, std::move(out));
      }
      const size_t unit = seq->items().size();
      if (unit) count_iterations(n > limits_.max_loop_iterations ? limits_.max_loop_iterations + 1 : n * static_cast<int64_t>(std::min<size_t>(unit, 1u << 20)) );
      std::vector<Value> items;
      for (int64_t i = 0; i < n; ++i) items.insert(items.end(), seq->items().begin(), seq->items().end());
      return Value::list(std::move(items), seq->list_object().flavor);
    }
    if (seq) throw Error("can't multiply sequence by non-int of type '" + type_name(*count) + "'");
    unsupported(op, a, b);
  }
  if (op == "/") {
    if (!numbers) unsupported(op, a, b);
    if (b.float_value() == 0) throw Error("division by zero");
    return Value(a.float_value() / b.float_value());
  }
  if (op == "//") {
    if (!numbers) unsupported(op, a, b);
    if (ints) {
      const int64_t x = a.int_value(), y = b.int_value();
      if (y == 0) throw Error("integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) checked(true, 0, op);
      int64_t q = x / y;
      if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
      return Value(q);
    }
    return Value(float_floor_div(a.float_value(), b.float_value()));
  }
  if (op == "%") {
    if (a.is_string()) return string_like(a, percent_format(*this, a, b));
    if (!numbers) unsupported(op, a, b);
    if (ints) {
      const int64_t x = a.int_value(), y = b.int_value();
      if (y == 0) throw Error("integer division or modulo by zero");
      if (y == -1) return Value(int64_t{0});
      int64_t m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      return Value(m);
    }
    return Value(float_mod(a.float_value(), b.float_value()));
  }
  if (op == "**") {
    if (!numbers) unsupported(op, a, b);
    if (ints && b.int_value() >= 0) {
      int64_t base = a.int_value(), e = b.int_value(), r = 1;
      while (e > 0) {
        if (e & 1) checked(__builtin_mul_overflow(r, base, &r), 0, op);
        e >>= 1;
        if (e) checked(__builtin_mul_overflow(base, base, &base), 0, op);
      }
      return Value(r);
    }
    if (a.float_value() == 0 && b.float_value() < 0) throw Error("0.0 cannot be raised to a negative power");
    return Value(std::pow(a.float_value(), b.float_value()));
  }
  throw Error("unknown operator '" + op + "'");
}

Value Interpreter::unary(const std::string& op, const Value& v) {
  if (v.is_undefined()) fail_undefined(v);
  if (!v.is_number()) throw Error("bad operand type for unary " + op + ": '" + type_name(v) + "'");
  if (op == "+") return v.is_float() ? v : Value(v.int_value());
  if (v.is_float()) return Value(-v.as_float());
  if (v.int_value() == INT64_MIN) checked(true, 0, "-");
  return Value(-v.int_value());
}

}  // namespace flatline::jinja
