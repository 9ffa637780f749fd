// Python's printf-style `str % args` and `str.format(...)`, for the
// templates that build text with them (and Jinja's `format` filter).
#include <cmath>
#include <cstdio>
#include <string>

#include "jinja/error.h"
#include "jinja/interpreter.h"
#include "jinja/pystr.h"

namespace flatline::jinja {

namespace {

std::string pad(const std::string& body, int64_t width, char align, char32_t fill) {
  const int64_t len = static_cast<int64_t>(pystr::length(body));
  if (width <= len) return body;
  const int64_t n = width - len;
  std::string f;
  pystr::append_code_point(f, fill);
  auto rep = [&](int64_t k) {
    std::string s;
    for (int64_t i = 0; i < k; ++i) s += f;
    return s;
  };
  if (align == '<') return body + rep(n);
  if (align == '^') return rep(n / 2) + body + rep(n - n / 2);
  return rep(n) + body;
}

int64_t as_integer(const Value& v, const char* spec) {
  if (v.is_int() || v.is_bool()) return v.int_value();
  if (v.is_float()) {
    if (!std::isfinite(v.as_float())) throw Error("cannot convert float infinity or NaN to integer");
    return static_cast<int64_t>(v.as_float());
  }
  throw Error(std::string("%") + spec + " format: a real number is required, not " + type_name(v));
}

double as_real(const Value& v, const char* spec) {
  if (v.is_number()) return v.float_value();
  throw Error(std::string("%") + spec + " format: a real number is required, not " + type_name(v));
}

std::string int_digits(int64_t v, char type, bool alternate) {
  const bool negative = v < 0;
  const uint64_t u = negative ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  std::string digits;
  const int base = type == 'x' || type == 'X' ? 16 : type == 'o' ? 8 : type == 'b' ? 2 : 10;
  uint64_t x = u;
  do {
    const int d = static_cast<int>(x % static_cast<uint64_t>(base));
    digits.insert(digits.begin(), static_cast<char>(d < 10 ? '0' + d : (type == 'X' ? 'A' : 'a') + d - 10));
    x /= static_cast<uint64_t>(base);
  } while (x);
  if (alternate && base != 10) digits = std::string("0") + (type == 'X' ? 'X' : type) + digits;
  return (negative ? "-" : "") + digits;
}

std::string float_digits(double v, char type, int precision) {
  if (std::isnan(v)) return std::isupper(static_cast<unsigned char>(type)) ? "NAN" : "nan";
  if (std::isinf(v)) {
    const char* s = std::isupper(static_cast<unsigned char>(type)) ? "INF" : "inf";
    return v < 0 ? std::string("-") + s : s;
  }
  char fmt[16];
  std::snprintf(fmt, sizeof fmt, "%%.%d%c", precision, type);
  char buf[512];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

}  // namespace

// ---- printf style ------------------------------------------------------------------------

std::string percent_format(Interpreter& interp, const Value& format_value, const Value& args) {
  const std::string& format = format_value.as_string();
  const bool markup = format_value.is_markup();
  std::vector<Value> positional;
  const Value* mapping = nullptr;
  if (args.is_tuple()) {
    positional = args.items();
  } else if (args.is_dict()) {
    mapping = &args;
  } else {
    positional.push_back(args);
  }
  size_t next_arg = 0;
  auto take = [&]() -> Value {
    if (next_arg >= positional.size()) throw Error("not enough arguments for format string");
    return positional[next_arg++];
  };
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out.push_back(format[i]);
      continue;
    }
    if (++i >= format.size()) throw Error("incomplete format");
    Value value;
    bool have_value = false;
    if (format[i] == '(') {
      const size_t close = format.find(')', i);
      if (close == std::string::npos) throw Error("incomplete format key");
      if (!mapping) throw Error("format requires a mapping");
      const Value* v = mapping->dict_object().find(std::string_view(format).substr(i + 1, close - i - 1));
      if (!v) throw Error("KeyError: " + pystr::repr(format.substr(i + 1, close - i - 1)));
      value = *v;
      have_value = true;
      i = close + 1;
    }
    bool left = false, plus = false, space = false, alternate = false, zero = false;
    for (; i < format.size(); ++i) {
      const char c = format[i];
      if (c == '-') left = true;
      else if (c == '+') plus = true;
      else if (c == ' ') space = true;
      else if (c == '#') alternate = true;
      else if (c == '0') zero = true;
      else break;
    }
    int64_t width = 0;
    if (i < format.size() && format[i] == '*') {
      width = as_integer(take(), "*");
      ++i;
    } else {
      while (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i]))) width = width * 10 + (format[i++] - '0');
    }
    int precision = -1;
    if (i < format.size() && format[i] == '.') {
      ++i;
      precision = 0;
      if (i < format.size() && format[i] == '*') {
        precision = static_cast<int>(as_integer(take(), "*"));
        ++i;
      } else {
        while (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i]))) precision = precision * 10 + (format[i++] - '0');
      }
    }
    while (i < format.size() && (format[i] == 'h' || format[i] == 'l' || format[i] == 'L')) ++i;
    if (i >= format.size()) throw Error("incomplete format");
    const char type = format[i];
    if (type == '%') {
      out.push_back('%');
      continue;
    }
    if (!have_value) value = mapping ? *mapping : take();
    std::string body;
    bool numeric = true;
    switch (type) {
      case 's': body = markup ? escape_unless_markup(value) : to_str(value); numeric = false; break;
      case 'r': case 'a': body = markup ? html_escape(repr(value)) : repr(value); numeric = false; break;
      case 'c':
        numeric = false;
        if (value.is_string()) {
          body = value.as_string();
        } else {
          pystr::append_code_point(body, static_cast<char32_t>(as_integer(value, "c")));
        }
        break;
      case 'd': case 'i': case 'u': body = int_digits(as_integer(value, "d"), 'd', false); break;
      case 'x': case 'X': case 'o': body = int_digits(as_integer(value, "x"), type, alternate); break;
      case 'e': case 'E': case 'f': case 'F': case 'g': case 'G':
        body = float_digits(as_real(value, "f"), type, precision < 0 ? 6 : precision);
        break;
      default: throw Error(std::string("unsupported format character '") + type + "'");
    }
    if (!numeric && precision >= 0) body = pystr::slice(body, 0, precision, 1);
    if (numeric && body[0] != '-') {
      if (plus) body = "+" + body;
      else if (space) body = " " + body;
    }
    if (numeric && zero && !left && static_cast<int64_t>(body.size()) < width) {
      const size_t sign = (body[0] == '-' || body[0] == '+' || body[0] == ' ') ? 1 : 0;
      body.insert(sign, static_cast<size_t>(width) - body.size(), '0');
    }
    interp.charge_text(static_cast<size_t>(std::max<int64_t>(width, 0)));
    out += pad(body, width, left ? '<' : '>', U' ');
  }
  if (!mapping && next_arg < positional.size() && !(positional.size() == 1 && !args.is_tuple() && positional[0].is_dict()))
    throw Error("not all arguments converted during string formatting");
  return out;
}

