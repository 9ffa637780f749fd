// Jinja2's builtin filters (jinja2/filters.py, 3.1) with the same argument
// names and defaults, plus Hugging Face's tojson override.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "jinja/error.h"
#include "jinja/interpreter.h"
#include "jinja/pystr.h"

namespace flatline::jinja {

namespace {

// ---- helpers -----------------------------------------------------------------------

// Jinja's make_attrgetter: "a.b.0" looks up a, then b, then item 0.
std::vector<Value> attribute_parts(const Value& attribute) {
  if (attribute.is_none() || attribute.is_undefined()) return {};
  if (!attribute.is_string()) return {attribute};
  std::vector<Value> parts;
  for (const std::string& p : pystr::split(attribute.as_string(), std::string("."))) {
    if (auto i = pystr::parse_int(p); i && !p.empty() && std::all_of(p.begin(), p.end(), ::isdigit)) {
      parts.emplace_back(*i);
    } else {
      parts.emplace_back(p);
    }
  }
  return parts;
}

Value lookup_attribute(Interpreter& interp, Value item, const std::vector<Value>& parts, const Value& fallback) {
  for (const Value& part : parts) {
    item = interp.getitem(item, part);
    if (!fallback.is_none() && !fallback.is_undefined() && item.is_undefined()) item = fallback;
  }
  return item;
}

Value ignore_case(const Value& v) { return v.is_string() ? Value(pystr::lower(v.as_string())) : v; }

std::string soft_str(const Value& v) { return to_str(v); }

Value make_string(Interpreter& interp, std::string s) {
  interp.charge_text(s.size());
  return Value(std::move(s));
}

// sorted() with a key and a stable sort, raising Python's TypeError for
// keys that cannot be compared.
std::vector<Value> sorted_by(std::vector<Value> items, const std::vector<Value>& keys, bool reverse) {
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    return reverse ? less(keys[y], keys[x]) : less(keys[x], keys[y]);
  });
  std::vector<Value> out;
  out.reserve(items.size());
  for (size_t i : order) out.push_back(std::move(items[i]));
  return out;
}

// ---- string filters ------------------------------------------------------------------

Value f_upper(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader("upper", a, {});
  return string_like(v, make_string(in, pystr::upper(soft_str(v))).as_string());
}

Value f_lower(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader("lower", a, {});
  return string_like(v, make_string(in, pystr::lower(soft_str(v))).as_string());
}

Value f_capitalize(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader("capitalize", a, {});
  return string_like(v, make_string(in, pystr::capitalize(soft_str(v))).as_string());
}

// Jinja's title: words start after runs of -, whitespace, ( { [ <.
Value f_title(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader("title", a, {});
  const std::u32string s = pystr::decode(soft_str(v));
  auto is_boundary = [](char32_t c) { return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || pystr::is_space(c); };
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    const bool boundary = is_boundary(s[i]);
    while (j < s.size() && is_boundary(s[j]) == boundary) ++j;
    const std::string part = pystr::encode(std::u32string_view(s).substr(i, j - i));
    if (boundary) {
      out += part;
    } else {
      std::string first;
      pystr::append_code_point(first, s[i]);
      out += pystr::upper(first) + pystr::lower(pystr::encode(std::u32string_view(s).substr(i + 1, j - i - 1)));
    }
    i = j;
  }
  return string_like(v, make_string(in, std::move(out)).as_string());
}

Value f_trim(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("trim", a, {"chars"});
  return string_like(v, make_string(in, pystr::strip(soft_str(v), r.get_optional_string(0))).as_string());
}

Value f_replace(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("replace", a, {"old", "new", "count"});
  if (!r.has(0) || !r.has(1)) throw Error("replace() needs the old and the new string");
  const int64_t count = r.has(2) && !r.get(2).is_none() ? r.get_int(2, -1) : -1;
  return make_string(in, pystr::replace(soft_str(v), to_str(r.get(0)), to_str(r.get(1)), count));
}

Value f_center(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("center", a, {"width"});
  const int64_t width = r.get_int(0, 80);
  if (width > 0) in.charge_text(static_cast<size_t>(width));
  return string_like(v, make_string(in, pystr::center(soft_str(v), width)).as_string());
}

