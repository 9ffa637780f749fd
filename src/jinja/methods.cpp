// Methods of Python's str, dict and list that templates call
// (message.content.strip(), tool.get('x'), ...). The immutable sandbox Hugging
// Face renders with blocks the mutating ones (list.append, dict.update ...):
// looking them up gives an Undefined that fails with the sandbox's message.
#include <algorithm>
#include <cmath>
#include <set>
#include <string>

#include "jinja/error.h"
#include "jinja/interpreter.h"
#include "jinja/pystr.h"

namespace flatline::jinja {

namespace {

using Method = Value (*)(Interpreter&, const Value& self, CallArgs&);

std::string str_arg(const ArgReader& r, size_t i, const char* what) {
  const Value& v = r.get(i);
  if (!v.is_string()) throw Error(r.name() + "() argument " + what + " must be str, not " + type_name(v));
  return v.as_string();
}

std::optional<int64_t> optional_index(const ArgReader& r, size_t i) {
  if (!r.has(i) || r.get(i).is_none()) return std::nullopt;
  return r.get_int(i, 0);
}

Value string_list(std::vector<std::string> parts) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (auto& p : parts) items.emplace_back(std::move(p));
  return Value::list(std::move(items));
}

// ---- str --------------------------------------------------------------------------------

Value strip_impl(const Value& self, CallArgs& a, const char* name, pystr::StripSide side) {
  ArgReader r(name, a, {"chars"});
  return Value(pystr::strip(self.as_string(), r.get_optional_string(0), side));
}
Value s_strip(Interpreter&, const Value& self, CallArgs& a) { return strip_impl(self, a, "strip", pystr::StripSide::Both); }
Value s_lstrip(Interpreter&, const Value& self, CallArgs& a) { return strip_impl(self, a, "lstrip", pystr::StripSide::Left); }
Value s_rstrip(Interpreter&, const Value& self, CallArgs& a) { return strip_impl(self, a, "rstrip", pystr::StripSide::Right); }

Value split_impl(Interpreter& in, const Value& self, CallArgs& a, bool reverse) {
  ArgReader r(reverse ? "rsplit" : "split", a, {"sep", "maxsplit"});
  const int64_t maxsplit = r.get_int(1, -1);
  std::vector<std::string> parts = reverse ? pystr::rsplit(self.as_string(), r.get_optional_string(0), maxsplit)
                                           : pystr::split(self.as_string(), r.get_optional_string(0), maxsplit);
  in.count_iterations(static_cast<int64_t>(parts.size()) / 64);
  return string_list(std::move(parts));
}
Value s_split(Interpreter& in, const Value& self, CallArgs& a) { return split_impl(in, self, a, false); }
Value s_rsplit(Interpreter& in, const Value& self, CallArgs& a) { return split_impl(in, self, a, true); }

Value s_splitlines(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader r("splitlines", a, {"keepends"});
  return string_list(pystr::splitlines(self.as_string(), r.get_bool(0, false)));
}

// startswith / endswith: prefix or tuple of prefixes, optional start / end.
Value affix_impl(const Value& self, CallArgs& a, bool at_start) {
  ArgReader r(at_start ? "startswith" : "endswith", a, {"prefix", "start", "end"});
  std::vector<std::string> options;
  const Value& p = r.get(0);
  if (p.is_string()) {
    options.push_back(p.as_string());
  } else if (p.is_tuple()) {
    for (const Value& x : p.items()) {
      if (!x.is_string()) throw Error("tuple for " + r.name() + " must only contain str, not " + type_name(x));
      options.push_back(x.as_string());
    }
  } else {
    throw Error(r.name() + " first arg must be str or a tuple of str, not " + type_name(p));
  }
  std::string s = self.as_string();
  if (r.has(1) || r.has(2)) {
    const int64_t n = static_cast<int64_t>(pystr::length(s));
    int64_t b = optional_index(r, 1).value_or(0), e = optional_index(r, 2).value_or(n);
    if (b < 0) b = std::max<int64_t>(0, b + n);
    if (e < 0) e = std::max<int64_t>(0, e + n);
    if (b > n) return Value(false);
    s = pystr::slice(s, b, std::max(b, std::min(e, n)), 1);
  }
  for (const std::string& o : options) {
    if (o.size() > s.size()) continue;
    if (at_start ? s.compare(0, o.size(), o) == 0 : s.compare(s.size() - o.size(), o.size(), o) == 0) return Value(true);
  }
  return Value(false);
}
Value s_startswith(Interpreter&, const Value& self, CallArgs& a) { return affix_impl(self, a, true); }
Value s_endswith(Interpreter&, const Value& self, CallArgs& a) { return affix_impl(self, a, false); }

Value s_upper(Interpreter&, const Value& self, CallArgs& a) { ArgReader("upper", a, {}); return Value(pystr::upper(self.as_string())); }
Value s_lower(Interpreter&, const Value& self, CallArgs& a) { ArgReader("lower", a, {}); return Value(pystr::lower(self.as_string())); }
Value s_title(Interpreter&, const Value& self, CallArgs& a) { ArgReader("title", a, {}); return Value(pystr::title(self.as_string())); }
Value s_capitalize(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader("capitalize", a, {});
  return Value(pystr::capitalize(self.as_string()));
}
Value s_swapcase(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader("swapcase", a, {});
  return Value(pystr::swapcase(self.as_string()));
}

Value s_replace(Interpreter& in, const Value& self, CallArgs& a) {
  ArgReader r("replace", a, {"old", "new", "count"});
  std::string out = pystr::replace(self.as_string(), str_arg(r, 0, "1"), str_arg(r, 1, "2"), r.get_int(2, -1));
  in.charge_text(out.size());
  return Value(std::move(out));
}

Value find_impl(const Value& self, CallArgs& a, const char* name, bool reverse, bool raise) {
  ArgReader r(name, a, {"sub", "start", "end"});
  const std::string sub = str_arg(r, 0, "1");
  const int64_t at = reverse ? pystr::rfind(self.as_string(), sub, optional_index(r, 1), optional_index(r, 2))
                             : pystr::find(self.as_string(), sub, optional_index(r, 1), optional_index(r, 2));
  if (at < 0 && raise) throw Error("substring not found");
  return Value(at);
}
Value s_find(Interpreter&, const Value& self, CallArgs& a) { return find_impl(self, a, "find", false, false); }
Value s_rfind(Interpreter&, const Value& self, CallArgs& a) { return find_impl(self, a, "rfind", true, false); }
Value s_index(Interpreter&, const Value& self, CallArgs& a) { return find_impl(self, a, "index", false, true); }
Value s_rindex(Interpreter&, const Value& self, CallArgs& a) { return find_impl(self, a, "rindex", true, true); }

Value s_count(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader r("count", a, {"sub", "start", "end"});
  std::string s = self.as_string();
  if (r.has(1) || r.has(2)) s = pystr::slice(s, optional_index(r, 1), optional_index(r, 2), 1);
  return Value(pystr::count(s, str_arg(r, 0, "1")));
}

Value s_join(Interpreter& in, const Value& self, CallArgs& a) {
  ArgReader r("join", a, {"iterable"});
  std::string out;
  size_t i = 0;
  for (const Value& item : in.iterate(r.get(0))) {
    if (!item.is_string())
      throw Error("sequence item " + std::to_string(i) + ": expected str instance, " + type_name(item) + " found");
    if (i++) out += self.as_string();
    out += self.is_markup() ? escape_unless_markup(item) : item.as_string();
    if (out.size() > in.limits().max_output_bytes) in.charge_text(out.size());
  }
  in.charge_text(out.size());
  return Value(std::move(out));
}

Value s_format(Interpreter& in, const Value& self, CallArgs& a) {
  std::string out = brace_format(in, self, a);
  in.charge_text(out.size());
  return Value(std::move(out));
}

char32_t fill_char(const ArgReader& r, size_t i) {
  if (!r.has(i)) return U' ';
  const std::u32string f = pystr::decode(str_arg(r, i, "2"));
  if (f.size() != 1) throw Error("The fill character must be exactly one character long");
  return f[0];
}

Value justify_impl(Interpreter& in, const Value& self, CallArgs& a, const char* name) {
  ArgReader r(name, a, {"width", "fillchar"});
  const int64_t width = r.get_int(0, 0);
  if (width > 0) in.charge_text(static_cast<size_t>(width));
  const char32_t fill = fill_char(r, 1);
  const std::string n = name;
  if (n == "center") return Value(pystr::center(self.as_string(), width, fill));
  if (n == "ljust") return Value(pystr::ljust(self.as_string(), width, fill));
  return Value(pystr::rjust(self.as_string(), width, fill));
}
Value s_center(Interpreter& in, const Value& self, CallArgs& a) { return justify_impl(in, self, a, "center"); }
Value s_ljust(Interpreter& in, const Value& self, CallArgs& a) { return justify_impl(in, self, a, "ljust"); }
Value s_rjust(Interpreter& in, const Value& self, CallArgs& a) { return justify_impl(in, self, a, "rjust"); }

Value s_zfill(Interpreter& in, const Value& self, CallArgs& a) {
  ArgReader r("zfill", a, {"width"});
  const int64_t width = r.get_int(0, 0);
  if (width > 0) in.charge_text(static_cast<size_t>(width));
  return Value(pystr::zfill(self.as_string(), width));
}

template <bool (*Pred)(char32_t)>
Value all_chars(const Value& self, CallArgs& a, const char* name) {
  ArgReader(name, a, {});
  const std::u32string u = pystr::decode(self.as_string());
  if (u.empty()) return Value(false);
  return Value(std::all_of(u.begin(), u.end(), Pred));
}
bool alnum(char32_t c) { return pystr::is_alpha(c) || pystr::is_digit(c); }
Value s_isdigit(Interpreter&, const Value& self, CallArgs& a) { return all_chars<pystr::is_digit>(self, a, "isdigit"); }
Value s_isdecimal(Interpreter&, const Value& self, CallArgs& a) { return all_chars<pystr::is_digit>(self, a, "isdecimal"); }
Value s_isnumeric(Interpreter&, const Value& self, CallArgs& a) { return all_chars<pystr::is_digit>(self, a, "isnumeric"); }
Value s_isalpha(Interpreter&, const Value& self, CallArgs& a) { return all_chars<pystr::is_alpha>(self, a, "isalpha"); }
Value s_isalnum(Interpreter&, const Value& self, CallArgs& a) { return all_chars<alnum>(self, a, "isalnum"); }
Value s_isspace(Interpreter&, const Value& self, CallArgs& a) { return all_chars<pystr::is_space>(self, a, "isspace"); }
Value s_isascii(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader("isascii", a, {});
  return Value(pystr::is_ascii(self.as_string()));
}

Value case_test(const Value& self, CallArgs& a, const char* name, bool want_lower) {
  ArgReader(name, a, {});
  bool cased = false;
  for (char32_t c : pystr::decode(self.as_string())) {
    const bool is_lower = pystr::to_upper(c) != c && pystr::to_lower(c) == c;
    const bool is_upper = pystr::to_lower(c) != c && pystr::to_upper(c) == c;
    if (want_lower ? is_upper : is_lower) return Value(false);
    if (want_lower ? is_lower : is_upper) cased = true;
  }
  return Value(cased);
}
Value s_islower(Interpreter&, const Value& self, CallArgs& a) { return case_test(self, a, "islower", true); }
Value s_isupper(Interpreter&, const Value& self, CallArgs& a) { return case_test(self, a, "isupper", false); }

Value partition_impl(const Value& self, CallArgs& a, bool reverse) {
  ArgReader r(reverse ? "rpartition" : "partition", a, {"sep"});
  const std::string sep = str_arg(r, 0, "1");
  if (sep.empty()) throw Error("empty separator");
  const std::string& s = self.as_string();
  const size_t at = reverse ? s.rfind(sep) : s.find(sep);
  if (at == std::string::npos) {
    if (reverse) return Value::tuple({Value(std::string()), Value(std::string()), Value(s)});
    return Value::tuple({Value(s), Value(std::string()), Value(std::string())});
  }
  return Value::tuple({Value(s.substr(0, at)), Value(sep), Value(s.substr(at + sep.size()))});
}
Value s_partition(Interpreter&, const Value& self, CallArgs& a) { return partition_impl(self, a, false); }
Value s_rpartition(Interpreter&, const Value& self, CallArgs& a) { return partition_impl(self, a, true); }

Value s_removeprefix(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader r("removeprefix", a, {"prefix"});
  const std::string p = str_arg(r, 0, "1");
  const std::string& s = self.as_string();
  return Value(s.compare(0, p.size(), p) == 0 ? s.substr(p.size()) : s);
}

Value s_removesuffix(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader r("removesuffix", a, {"suffix"});
  const std::string p = str_arg(r, 0, "1");
  const std::string& s = self.as_string();
  if (!p.empty() && s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0)
    return Value(s.substr(0, s.size() - p.size()));
  return Value(s);
}

// ---- dict -------------------------------------------------------------------------------

Value d_get(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader r("get", a, {"key", "default"});
  if (!r.has(0)) throw Error("get expected at least 1 argument, got 0");
  const Value& key = r.get(0);
  if ((key.is_list() && !key.is_tuple()) || key.is_dict()) throw Error("unhashable type: '" + type_name(key) + "'");
  const Value* v = self.dict_object().find(key);
  return v ? *v : r.get_or(1, Value::none());
}

Value d_items(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader("items", a, {});
  std::vector<Value> items;
  for (const auto& [k, v] : self.dict_object().entries()) items.push_back(Value::tuple({k, v}));
  return Value::list(std::move(items), ListFlavor::DictItems);
}

Value d_keys(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader("keys", a, {});
  std::vector<Value> items;
  for (const auto& [k, v] : self.dict_object().entries()) items.push_back(k);
  return Value::list(std::move(items), ListFlavor::DictKeys);
}

Value d_values(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader("values", a, {});
  std::vector<Value> items;
  for (const auto& [k, v] : self.dict_object().entries()) items.push_back(v);
  return Value::list(std::move(items), ListFlavor::DictValues);
}

Value d_copy(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader("copy", a, {});
  Value d = Value::dict();
  for (const auto& [k, v] : self.dict_object().entries()) d.mutable_dict().set(k, v);
  return d;
}

// ---- list / tuple ----------------------------------------------------------------------------

Value l_index(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader r("index", a, {"value", "start", "stop"});
  const auto& items = self.items();
  for (size_t i = static_cast<size_t>(std::max<int64_t>(0, r.get_int(1, 0))); i < items.size(); ++i)
    if (equals(items[i], r.get(0))) return Value(static_cast<int64_t>(i));
  throw Error(repr(r.get(0)) + " is not in list");
}

Value l_count(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader r("count", a, {"value"});
  int64_t n = 0;
  for (const Value& x : self.items())
    if (equals(x, r.get(0))) ++n;
  return Value(n);
}

Value l_copy(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader("copy", a, {});
  return Value::list(self.items());
}

// Markup's methods return Markup (and lists of Markup for split()).
Value markup_like(const Value& result) {
  if (result.is_string()) return Value::markup(result.as_string());
  if (result.is_list() && result.list_object().flavor == ListFlavor::List) {
    std::vector<Value> items;
    for (const Value& x : result.items()) items.push_back(x.is_string() ? Value::markup(x.as_string()) : x);
    return Value::list(std::move(items));
  }
  return result;
}

// The sandbox's list of blocked mutators (MutableSequence: append, reverse,
// insert, sort, extend, remove) leaves pop and clear callable.
Value l_pop(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader r("pop", a, {"index"});
  std::vector<Value>& items = self.mutable_items();
  if (items.empty()) throw Error("pop from empty list");
  int64_t i = r.get_int(0, -1);
  if (i < 0) i += static_cast<int64_t>(items.size());
  if (i < 0 || i >= static_cast<int64_t>(items.size())) throw Error("pop index out of range");
  Value v = items[static_cast<size_t>(i)];
  items.erase(items.begin() + i);
  return v;
}

Value l_clear(Interpreter&, const Value& self, CallArgs& a) {
  ArgReader("clear", a, {});
  self.mutable_items().clear();
  return Value::none();
}

// int / float attributes (x.real, x.imag ...)
std::optional<Value> number_attribute(const Value& v, const std::string& name) {
  if (name == "real") return v.is_float() ? v : Value(v.int_value());
  if (name == "imag") return v.is_float() ? Value(0.0) : Value(int64_t{0});
  if (!v.is_float() && name == "numerator") return Value(v.int_value());
  if (!v.is_float() && name == "denominator") return Value(int64_t{1});
  if (name == "conjugate") {
    return Value::function(type_name(v) + ".conjugate", [v](Interpreter&, CallArgs&) { return v.is_float() ? v : Value(v.int_value()); });
  }
  if (v.is_float() && name == "is_integer") {
    return Value::function("float.is_integer", [v](Interpreter&, CallArgs&) {
      return Value(std::isfinite(v.as_float()) && v.as_float() == std::floor(v.as_float()));
    });
  }
  return std::nullopt;
}

struct MethodEntry {
  const char* name;
  Method method;  // nullptr: exists in Python, blocked by the immutable sandbox
};

const MethodEntry kStrMethods[] = {
    {"capitalize", s_capitalize}, {"center", s_center},     {"count", s_count},       {"endswith", s_endswith},
    {"find", s_find},             {"format", s_format},     {"index", s_index},       {"isalnum", s_isalnum},
    {"isalpha", s_isalpha},       {"isascii", s_isascii},   {"isdecimal", s_isdecimal}, {"isdigit", s_isdigit},
    {"islower", s_islower},       {"isnumeric", s_isnumeric}, {"isspace", s_isspace}, {"isupper", s_isupper},
    {"join", s_join},             {"ljust", s_ljust},       {"lower", s_lower},       {"lstrip", s_lstrip},
    {"partition", s_partition},   {"removeprefix", s_removeprefix}, {"removesuffix", s_removesuffix},
    {"replace", s_replace},       {"rfind", s_rfind},       {"rindex", s_rindex},     {"rjust", s_rjust},
    {"rpartition", s_rpartition}, {"rsplit", s_rsplit},     {"rstrip", s_rstrip},     {"split", s_split},
    {"splitlines", s_splitlines}, {"startswith", s_startswith}, {"strip", s_strip},   {"swapcase", s_swapcase},
    {"title", s_title},           {"upper", s_upper},       {"zfill", s_zfill},       {"casefold", s_lower},
};
// str methods flatline does not implement: present (so `is defined` holds),
// failing with a clear message when called.
const char* const kStrUnsupported[] = {"encode", "expandtabs", "format_map", "isidentifier", "isprintable",
                                       "istitle", "maketrans", "translate"};

const MethodEntry kDictMethods[] = {
    {"get", d_get}, {"items", d_items}, {"keys", d_keys}, {"values", d_values}, {"copy", d_copy},
    {"pop", nullptr}, {"popitem", nullptr}, {"setdefault", nullptr}, {"update", nullptr}, {"clear", nullptr},
};

const MethodEntry kListMethods[] = {
    {"index", l_index}, {"count", l_count}, {"copy", l_copy},     {"append", nullptr}, {"extend", nullptr},
    {"insert", nullptr}, {"remove", nullptr}, {"pop", l_pop},     {"clear", l_clear},  {"sort", nullptr},
    {"reverse", nullptr},
};

const MethodEntry kTupleMethods[] = {{"index", l_index}, {"count", l_count}};

template <size_t N>
std::optional<Value> bind(const MethodEntry (&table)[N], const Value& self, const std::string& name) {
  for (const MethodEntry& e : table) {
    if (name != e.name) continue;
    if (!e.method)
      return Value::undefined("access to attribute '" + name + "' of '" + type_name(self) + "' object is unsafe.",
                              true);
    const Method m = e.method;
    return Value::function(type_name(self) + "." + name, [m, self](Interpreter& in, CallArgs& args) {
      Value result = m(in, self, args);
      return self.is_markup() ? markup_like(result) : result;
    });
  }
  return std::nullopt;
}

}  // namespace

std::optional<Value> find_method(const Value& object, const std::string& name) {
  switch (object.kind()) {
    case Kind::String: {
      if (auto m = bind(kStrMethods, object, name)) return m;
      for (const char* n : kStrUnsupported) {
        if (name == n)
          return Value::function("str." + name, [name](Interpreter&, CallArgs&) -> Value {
            throw Error("str." + name + "() is not supported by flatline's Jinja interpreter");
          });
      }
      return std::nullopt;
    }
    case Kind::Dict: return bind(kDictMethods, object, name);
    case Kind::List:
      switch (object.list_object().flavor) {
        case ListFlavor::List: return bind(kListMethods, object, name);
        case ListFlavor::Tuple: return bind(kTupleMethods, object, name);
        default: return std::nullopt;
      }
    case Kind::Int:
    case Kind::Float:
    case Kind::Bool: return number_attribute(object, name);
    default: return std::nullopt;
  }
}

}  // namespace flatline::jinja
