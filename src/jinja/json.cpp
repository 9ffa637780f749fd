// Python's json.dumps, as Hugging Face's `tojson` filter calls it:
// json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
// Key order is kept; floats print as Python's repr; ", " and ": " separate
// unless indent is given (then "," and ": ").
#include <cmath>
#include <cstdio>
#include <string>

#include "jinja/error.h"
#include "jinja/interpreter.h"
#include "jinja/pystr.h"

namespace flatline::jinja {

namespace {

constexpr int kMaxJsonDepth = 512;

struct JsonWriter {
  bool ensure_ascii;
  bool pretty;
  std::string indent;
  std::string item_separator;
  std::string key_separator;
  bool sort_keys;
  std::string out;

  void string(const std::string& s) {
    out.push_back('"');
    char buf[16];
    for (char32_t c : pystr::decode(s)) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20 || (ensure_ascii && c >= 0x7F)) {
            if (c >= 0x10000) {
              const char32_t v = c - 0x10000;
              std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 + (v >> 10)),
                            static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
            } else {
              std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
            }
            out += buf;
          } else {
            pystr::append_code_point(out, c);
          }
      }
    }
    out.push_back('"');
  }

  static std::string float_text(double d) {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
    return pystr::float_repr(d);
  }

  void newline(int level) {
    out.push_back('\n');
    for (int i = 0; i < level; ++i) out += indent;
  }

  std::string key_text(const Value& k) {
    switch (k.kind()) {
      case Kind::String: return k.as_string();
      case Kind::Int: return std::to_string(k.as_int());
      case Kind::Float: return float_text(k.as_float());
      case Kind::Bool: return k.as_bool() ? "true" : "false";
      case Kind::None: return "null";
      default: throw Error("keys must be str, int, float, bool or None, not " + type_name(k));
    }
  }

  void value(const Value& v, int level) {
    if (level > kMaxJsonDepth) throw Error("tojson: the value nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    switch (v.kind()) {
      case Kind::None: out += "null"; return;
      case Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
      case Kind::Int: out += std::to_string(v.as_int()); return;
      case Kind::Float: out += float_text(v.as_float()); return;
      case Kind::String: string(v.as_string()); return;
      case Kind::List: {
        const ListFlavor f = v.list_object().flavor;
        if (f != ListFlavor::List && f != ListFlavor::Tuple) break;
        const auto& items = v.items();
        if (items.empty()) {
          out += "[]";
          return;
        }
        out.push_back('[');
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += item_separator;
          if (pretty) newline(level + 1);
          value(items[i], level + 1);
        }
        if (pretty) newline(level);
        out.push_back(']');
        return;
      }
      case Kind::Dict: {
        std::vector<std::pair<Value, Value>> entries = v.dict_object().entries();
        if (entries.empty()) {
          out += "{}";
          return;
        }
        if (sort_keys)
          std::stable_sort(entries.begin(), entries.end(), [](const auto& x, const auto& y) { return less(x.first, y.first); });
        out.push_back('{');
        bool first = true;
        for (const auto& [k, val] : entries) {
          if (!first) out += item_separator;
          first = false;
          if (pretty) newline(level + 1);
          string(key_text(k));
          out += key_separator;
          value(val, level + 1);
        }
        if (pretty) newline(level);
        out.push_back('}');
        return;
      }
      default: break;
    }
    throw Error("Object of type " + type_name(v) + " is not JSON serializable");
  }
};

}  // namespace

std::string json_dumps(const Value& v, bool ensure_ascii, const Value& indent, const Value& separators, bool sort_keys) {
  JsonWriter w;
  w.ensure_ascii = ensure_ascii;
  w.sort_keys = sort_keys;
  w.pretty = !indent.is_none() && !indent.is_undefined();
  if (w.pretty) {
    if (indent.is_string()) {
      w.indent = indent.as_string();
    } else if (indent.is_int() || indent.is_bool()) {
      w.indent.assign(static_cast<size_t>(std::max<int64_t>(0, std::min<int64_t>(indent.int_value(), 1 << 16))), ' ');
    } else {
      throw Error("tojson: indent must be an integer or a string, not " + type_name(indent));
    }
  }
  w.item_separator = w.pretty ? "," : ", ";
  w.key_separator = ": ";
  if (!separators.is_none() && !separators.is_undefined()) {
    if (!separators.is_list() || separators.items().size() != 2 || !separators.items()[0].is_string() ||
        !separators.items()[1].is_string())
      throw Error("tojson: separators must be a pair of strings (item separator, key separator)");
    w.item_separator = separators.items()[0].as_string();
    w.key_separator = separators.items()[1].as_string();
  }
  w.value(v, 0);
  return std::move(w.out);
}

}  // namespace flatline::jinja