Value f_indent(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("indent", a, {"width", "first", "blank"});
  std::string indentation;
  if (r.has(0) && r.get(0).is_string()) {
    indentation = r.get(0).as_string();
  } else {
    const int64_t width = r.get_int(0, 4);
    if (width > 0) in.charge_text(static_cast<size_t>(width));
    indentation.assign(static_cast<size_t>(std::max<int64_t>(0, width)), ' ');
  }
  const bool first = r.get_bool(1, false);
  const bool blank = r.get_bool(2, false);
  const std::string s = soft_str(v) + "\n";  // Jinja's quirk for splitlines
  std::vector<std::string> lines = pystr::splitlines(s);
  std::string out;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) out += "\n" + indentation;
      out += lines[i];
    }
  } else {
    out = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      in.charge_text(indentation.size() + lines[i].size());
      out += "\n";
      if (!lines[i].empty()) out += indentation;
      out += lines[i];
    }
  }
  if (first) out = indentation + out;
  return string_like(v, make_string(in, std::move(out)).as_string());
}

Value f_truncate(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("truncate", a, {"length", "killwords", "end", "leeway"});
  const std::string s = soft_str(v);
  const int64_t length = r.get_int(0, 255);
  const bool killwords = r.get_bool(1, false);
  const std::string end = r.has(2) ? to_str(r.get(2)) : "...";
  const int64_t leeway = r.has(3) && !r.get(3).is_none() ? r.get_int(3, 5) : 5;
  const int64_t end_len = static_cast<int64_t>(pystr::length(end));
  if (length < end_len) throw Error("expected length >= " + std::to_string(end_len) + ", got " + std::to_string(length));
  if (leeway < 0) throw Error("expected leeway >= 0, got " + std::to_string(leeway));
  if (static_cast<int64_t>(pystr::length(s)) <= length + leeway) return Value(s);
  const std::string head = pystr::slice(s, 0, length - end_len, 1);
  if (killwords) return make_string(in, head + end);
  return make_string(in, pystr::rsplit(head, std::string(" "), 1)[0] + end);
}

Value f_wordcount(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("wordcount", a, {});
  int64_t words = 0;
  bool in_word = false;
  for (char32_t c : pystr::decode(soft_str(v))) {
    const bool w = pystr::is_word_char(c);
    if (w && !in_word) ++words;
    in_word = w;
  }
  return Value(words);
}

Value f_string(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader("string", a, {});
  if (v.is_string()) return v;
  return make_string(in, soft_str(v));
}

Value f_safe(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("safe", a, {});
  return Value::markup(soft_str(v));
}

Value f_escape(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader("escape", a, {});
  if (v.is_markup()) return v;
  in.charge_text(v.is_string() ? v.as_string().size() * 2 : 0);
  return Value::markup(html_escape(soft_str(v)));
}

Value f_forceescape(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader("forceescape", a, {});
  return Value::markup(html_escape(soft_str(v)));
}

Value f_striptags(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader("striptags", a, {});
  const std::string s = soft_str(v);
  std::string text;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 4, "<!--") == 0) {
      const size_t e = s.find("-->", i + 4);
      i = e == std::string::npos ? s.size() : e + 3;
    } else if (s[i] == '<' && s.find('>', i) != std::string::npos) {
      i = s.find('>', i) + 1;
    } else {
      text.push_back(s[i++]);
    }
  }
  std::string joined;
  for (const std::string& w : pystr::split(text, std::nullopt)) joined += (joined.empty() ? "" : " ") + w;
  static const std::pair<const char*, const char*> kEntities[] = {{"&lt;", "<"},  {"&gt;", ">"}, {"&quot;", "\""},
                                                                   {"&#39;", "'"}, {"&#34;", "\""}, {"&amp;", "&"}};
  for (const auto& [entity, ch] : kEntities) joined = pystr::replace(joined, entity, ch);
  return make_string(in, std::move(joined));
}

