#include "jinja/value.h"

#include <cmath>

#include "jinja/error.h"
#include "jinja/pystr.h"

namespace flatline::jinja {

// ---- containers --------------------------------------------------------------------

const Value* DictObject::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.as_string()));
  for (const auto& [k, v] : entries_)
    if (equals(k, key)) return &v;
  return nullptr;
}

const Value* DictObject::find(std::string_view key) const {
  for (const auto& [k, v] : entries_)
    if (k.is_string() && k.as_string() == key) return &v;
  return nullptr;
}

void DictObject::set(Value key, Value value) {
  for (auto& [k, v] : entries_) {
    if (equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  entries_.emplace_back(std::move(key), std::move(value));
}

void DictObject::append(Value key, Value value) { entries_.emplace_back(std::move(key), std::move(value)); }

std::string Object::repr() const { return "<" + type_name() + " object>"; }

Value Object::call(Interpreter&, CallArgs&) { throw Error("'" + type_name() + "' object is not callable"); }

Value Value::list(std::vector<Value> items, ListFlavor flavor) {
  auto l = std::make_shared<ListObject>();
  l->items = std::move(items);
  l->flavor = flavor;
  return Value(std::move(l));
}

Value Value::dict() { return Value(std::make_shared<DictObject>()); }

Value Value::function(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn) {
  auto f = std::make_shared<FunctionObject>();
  f->name = std::move(name);
  f->call = std::move(fn);
  return Value(std::move(f));
}

Value Value::iterator(std::vector<Value> items, std::string type_name) {
  auto it = std::make_shared<IteratorObject>();
  it->items = std::move(items);
  it->type_name = std::move(type_name);
  return Value(std::move(it));
}

const void* Value::identity() const {
  switch (kind()) {
    case Kind::List: return std::get<std::shared_ptr<ListObject>>(data_).get();
    case Kind::Dict: return std::get<std::shared_ptr<DictObject>>(data_).get();
    case Kind::Function: return std::get<std::shared_ptr<FunctionObject>>(data_).get();
    case Kind::Namespace: return std::get<std::shared_ptr<NamespaceObject>>(data_).get();
    case Kind::Iterator: return std::get<std::shared_ptr<IteratorObject>>(data_).get();
    case Kind::Object: return std::get<std::shared_ptr<Object>>(data_).get();
    default: return nullptr;
  }
}

// ---- names -----------------------------------------------------------------------------

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::List:
      switch (v.list_object().flavor) {
        case ListFlavor::List: return "list";
        case ListFlavor::Tuple: return "tuple";
        case ListFlavor::DictKeys: return "dict_keys";
        case ListFlavor::DictValues: return "dict_values";
        case ListFlavor::DictItems: return "dict_items";
        case ListFlavor::Range: return "range";
      }
      return "list";
    case Kind::Dict: return "dict";
    case Kind::Function: return v.function_object()->is_macro ? "Macro" : "function";
    case Kind::Namespace: return "Namespace";
    case Kind::Iterator: return v.iterator_object().type_name;
    case Kind::Object: return v.object().type_name();
  }
  return "object";
}

std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  if (v.is_namespace()) return "jinja2.utils.Namespace object";
  if (v.is_function() && v.function_object()->is_macro) return "jinja2.runtime.Macro object";
  if (v.is_object()) return "jinja2.runtime." + v.object().type_name() + " object";
  return type_name(v) + " object";
}

// ---- truth and comparison ----------------------------------------------------------

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return false;
    case Kind::None: return false;
    case Kind::Bool: return v.as_bool();
    case Kind::Int: return v.as_int() != 0;
    case Kind::Float: return v.as_float() != 0.0;
    case Kind::String: return !v.as_string().empty();
    case Kind::List: return !v.items().empty();
    case Kind::Dict: return v.dict_object().size() != 0;
    case Kind::Object: {
      auto items = v.object().items();
      return !items || !items->empty();
    }
    default: return true;
  }
}

namespace {

bool same_list_family(ListFlavor a, ListFlavor b) {
  auto family = [](ListFlavor f) { return f == ListFlavor::List ? 0 : f == ListFlavor::Tuple ? 1 : f == ListFlavor::Range ? 2 : 3 + static_cast<int>(f); };
  return family(a) == family(b);
}

}  // namespace

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.float_value() == b.float_value();
    return a.int_value() == b.int_value();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::Undefined:
    case Kind::None: return true;
    case Kind::String: return a.as_string() == b.as_string();
    case Kind::List: {
      if (!same_list_family(a.list_object().flavor, b.list_object().flavor)) return false;
      const auto& x = a.items();
      const auto& y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!equals(x[i], y[i])) return false;
      return true;
    }
    case Kind::Dict: {
      const DictObject& x = a.dict_object();
      const DictObject& y = b.dict_object();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.entries()) {
        const Value* other = y.find(k);
        if (!other || !equals(v, *other)) return false;
      }
      return true;
    }
    default: return a.identity() == b.identity();
  }
}