// ---- str.format -------------------------------------------------------------------------------

namespace {

struct Spec {
  char32_t fill = U' ';
  char align = 0;
  char sign = '-';
  bool alternate = false;
  bool zero = false;
  int64_t width = 0;
  char grouping = 0;
  int precision = -1;
  char type = 0;
};

Spec parse_spec(const std::string& text) {
  Spec s;
  const std::u32string u = pystr::decode(text);
  size_t i = 0;
  auto is_align = [](char32_t c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (u.size() >= 2 && is_align(u[1])) {
    s.fill = u[0];
    s.align = static_cast<char>(u[1]);
    i = 2;
  } else if (!u.empty() && is_align(u[0])) {
    s.align = static_cast<char>(u[0]);
    i = 1;
  }
  if (i < u.size() && (u[i] == '+' || u[i] == '-' || u[i] == ' ')) s.sign = static_cast<char>(u[i++]);
  if (i < u.size() && u[i] == '#') { s.alternate = true; ++i; }
  if (i < u.size() && u[i] == '0') { s.zero = true; ++i; }
  while (i < u.size() && u[i] >= '0' && u[i] <= '9') s.width = s.width * 10 + (u[i++] - '0');
  if (i < u.size() && (u[i] == ',' || u[i] == '_')) s.grouping = static_cast<char>(u[i++]);
  if (i < u.size() && u[i] == '.') {
    ++i;
    s.precision = 0;
    if (i >= u.size() || u[i] < '0' || u[i] > '9') throw Error("Format specifier missing precision");
    while (i < u.size() && u[i] >= '0' && u[i] <= '9') s.precision = s.precision * 10 + static_cast<int>(u[i++] - '0');
  }
  if (i < u.size()) s.type = static_cast<char>(u[i++]);
  if (i != u.size()) throw Error("Invalid format specifier '" + text + "'");
  return s;
}

std::string group_digits(const std::string& digits, char sep) {
  const size_t dot = digits.find_first_of(".eE");
  std::string head = digits.substr(0, dot), tail = dot == std::string::npos ? "" : digits.substr(dot);
  std::string out;
  int count = 0;
  for (size_t i = head.size(); i-- > 0;) {
    out.insert(out.begin(), head[i]);
    if (++count % 3 == 0 && i > 0) out.insert(out.begin(), sep);
  }
  return out + tail;
}

std::string format_field(const Value& v, const std::string& spec_text) {
  if (spec_text.empty()) return to_str(v);
  const Spec s = parse_spec(spec_text);
  std::string body;
  char default_align = '>';
  if (v.is_string() || ((v.is_none() || v.is_list() || v.is_dict() || v.is_undefined()) && s.type == 0)) {
    if (!v.is_string() && !v.is_undefined())
      throw Error("unsupported format string passed to " + type_name(v) + ".__format__");
    if (s.type != 0 && s.type != 's') throw Error(std::string("Unknown format code '") + s.type + "' for object of type 'str'");
    body = to_str(v);
    if (s.precision >= 0) body = pystr::slice(body, 0, s.precision, 1);
    default_align = '<';
  } else if (v.is_number()) {
    const bool integer_type = s.type == 0 || s.type == 'd' || s.type == 'x' || s.type == 'X' || s.type == 'o' ||
                              s.type == 'b' || s.type == 'n' || s.type == 'c';
    if (!v.is_float() && integer_type) {
      if (s.type == 'c') {
        pystr::append_code_point(body, static_cast<char32_t>(v.int_value()));
      } else {
        body = int_digits(v.int_value(), s.type == 0 || s.type == 'n' ? 'd' : s.type, s.alternate);
        if (s.grouping) body = (body[0] == '-' ? "-" : "") + group_digits(body[0] == '-' ? body.substr(1) : body, s.grouping);
      }
    } else {
      if (integer_type && s.type != 0) throw Error(std::string("Unknown format code '") + s.type + "' for object of type 'float'");
      const double x = v.float_value();
      if (s.type == 0 && s.precision < 0) {
        body = pystr::float_repr(x);
      } else if (s.type == '%') {
        body = float_digits(x * 100, 'f', s.precision < 0 ? 6 : s.precision) + "%";
      } else {
        const char t = s.type == 0 ? 'g' : s.type == 'n' ? 'g' : s.type;
        body = float_digits(x, t, s.precision < 0 ? 6 : s.precision);
      }
      if (s.grouping) body = (body[0] == '-' ? "-" : "") + group_digits(body[0] == '-' ? body.substr(1) : body, s.grouping);
    }
    if (body[0] != '-' && s.sign != '-') body = std::string(1, s.sign) + body;
  } else {
    throw Error("unsupported format string passed to " + type_name(v) + ".__format__");
  }
  const char align = s.align ? s.align : (s.zero && v.is_number() ? '=' : default_align);
  const char32_t fill = s.align ? s.fill : (s.zero ? U'0' : U' ');
  if (align == '=') {
    const size_t sign = (!body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' ')) ? 1 : 0;
    const int64_t len = static_cast<int64_t>(pystr::length(body));
    if (s.width > len) {
      std::string f;
      for (int64_t i = 0; i < s.width - len; ++i) pystr::append_code_point(f, fill);
      body.insert(sign, f);
    }
    return body;
  }
  return pad(body, s.width, align, fill);
}

}  // namespace