Value f_format(Interpreter& in, const Value& v, CallArgs& a) {
  if (!a.positional.empty() && !a.keyword.empty())
    throw Error("can't handle positional and keyword arguments at the same time");
  Value args;
  if (!a.keyword.empty()) {
    args = Value::dict();
    for (auto& [k, val] : a.keyword) args.mutable_dict().set(Value(k), val);
  } else {
    args = Value::tuple(a.positional);
  }
  return string_like(v, make_string(in, percent_format(in, v.is_markup() ? v : Value(soft_str(v)), args)).as_string());
}

Value f_urlencode(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader("urlencode", a, {});
  // Jinja's url_quote: strings keep '/', query pairs write ' ' as '+'.
  auto quote = [](const std::string& s, bool for_query) {
    std::string out;
    char buf[4];
    for (unsigned char c : s) {
      if (for_query && c == ' ') {
        out.push_back('+');
      } else if (std::isalnum(c) || c == '_' || c == '.' || c == '-' || c == '~' || (!for_query && c == '/')) {
        out.push_back(static_cast<char>(c));
      } else {
        std::snprintf(buf, sizeof buf, "%%%02X", c);
        out += buf;
      }
    }
    return out;
  };
  if (v.is_string()) return make_string(in, quote(v.as_string(), false));
  std::string out;
  if (v.is_dict()) {
    for (const auto& [k, val] : v.dict_object().entries())
      out += (out.empty() ? "" : "&") + quote(to_str(k), true) + "=" + quote(to_str(val), true);
    return make_string(in, out);
  }
  return make_string(in, quote(soft_str(v), false));
}

// ---- HF's tojson -----------------------------------------------------------------------

Value f_tojson(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"});
  return make_string(in, json_dumps(v, r.get_bool(0, false), r.get_or(1, Value::none()), r.get_or(2, Value::none()),
                                    r.get_bool(3, false)));
}

// ---- numbers ----------------------------------------------------------------------------

Value f_abs(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("abs", a, {});
  if (v.is_float()) return Value(std::fabs(v.as_float()));
  if (v.is_int() || v.is_bool()) {
    if (v.int_value() == INT64_MIN) throw Error("integer overflow in abs()");
    return Value(v.int_value() < 0 ? -v.int_value() : v.int_value());
  }
  throw Error("bad operand type for abs(): '" + type_name(v) + "'");
}

Value f_int(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("int", a, {"default", "base"});
  const Value fallback = r.get_or(0, Value(int64_t{0}));
  const int64_t base = r.get_int(1, 10);
  if (v.is_string()) {
    if (auto i = pystr::parse_int(v.as_string(), static_cast<int>(base))) return Value(*i);
    if (auto f = pystr::parse_float(v.as_string()); f && std::isfinite(*f) && std::fabs(*f) < 9.2e18)
      return Value(static_cast<int64_t>(*f));
    return fallback;
  }
  if (v.is_int() || v.is_bool()) return Value(v.int_value());
  if (v.is_float() && std::isfinite(v.as_float()) && std::fabs(v.as_float()) < 9.2e18)
    return Value(static_cast<int64_t>(v.as_float()));
  return fallback;
}

Value f_float(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("float", a, {"default"});
  if (v.is_number()) return Value(v.float_value());
  if (v.is_string())
    if (auto f = pystr::parse_float(v.as_string())) return Value(*f);
  return r.get_or(0, Value(0.0));
}

Value f_round(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("round", a, {"precision", "method"});
  const int64_t precision = r.get_int(0, 0);
  const std::string method = r.has(1) ? to_str(r.get(1)) : "common";
  if (method != "common" && method != "ceil" && method != "floor")
    throw Error("method must be common, ceil or floor");
  if (!v.is_number()) throw Error("type " + type_name(v) + " doesn't define __round__ method");
  if (method == "common") {
    if (!v.is_float()) {  // round(int, n) stays an int
      if (precision >= 0) return Value(v.int_value());
      const double p = std::pow(10.0, static_cast<double>(-precision));
      return Value(static_cast<int64_t>(std::nearbyint(static_cast<double>(v.int_value()) / p) * p));
    }
    // Python rounds the exact binary value half-to-even; printf does too.
    const double x = v.as_float();
    if (!std::isfinite(x)) return Value(x);
    if (precision >= 0 && precision < 300) {
      char buf[512];
      std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), x);
      return Value(std::strtod(buf, nullptr));
    }
    const double p = std::pow(10.0, static_cast<double>(-precision));
    return Value(std::nearbyint(x / p) * p);
  }
  const double p = std::pow(10.0, static_cast<double>(precision));
  const double x = v.float_value() * p;
  return Value((method == "ceil" ? std::ceil(x) : std::floor(x)) / p);
}