bool less(const Value& a, const Value& b, const char* op) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.float_value() < b.float_value();
    return a.int_value() < b.int_value();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();  // UTF-8 order = code point order
  if (a.is_list() && b.is_list() && same_list_family(a.list_object().flavor, b.list_object().flavor)) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equals(x[i], y[i])) return less(x[i], y[i], op);
    }
    return x.size() < y.size();
  }
  throw Error(std::string("'") + op + "' not supported between instances of '" + type_name(a) + "' and '" +
              type_name(b) + "'");
}

// ---- printing ----------------------------------------------------------------------------

namespace {

std::string join_repr(const std::vector<Value>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    out += repr(items[i]);
  }
  return out;
}

std::string dict_repr(const DictObject& d) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : d.entries()) {
    if (!first) out += ", ";
    first = false;
    out += repr(k) + ": " + repr(v);
  }
  return out + "}";
}

std::string list_repr(const ListObject& l) {
  switch (l.flavor) {
    case ListFlavor::List: return "[" + join_repr(l.items) + "]";
    case ListFlavor::Tuple:
      if (l.items.size() == 1) return "(" + repr(l.items[0]) + ",)";
      return "(" + join_repr(l.items) + ")";
    case ListFlavor::DictKeys: return "dict_keys([" + join_repr(l.items) + "])";
    case ListFlavor::DictValues: return "dict_values([" + join_repr(l.items) + "])";
    case ListFlavor::DictItems: return "dict_items([" + join_repr(l.items) + "])";
    case ListFlavor::Range: {
      std::string out = "range(" + std::to_string(l.range_start) + ", " + std::to_string(l.range_stop);
      if (l.range_step != 1) out += ", " + std::to_string(l.range_step);
      return out + ")";
    }
  }
  return "[]";
}

}  // namespace

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return "";
    case Kind::String: return v.as_string();
    default: return repr(v);
  }
}

std::string repr(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "None";
    case Kind::Bool: return v.as_bool() ? "True" : "False";
    case Kind::Int: return std::to_string(v.as_int());
    case Kind::Float: return pystr::float_repr(v.as_float());
    case Kind::String:
      if (v.is_markup()) return "Markup(" + pystr::repr(v.as_string()) + ")";
      return pystr::repr(v.as_string());
    case Kind::List: return list_repr(v.list_object());
    case Kind::Dict: return dict_repr(v.dict_object());
    case Kind::Function:
      if (v.function_object()->is_macro) return "<Macro '" + v.function_object()->name + "'>";
      return "<function " + v.function_object()->name + ">";
    case Kind::Namespace: return "<Namespace " + dict_repr(v.namespace_object().attributes) + ">";
    case Kind::Iterator: return "<" + v.iterator_object().type_name + " object>";
    case Kind::Object: return v.object().repr();
  }
  return "";
}

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string escape_unless_markup(const Value& v) { return v.is_markup() ? v.as_string() : html_escape(to_str(v)); }

Value string_like(const Value& like, std::string s) {
  return like.is_markup() ? Value::markup(std::move(s)) : Value(std::move(s));
}

void fail_undefined(const Value& v) {
  const UndefinedState& u = v.undefined_state();
  throw Error(u.message.empty() ? "value is undefined" : u.message);
}

// ---- JSON ---------------------------------------------------------------------------------

namespace {

template <class Json>
Value json_to_value(const Json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value::none();
    case nlohmann::json::value_t::boolean: return Value(j.template get<bool>());
    case nlohmann::json::value_t::number_integer: return Value(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const uint64_t u = j.template get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
      return Value(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float: return Value(j.template get<double>());
    case nlohmann::json::value_t::string: return Value(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(json_to_value(e));
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Value d = Value::dict();
      for (auto it = j.begin(); it != j.end(); ++it) d.mutable_dict().append(Value(it.key()), json_to_value(it.value()));
      return d;
    }
    case nlohmann::json::value_t::binary: throw Error("binary JSON values cannot be passed to a template");
    case nlohmann::json::value_t::discarded: return Value();
  }
  return Value();
}

}  // namespace

Value from_json(const nlohmann::ordered_json& j) { return json_to_value(j); }
Value from_json(const nlohmann::json& j) { return json_to_value(j); }

}  // namespace flatline::jinja