std::string brace_format(Interpreter& interp, const Value& format_value, const CallArgs& args) {
  const std::string& format = format_value.as_string();
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < format.size(); ++i) {
    const char c = format[i];
    if (c == '}') {
      if (i + 1 < format.size() && format[i + 1] == '}') {
        out.push_back('}');
        ++i;
        continue;
      }
      throw Error("Single '}' encountered in format string");
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (i + 1 < format.size() && format[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    // {field[!conv][:spec]} with one level of nested {} in spec
    size_t depth = 1, j = i + 1;
    for (; j < format.size() && depth; ++j) {
      if (format[j] == '{') ++depth;
      else if (format[j] == '}') --depth;
    }
    if (depth) throw Error("expected '}' before end of string");
    const std::string field = format.substr(i + 1, j - i - 2);
    i = j - 1;
    size_t split = field.find_first_of("!:");
    std::string name = field.substr(0, split);
    char conversion = 0;
    std::string spec;
    if (split != std::string::npos && field[split] == '!') {
      if (split + 1 >= field.size()) throw Error("end of string while looking for conversion specifier");
      conversion = field[split + 1];
      const size_t colon = split + 2;
      if (colon < field.size()) {
        if (field[colon] != ':') throw Error("expected ':' after conversion specifier");
        spec = field.substr(colon + 1);
      }
    } else if (split != std::string::npos) {
      spec = field.substr(split + 1);
    }
    if (spec.find('{') != std::string::npos) spec = brace_format(interp, Value(spec), args);
    // arg_name then .attr / [key] parts
    size_t k = 0;
    while (k < name.size() && name[k] != '.' && name[k] != '[') ++k;
    const std::string arg = name.substr(0, k);
    Value value;
    if (arg.empty() || std::all_of(arg.begin(), arg.end(), ::isdigit)) {
      const size_t index = arg.empty() ? auto_index++ : static_cast<size_t>(std::stoul(arg));
      if (index >= args.positional.size())
        throw Error("Replacement index " + std::to_string(index) + " out of range for positional args tuple");
      value = args.positional[index];
    } else {
      bool found = false;
      for (const auto& [key, v] : args.keyword) {
        if (key == arg) {
          value = v;
          found = true;
        }
      }
      if (!found) throw Error("KeyError: " + pystr::repr(arg));
    }
    while (k < name.size()) {
      if (name[k] == '.') {
        size_t e = k + 1;
        while (e < name.size() && name[e] != '.' && name[e] != '[') ++e;
        value = interp.getattr(value, name.substr(k + 1, e - k - 1));
        k = e;
      } else {
        const size_t close = name.find(']', k);
        if (close == std::string::npos) throw Error("Missing ']' in format string");
        const std::string key = name.substr(k + 1, close - k - 1);
        value = !key.empty() && std::all_of(key.begin(), key.end(), ::isdigit)
                    ? interp.getitem(value, Value(static_cast<int64_t>(std::stoll(key))))
                    : interp.getitem(value, Value(key));
        k = close + 1;
      }
    }
    if (conversion == 'r' || conversion == 'a') {
      value = Value(repr(value));
    } else if (conversion == 's') {
      value = Value(to_str(value));
    } else if (conversion) {
      throw Error(std::string("Unknown conversion specifier ") + conversion);
    }
    const std::string field_text = format_field(value, spec);
    out += format_value.is_markup() && !value.is_markup() ? html_escape(field_text) : field_text;
    if (out.size() > interp.limits().max_output_bytes) interp.charge_text(out.size());
  }
  return out;
}

}  // namespace flatline::jinja