Value f_filesizeformat(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("filesizeformat", a, {"binary"});
  const bool binary = r.get_bool(0, false);
  const double bytes = v.is_string() ? pystr::parse_float(v.as_string()).value_or(0) : v.float_value();
  const double base = binary ? 1024 : 1000;
  static const char* kDecimal[] = {"kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
  static const char* kBinary[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"};
  if (bytes == 1) return Value("1 Byte");
  if (bytes < base) return make_string(in, std::to_string(static_cast<int64_t>(bytes)) + " Bytes");
  char buf[64];
  for (int i = 0; i < 8; ++i) {
    const double unit = std::pow(base, i + 2);
    if (bytes < unit || i == 7) {
      std::snprintf(buf, sizeof buf, "%.1f %s", base * bytes / unit, binary ? kBinary[i] : kDecimal[i]);
      break;
    }
  }
  return make_string(in, buf);
}

// ---- sequences --------------------------------------------------------------------------

Value f_length(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader("length", a, {});
  return Value(in.length(v));
}

Value f_list(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader("list", a, {});
  std::vector<Value> items = in.iterate(v);
  in.count_iterations(static_cast<int64_t>(items.size()) / 64);
  return Value::list(std::move(items));
}

Value f_first(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader("first", a, {});
  if (v.is_iterator()) {
    IteratorObject& it = v.iterator_object();
    if (it.position < it.items.size()) return it.items[it.position++];
    return Value::undefined("No first item, sequence was empty.");
  }
  std::vector<Value> items = in.iterate(v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}

Value f_last(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader("last", a, {});
  if (v.is_iterator()) throw Error("'generator' object is not reversible");
  std::vector<Value> items = in.iterate(v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}

Value f_join(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("join", a, {"d", "attribute"});
  const std::string sep = r.has(0) ? to_str(r.get(0)) : "";
  const std::vector<Value> parts = attribute_parts(r.get_or(1, Value::none()));
  std::string out;
  bool first = true;
  for (const Value& item : in.iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += to_str(parts.empty() ? item : lookup_attribute(in, item, parts, Value::none()));
    if (out.size() > in.limits().max_output_bytes) in.charge_text(out.size());  // throws: stop early
  }
  return make_string(in, std::move(out));
}

Value f_reverse(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader("reverse", a, {});
  if (v.is_string()) return make_string(in, pystr::slice(v.as_string(), std::nullopt, std::nullopt, -1));
  if (v.is_iterator() || v.is_object()) {  // reversed() fails on generators: Jinja falls back to a list
    std::vector<Value> items = in.iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  }
  std::vector<Value> items = in.iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::iterator(std::move(items), v.is_dict() ? "dict_reversekeyiterator" : "list_reverseiterator");
}

Value f_sort(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("sort", a, {"reverse", "case_sensitive", "attribute"});
  const bool reverse = r.get_bool(0, false);
  const bool case_sensitive = r.get_bool(1, false);
  std::vector<Value> items = in.iterate(v);
  in.count_iterations(static_cast<int64_t>(items.size()));
  // attribute may list several, comma separated
  std::vector<std::vector<Value>> attributes;
  if (r.has(2) && !r.get(2).is_none()) {
    if (r.get(2).is_string()) {
      for (const std::string& part : pystr::split(r.get(2).as_string(), std::string(",")))
        attributes.push_back(attribute_parts(Value(part)));
    } else {
      attributes.push_back(attribute_parts(r.get(2)));
    }
  }
  std::vector<Value> keys;
  for (const Value& item : items) {
    auto key_of = [&](const std::vector<Value>& parts) {
      Value k = parts.empty() ? item : lookup_attribute(in, item, parts, Value::none());
      return case_sensitive ? k : ignore_case(k);
    };
    if (attributes.size() > 1) {
      std::vector<Value> multi;
      for (const auto& parts : attributes) multi.push_back(key_of(parts));
      keys.push_back(Value::list(std::move(multi)));
    } else {
      keys.push_back(key_of(attributes.empty() ? std::vector<Value>{} : attributes[0]));
    }
  }
  return Value::list(sorted_by(std::move(items), keys, reverse));
}

Value f_dictsort(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("dictsort", a, {"case_sensitive", "by", "reverse"});
  const bool case_sensitive = r.get_bool(0, false);
  const std::string by = r.has(1) ? to_str(r.get(1)) : "key";
  const bool reverse = r.get_bool(2, false);
  size_t pos;
  if (by == "key") {
    pos = 0;
  } else if (by == "value") {
    pos = 1;
  } else {
    throw Error("You can only sort by either \"key\" or \"value\"");
  }
  if (!v.is_dict()) throw Error("dictsort() needs a mapping, not " + type_name(v));
  std::vector<Value> items, keys;
  for (const auto& [k, val] : v.dict_object().entries()) {
    items.push_back(Value::tuple({k, val}));
    const Value& key = pos == 0 ? k : val;
    keys.push_back(case_sensitive ? key : ignore_case(key));
  }
  in.count_iterations(static_cast<int64_t>(items.size()));
  return Value::list(sorted_by(std::move(items), keys, reverse));
}

Value f_items(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("items", a, {});
  if (v.is_undefined()) return Value::iterator({});
  if (!v.is_dict()) throw Error("Can only get item pairs from a mapping.");
  std::vector<Value> items;
  for (const auto& [k, val] : v.dict_object().entries()) items.push_back(Value::tuple({k, val}));
  return Value::iterator(std::move(items));
}

Value f_unique(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("unique", a, {"case_sensitive", "attribute"});
  const bool case_sensitive = r.get_bool(0, false);
  const std::vector<Value> parts = attribute_parts(r.get_or(1, Value::none()));
  std::vector<Value> out, seen;
  for (const Value& item : in.iterate(v)) {
    in.count_iterations();
    Value key = parts.empty() ? item : lookup_attribute(in, item, parts, Value::none());
    if (!case_sensitive) key = ignore_case(key);
    if ((key.is_list() && !key.is_tuple()) || key.is_dict()) throw Error("unhashable type: '" + type_name(key) + "'");
    bool found = false;
    for (const Value& s : seen)
      if (equals(s, key)) found = true;
    if (!found) {
      seen.push_back(key);
      out.push_back(item);
    }
  }
  return Value::iterator(std::move(out));
}

Value min_or_max(Interpreter& in, const Value& v, CallArgs& a, bool want_max) {
  ArgReader r(want_max ? "max" : "min", a, {"case_sensitive", "attribute"});
  const bool case_sensitive = r.get_bool(0, false);
  const std::vector<Value> parts = attribute_parts(r.get_or(1, Value::none()));
  const std::vector<Value> items = in.iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  Value best_key;
  for (size_t i = 0; i < items.size(); ++i) {
    Value key = parts.empty() ? items[i] : lookup_attribute(in, items[i], parts, Value::none());
    if (!case_sensitive) key = ignore_case(key);
    if (i == 0 || (want_max ? less(best_key, key) : less(key, best_key))) {
      best = i;
      best_key = key;
    }
  }
  return items[best];
}

Value f_min(Interpreter& in, const Value& v, CallArgs& a) { return min_or_max(in, v, a, false); }
Value f_max(Interpreter& in, const Value& v, CallArgs& a) { return min_or_max(in, v, a, true); }

Value f_sum(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("sum", a, {"attribute", "start"});
  const std::vector<Value> parts = attribute_parts(r.get_or(0, Value::none()));
  Value total = r.get_or(1, Value(int64_t{0}));
  for (const Value& item : in.iterate(v)) {
    in.count_iterations();
    total = in.binary("+", total, parts.empty() ? item : lookup_attribute(in, item, parts, Value::none()));
  }
  return total;
}

Value f_batch(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("batch", a, {"linecount", "fill_with"});
  const int64_t n = r.get_int(0, 0);
  if (n <= 0) throw Error("batch() needs a positive line count");
  std::vector<Value> batches, current;
  for (const Value& item : in.iterate(v)) {
    in.count_iterations();
    current.push_back(item);
    if (static_cast<int64_t>(current.size()) == n) {
      batches.push_back(Value::list(std::move(current)));
      current.clear();
    }
  }
  if (!current.empty()) {
    if (r.has(1) && !r.get(1).is_none())
      while (static_cast<int64_t>(current.size()) < n) current.push_back(r.get(1));
    batches.push_back(Value::list(std::move(current)));
  }
  return Value::iterator(std::move(batches));
}

Value f_slice(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("slice", a, {"slices", "fill_with"});
  const int64_t slices = r.get_int(0, 0);
  if (slices <= 0) throw Error("slice() needs a positive number of slices");
  const std::vector<Value> seq = in.iterate(v);
  const int64_t length = static_cast<int64_t>(seq.size());
  const int64_t per_slice = length / slices;
  const int64_t with_extra = length % slices;
  int64_t offset = 0;
  std::vector<Value> out;
  for (int64_t i = 0; i < slices; ++i) {
    const int64_t start = offset + i * per_slice;
    if (i < with_extra) ++offset;
    const int64_t end = offset + (i + 1) * per_slice;
    std::vector<Value> part(seq.begin() + start, seq.begin() + end);
    if (r.has(1) && !r.get(1).is_none() && i >= with_extra) part.push_back(r.get(1));
    out.push_back(Value::list(std::move(part)));
  }
  return Value::iterator(std::move(out));
}

Value f_default(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("default", a, {"default_value", "boolean"});
  const Value fallback = r.get_or(0, Value(std::string()));
  if (v.is_undefined() || (r.get_bool(1, false) && !truthy(v))) return fallback;
  return v;
}

Value f_attr(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("attr", a, {"name"});
  const std::string name = to_str(r.get(0));
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_namespace()) {
    if (const Value* x = v.namespace_object().attributes.find(name)) return *x;
  } else if (auto method = find_method(v, name)) {
    return *method;
  }
  return Value::undefined("'" + object_type_repr(v) + "' has no attribute '" + name + "'");
}

// map / select / reject / selectattr / rejectattr return generators.

Value f_map(Interpreter& in, const Value& v, CallArgs& a) {
  if (!truthy(v)) return Value::iterator({});
  std::vector<Value> out;
  const std::vector<Value> items = in.iterate(v);
  if (a.positional.empty()) {
    ArgReader r("map", a, {"attribute", "default"});
    if (!r.has(0)) throw Error("map() needs a filter name or attribute=");
    const std::vector<Value> parts = attribute_parts(r.get(0));
    const Value fallback = r.get_or(1, Value::none());
    for (const Value& item : items) {
      in.count_iterations();
      out.push_back(lookup_attribute(in, item, parts, fallback));
    }
  } else {
    const std::string filter = to_str(a.positional[0]);
    CallArgs rest;
    rest.positional.assign(a.positional.begin() + 1, a.positional.end());
    rest.keyword = a.keyword;
    for (const Value& item : items) {
      in.count_iterations();
      CallArgs copy = rest;
      out.push_back(in.call_filter(filter, item, copy));
    }
  }
  return Value::iterator(std::move(out));
}

Value select_or_reject(Interpreter& in, const Value& v, CallArgs& a, bool select, bool lookup_attr) {
  if (!truthy(v)) return Value::iterator({});
  std::vector<Value> parts;
  size_t off = 0;
  if (lookup_attr) {
    if (a.positional.empty()) throw Error("Missing parameter for attribute name");
    parts = attribute_parts(a.positional[0]);
    off = 1;
  }
  std::optional<std::string> test;
  CallArgs test_args;
  if (a.positional.size() > off) {
    test = to_str(a.positional[off]);
    test_args.positional.assign(a.positional.begin() + static_cast<std::ptrdiff_t>(off) + 1, a.positional.end());
    test_args.keyword = a.keyword;
  }
  std::vector<Value> out;
  for (const Value& item : in.iterate(v)) {
    in.count_iterations();
    const Value probe = lookup_attr ? lookup_attribute(in, item, parts, Value::none()) : item;
    bool passed;
    if (test) {
      CallArgs copy = test_args;
      passed = in.call_test(*test, probe, copy);
    } else {
      passed = truthy(probe);
    }
    if (passed == select) out.push_back(item);
  }
  return Value::iterator(std::move(out));
}

Value f_select(Interpreter& in, const Value& v, CallArgs& a) { return select_or_reject(in, v, a, true, false); }
Value f_reject(Interpreter& in, const Value& v, CallArgs& a) { return select_or_reject(in, v, a, false, false); }
Value f_selectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_or_reject(in, v, a, true, true); }
Value f_rejectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_or_reject(in, v, a, false, true); }

Value f_groupby(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("groupby", a, {"attribute", "default", "case_sensitive"});
  const std::vector<Value> parts = attribute_parts(r.get(0));
  const Value fallback = r.get_or(1, Value::none());
  const bool case_sensitive = r.get_bool(2, false);
  std::vector<Value> items = in.iterate(v);
  std::vector<Value> keys;
  for (const Value& item : items) {
    Value k = lookup_attribute(in, item, parts, fallback);
    keys.push_back(case_sensitive ? k : ignore_case(k));
  }
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return less(keys[x], keys[y]); });
  std::vector<Value> groups;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    std::vector<Value> members;
    while (j < order.size() && equals(keys[order[j]], keys[order[i]])) members.push_back(items[order[j++]]);
    Value grouper = case_sensitive ? keys[order[i]] : lookup_attribute(in, items[order[i]], parts, fallback);
    auto group = std::make_shared<ListObject>();
    group->items = {grouper, Value::list(std::move(members))};
    group->flavor = ListFlavor::Tuple;
    group->group = true;
    groups.emplace_back(std::move(group));
    i = j;
  }
  return Value::list(std::move(groups));
}

