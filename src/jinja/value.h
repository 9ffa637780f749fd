// The values a template computes with, modelled on the Python objects
// Jinja2 sees when Hugging Face renders a chat template: None, bool, int,
// float, str, list, tuple, dict (insertion ordered), functions / macros,
// namespace(), generators (what map / select / items return: single pass,
// always true, no length), and Jinja's Undefined.
//
// Containers are shared (like Python references); the sandbox HF uses is
// immutable, so nothing but namespace() attributes is ever modified.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace flatline::jinja {

class Value;
class Interpreter;

enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Function, Namespace, Iterator, Object };

// How a list prints and compares: Python has several list-like types.
enum class ListFlavor : uint8_t { List, Tuple, DictKeys, DictValues, DictItems, Range };

struct ListObject {
  std::vector<Value> items;
  ListFlavor flavor = ListFlavor::List;
  int64_t range_start = 0, range_stop = 0, range_step = 1;  // for printing range(a, b[, c])
  bool group = false;  // a groupby() result: a tuple with .grouper and .list
};

class DictObject {
 public:
  // nullptr if absent. Keys compare as Python does (1 == 1.0 == True).
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  const Value* find(const std::string& key) const { return find(std::string_view(key)); }
  const Value* find(const char* key) const { return find(std::string_view(key)); }
  void set(Value key, Value value);
  // For keys known to be new (building from JSON): no duplicate check.
  void append(Value key, Value value);
  const std::vector<std::pair<Value, Value>>& entries() const { return entries_; }
  size_t size() const;  // defined after Value (clang needs it complete)

 private:
  std::vector<std::pair<Value, Value>> entries_;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

struct FunctionObject {
  std::string name;
  std::function<Value(Interpreter&, CallArgs&)> call;
  bool is_macro = false;
};

struct NamespaceObject {
  DictObject attributes;
};

// A generator / iterator: iterating consumes it, as in Python.
struct IteratorObject {
  std::vector<Value> items;
  size_t position = 0;
  std::string type_name = "generator";  // for printing and error messages
};

// Host objects with attributes computed on access (loop, cycler, joiner...).
class Object {
 public:
  virtual ~Object() = default;
  virtual std::string type_name() const = 0;
  virtual std::optional<Value> attribute(Interpreter& interp, const std::string& name) = 0;
  virtual std::string repr() const;
  virtual bool callable() const { return false; }
  virtual Value call(Interpreter& interp, CallArgs& args);
  // Items when iterated; nullopt if not iterable.
  virtual std::optional<std::vector<Value>> items() const;  // default nullopt (defined after Value)
};

struct UndefinedState {
  std::string message;   // what the error says when the value is used
  bool unsafe = false;   // a sandbox-blocked attribute: using it is a security error
};

class Value {
 public:
  Value() : data_(UndefinedState{}) {}
  static Value undefined(std::string message, bool unsafe = false) {
    Value v;
    v.data_ = UndefinedState{std::move(message), unsafe};
    return v;
  }
  static Value none() { Value v; v.data_ = std::monostate{}; return v; }
  Value(bool b) : data_(b) {}
  Value(int64_t i) : data_(i) {}
  Value(int i) : data_(static_cast<int64_t>(i)) {}
  Value(double d) : data_(d) {}
  Value(std::string s) : data_(std::move(s)) {}
  Value(const char* s) : data_(std::string(s)) {}
  Value(std::shared_ptr<ListObject> l) : data_(std::move(l)) {}
  Value(std::shared_ptr<DictObject> d) : data_(std::move(d)) {}
  Value(std::shared_ptr<FunctionObject> f) : data_(std::move(f)) {}
  Value(std::shared_ptr<NamespaceObject> n) : data_(std::move(n)) {}
  Value(std::shared_ptr<IteratorObject> it) : data_(std::move(it)) {}
  Value(std::shared_ptr<Object> o) : data_(std::move(o)) {}

  // A markupsafe.Markup string (what |safe and |escape return): adding a
  // plain string to it HTML-escapes that string.
  static Value markup(std::string s) {
    Value v(std::move(s));
    v.markup_ = true;
    return v;
  }
  static Value list(std::vector<Value> items, ListFlavor flavor = ListFlavor::List);
  static Value tuple(std::vector<Value> items) { return list(std::move(items), ListFlavor::Tuple); }
  static Value dict();
  static Value function(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn);
  static Value iterator(std::vector<Value> items, std::string type_name = "generator");

