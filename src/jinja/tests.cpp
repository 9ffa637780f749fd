// Jinja2's builtin tests (jinja2/tests.py, 3.1): `x is defined`, `x is string`, ...
#include <cmath>
#include <map>
#include <string>

#include "jinja/error.h"
#include "jinja/interpreter.h"
#include "jinja/pystr.h"

namespace flatline::jinja {

namespace {

Value other(const char* name, CallArgs& a) {
  ArgReader r(name, a, {"other"});
  if (!r.has(0)) throw Error(std::string(name) + "() needs a value to compare with");
  return r.get(0);
}

bool t_defined(Interpreter&, const Value& v, CallArgs&) { return !v.is_undefined(); }
bool t_undefined(Interpreter&, const Value& v, CallArgs&) { return v.is_undefined(); }
bool t_none(Interpreter&, const Value& v, CallArgs&) { return v.is_none(); }
bool t_boolean(Interpreter&, const Value& v, CallArgs&) { return v.is_bool(); }
bool t_true(Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && v.as_bool(); }
bool t_false(Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && !v.as_bool(); }
bool t_integer(Interpreter&, const Value& v, CallArgs&) { return v.is_int(); }
bool t_float(Interpreter&, const Value& v, CallArgs&) { return v.is_float(); }
bool t_number(Interpreter&, const Value& v, CallArgs&) { return v.is_number(); }
bool t_string(Interpreter&, const Value& v, CallArgs&) { return v.is_string(); }
bool t_mapping(Interpreter&, const Value& v, CallArgs&) { return v.is_dict(); }
bool t_callable(Interpreter&, const Value& v, CallArgs&) {
  return v.is_function() || (v.is_object() && v.object().callable());
}

bool t_iterable(Interpreter&, const Value& v, CallArgs&) {
  switch (v.kind()) {
    case Kind::Undefined: case Kind::String: case Kind::List: case Kind::Dict: case Kind::Iterator: return true;
    case Kind::Object: return v.object().items().has_value();
    default: return false;
  }
}

// len() and __getitem__: str, list, tuple, dict, range; Undefined has both.
bool t_sequence(Interpreter&, const Value& v, CallArgs&) {
  switch (v.kind()) {
    case Kind::Undefined: case Kind::String: case Kind::Dict: return true;
    case Kind::List: {
      const ListFlavor f = v.list_object().flavor;
      return f == ListFlavor::List || f == ListFlavor::Tuple || f == ListFlavor::Range;
    }
    default: return false;
  }
}

int64_t int_operand(const Value& v, const char* test) {
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_int() || v.is_bool()) return v.int_value();
  throw Error(std::string("the '") + test + "' test needs a number, not " + type_name(v));
}

bool t_odd(Interpreter&, const Value& v, CallArgs&) {
  if (v.is_float()) return std::fmod(std::fabs(v.as_float()), 2.0) == 1.0;
  return int_operand(v, "odd") % 2 != 0;
}

bool t_even(Interpreter&, const Value& v, CallArgs&) {
  if (v.is_float()) return std::fmod(v.as_float(), 2.0) == 0.0;
  return int_operand(v, "even") % 2 == 0;
}

bool t_divisibleby(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("divisibleby", a, {"num"});
  const Value m = in.binary("%", v, r.get(0));
  return equals(m, Value(int64_t{0}));
}

bool t_eq(Interpreter&, const Value& v, CallArgs& a) { return equals(v, other("eq", a)); }
bool t_ne(Interpreter&, const Value& v, CallArgs& a) { return !equals(v, other("ne", a)); }
bool t_lt(Interpreter&, const Value& v, CallArgs& a) { return less(v, other("lt", a), "<"); }
bool t_gt(Interpreter&, const Value& v, CallArgs& a) { return less(other("gt", a), v, ">"); }
bool t_le(Interpreter&, const Value& v, CallArgs& a) {
  const Value o = other("le", a);
  return less(v, o, "<=") || equals(v, o);
}
bool t_ge(Interpreter&, const Value& v, CallArgs& a) {
  const Value o = other("ge", a);
  return less(o, v, ">=") || equals(v, o);
}

bool t_in(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("in", a, {"seq"});
  return in.contains(r.get(0), v);
}

// `is sameas`: Python identity. Singletons (None, True, False) and small
// ints compare by value; containers by address.
bool t_sameas(Interpreter&, const Value& v, CallArgs& a) {
  const Value o = other("sameas", a);
  if (v.kind() != o.kind()) return false;
  switch (v.kind()) {
    case Kind::None: return true;
    case Kind::Bool: return v.as_bool() == o.as_bool();
    case Kind::Int: return v.as_int() == o.as_int() && v.as_int() >= -5 && v.as_int() <= 256;
    case Kind::String: return v.as_string() == o.as_string();
    case Kind::Undefined: case Kind::Float: return false;
    default: return v.identity() == o.identity();
  }
}

bool t_lower(Interpreter&, const Value& v, CallArgs&) {
  const std::string s = to_str(v);
  bool cased = false;
  for (char32_t c : pystr::decode(s)) {
    if (pystr::to_upper(c) != c && pystr::to_lower(c) == c) cased = true;
    else if (pystr::to_lower(c) != c) return false;
  }
  return cased;
}

bool t_upper(Interpreter&, const Value& v, CallArgs&) {
  const std::string s = to_str(v);
  bool cased = false;
  for (char32_t c : pystr::decode(s)) {
    if (pystr::to_lower(c) != c && pystr::to_upper(c) == c) cased = true;
    else if (pystr::to_upper(c) != c) return false;
  }
  return cased;
}

bool t_escaped(Interpreter&, const Value& v, CallArgs&) { return v.is_markup(); }
bool t_filter(Interpreter&, const Value& v, CallArgs&) { return v.is_string() && find_filter(v.as_string()); }
bool t_test(Interpreter&, const Value& v, CallArgs&) { return v.is_string() && find_test(v.as_string()); }

const std::map<std::string, TestFunction>& tests() {
  static const std::map<std::string, TestFunction> table = {
      {"!=", t_ne},          {"<", t_lt},           {"<=", t_le},
      {"==", t_eq},          {">", t_gt},           {">=", t_ge},
      {"boolean", t_boolean}, {"callable", t_callable}, {"defined", t_defined},
      {"divisibleby", t_divisibleby}, {"eq", t_eq}, {"equalto", t_eq},
      {"escaped", t_escaped}, {"even", t_even},     {"false", t_false},
      {"filter", t_filter},  {"float", t_float},    {"ge", t_ge},
      {"greaterthan", t_gt}, {"gt", t_gt},          {"in", t_in},
      {"integer", t_integer}, {"iterable", t_iterable}, {"le", t_le},
      {"lessthan", t_lt},    {"lower", t_lower},    {"lt", t_lt},
      {"mapping", t_mapping}, {"ne", t_ne},         {"none", t_none},
      {"number", t_number},  {"odd", t_odd},        {"sameas", t_sameas},
      {"sequence", t_sequence}, {"string", t_string}, {"test", t_test},
      {"true", t_true},      {"undefined", t_undefined}, {"upper", t_upper},
  };
  return table;
}

}  // namespace

TestFunction find_test(const std::string& name) {
  const auto& table = tests();
  auto it = table.find(name);
  return it == table.end() ? nullptr : it->second;
}

}  // namespace flatline::jinja