Value f_pprint(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader("pprint", a, {});
  return make_string(in, repr(v));
}

const std::map<std::string, FilterFunction>& filters() {
  static const std::map<std::string, FilterFunction> table = {
      {"abs", f_abs},
      {"attr", f_attr},
      {"batch", f_batch},
      {"capitalize", f_capitalize},
      {"center", f_center},
      {"count", f_length},
      {"d", f_default},
      {"default", f_default},
      {"dictsort", f_dictsort},
      {"e", f_escape},
      {"escape", f_escape},
      {"filesizeformat", f_filesizeformat},
      {"first", f_first},
      {"float", f_float},
      {"forceescape", f_forceescape},
      {"format", f_format},
      {"groupby", f_groupby},
      {"indent", f_indent},
      {"int", f_int},
      {"items", f_items},
      {"join", f_join},
      {"last", f_last},
      {"length", f_length},
      {"list", f_list},
      {"lower", f_lower},
      {"map", f_map},
      {"max", f_max},
      {"min", f_min},
      {"pprint", f_pprint},
      {"reject", f_reject},
      {"rejectattr", f_rejectattr},
      {"replace", f_replace},
      {"reverse", f_reverse},
      {"round", f_round},
      {"safe", f_safe},
      {"select", f_select},
      {"selectattr", f_selectattr},
      {"slice", f_slice},
      {"sort", f_sort},
      {"string", f_string},
      {"striptags", f_striptags},
      {"sum", f_sum},
      {"title", f_title},
      {"tojson", f_tojson},
      {"trim", f_trim},
      {"truncate", f_truncate},
      {"unique", f_unique},
      {"upper", f_upper},
      {"urlencode", f_urlencode},
      {"wordcount", f_wordcount},
  };
  return table;
}

}  // namespace

FilterFunction find_filter(const std::string& name) {
  const auto& table = filters();
  auto it = table.find(name);
  return it == table.end() ? nullptr : it->second;
}

}  // namespace flatline::jinja