  Kind kind() const { return static_cast<Kind>(data_.index()); }
  bool is_undefined() const { return kind() == Kind::Undefined; }
  bool is_none() const { return kind() == Kind::None; }
  bool is_bool() const { return kind() == Kind::Bool; }
  bool is_int() const { return kind() == Kind::Int; }
  bool is_float() const { return kind() == Kind::Float; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }  // Python's numbers.Number
  bool is_string() const { return kind() == Kind::String; }
  bool is_list() const { return kind() == Kind::List; }
  bool is_dict() const { return kind() == Kind::Dict; }
  bool is_function() const { return kind() == Kind::Function; }
  bool is_namespace() const { return kind() == Kind::Namespace; }
  bool is_iterator() const { return kind() == Kind::Iterator; }
  bool is_object() const { return kind() == Kind::Object; }
  bool is_tuple() const { return is_list() && list_object().flavor == ListFlavor::Tuple; }
  bool is_markup() const { return markup_ && is_string(); }

  bool as_bool() const { return std::get<bool>(data_); }
  int64_t as_int() const { return std::get<int64_t>(data_); }
  double as_float() const { return std::get<double>(data_); }
  // Numbers as Python converts them in arithmetic (bool is an int).
  int64_t int_value() const { return is_bool() ? (as_bool() ? 1 : 0) : as_int(); }
  double float_value() const { return is_float() ? as_float() : static_cast<double>(int_value()); }
  const std::string& as_string() const { return std::get<std::string>(data_); }
  const UndefinedState& undefined_state() const { return std::get<UndefinedState>(data_); }
  const ListObject& list_object() const { return *std::get<std::shared_ptr<ListObject>>(data_); }
  const std::vector<Value>& items() const { return list_object().items; }
  // list.pop() / list.clear(): the only mutations the immutable sandbox allows.
  std::vector<Value>& mutable_items() const { return std::get<std::shared_ptr<ListObject>>(data_)->items; }
  const DictObject& dict_object() const { return *std::get<std::shared_ptr<DictObject>>(data_); }
  DictObject& mutable_dict() const { return *std::get<std::shared_ptr<DictObject>>(data_); }
  const std::shared_ptr<FunctionObject>& function_object() const { return std::get<std::shared_ptr<FunctionObject>>(data_); }
  NamespaceObject& namespace_object() const { return *std::get<std::shared_ptr<NamespaceObject>>(data_); }
  IteratorObject& iterator_object() const { return *std::get<std::shared_ptr<IteratorObject>>(data_); }
  Object& object() const { return *std::get<std::shared_ptr<Object>>(data_); }
  const void* identity() const;  // address of a shared container (for `is sameas`)

 private:
  std::variant<UndefinedState, std::monostate, bool, int64_t, double, std::string, std::shared_ptr<ListObject>,
               std::shared_ptr<DictObject>, std::shared_ptr<FunctionObject>, std::shared_ptr<NamespaceObject>,
               std::shared_ptr<IteratorObject>, std::shared_ptr<Object>>
      data_;
  bool markup_ = false;
};

inline size_t DictObject::size() const { return entries_.size(); }
inline std::optional<std::vector<Value>> Object::items() const { return std::nullopt; }

// ---- Python semantics ------------------------------------------------------------

std::string type_name(const Value& v);          // Python's type(v).__name__
std::string object_type_repr(const Value& v);   // "dict object", "None" (Jinja's undefined messages)
bool truthy(const Value& v);
bool equals(const Value& a, const Value& b);    // ==
// <, <=, >, >= ; throws Error("'<' not supported between instances of ...").
bool less(const Value& a, const Value& b, const char* op = "<");
std::string to_str(const Value& v);             // str(v): what {{ v }} prints
std::string repr(const Value& v);               // repr(v): how v prints inside a list
std::string html_escape(const std::string& s);  // markupsafe.escape
// markupsafe's rule for Markup operations: plain strings are escaped.
std::string escape_unless_markup(const Value& v);
// A string result that is Markup when `like` is (Markup.upper() etc.).
Value string_like(const Value& like, std::string s);
// Throws (UndefinedError) if v is an Undefined that must not be used.
[[noreturn]] void fail_undefined(const Value& v);

// Conversions from / to JSON. Objects keep their key order (ordered_json).
Value from_json(const nlohmann::ordered_json& j);
Value from_json(const nlohmann::json& j);

}  // namespace flatline::jinja
