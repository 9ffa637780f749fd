#include "jinja/template.h"

#include <chrono>
#include <clocale>
#include <ctime>
#include <locale.h>

#include "jinja/interpreter.h"
#include "jinja/parser.h"

namespace flatline::jinja {

struct Template::Parsed {
  ast::Body body;
};

namespace {

// ---- globals --------------------------------------------------------------------------------

constexpr int64_t kMaxRange = 100000;  // Jinja's sandbox refuses longer ranges

Value global_range(Interpreter& in, CallArgs& a) {
  if (!a.keyword.empty()) throw Error("range() takes no keyword arguments");
  if (a.positional.empty() || a.positional.size() > 3)
    throw Error("range expected 1 to 3 arguments, got " + std::to_string(a.positional.size()));
  std::vector<int64_t> n;
  for (const Value& v : a.positional) {
    if (!v.is_int() && !v.is_bool()) throw Error("'" + type_name(v) + "' object cannot be interpreted as an integer");
    n.push_back(v.int_value());
  }
  const int64_t start = n.size() > 1 ? n[0] : 0;
  const int64_t stop = n.size() > 1 ? n[1] : n[0];
  const int64_t step = n.size() > 2 ? n[2] : 1;
  if (step == 0) throw Error("range() arg 3 must not be zero");
  int64_t count = 0;
  if (step > 0 && stop > start) count = (stop - start + step - 1) / step;
  if (step < 0 && stop < start) count = (start - stop - step - 1) / -step;
  if (count > kMaxRange)
    throw LimitError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (" + std::to_string(kMaxRange) + ").");
  in.count_iterations(count / 64);
  auto list = std::make_shared<ListObject>();
  list->flavor = ListFlavor::Range;
  list->range_start = start;
  list->range_stop = stop;
  list->range_step = step;
  for (int64_t i = 0; i < count; ++i) list->items.emplace_back(start + i * step);
  return Value(std::move(list));
}

void fill_dict(Interpreter& in, DictObject& d, CallArgs& a, const char* function) {
  if (a.positional.size() > 1)
    throw Error(std::string(function) + " expected at most 1 positional argument, got " + std::to_string(a.positional.size()));
  if (!a.positional.empty()) {
    const Value& src = a.positional[0];
    if (src.is_dict()) {
      for (const auto& [k, v] : src.dict_object().entries()) d.set(k, v);
    } else if (src.is_namespace()) {
      for (const auto& [k, v] : src.namespace_object().attributes.entries()) d.set(k, v);
    } else {
      for (const Value& pair : in.iterate(src)) {
        std::vector<Value> kv = in.iterate(pair);
        if (kv.size() != 2) throw Error("dictionary update sequence element has length " + std::to_string(kv.size()) + "; 2 is required");
        d.set(kv[0], kv[1]);
      }
    }
  }
  for (auto& [k, v] : a.keyword) d.set(Value(k), v);
}

Value global_dict(Interpreter& in, CallArgs& a) {
  Value d = Value::dict();
  fill_dict(in, d.mutable_dict(), a, "dict");
  return d;
}

Value global_namespace(Interpreter& in, CallArgs& a) {
  auto ns = std::make_shared<NamespaceObject>();
  fill_dict(in, ns->attributes, a, "namespace");
  return Value(std::move(ns));
}

class Cycler : public Object {
 public:
  explicit Cycler(std::vector<Value> items) : state_(std::make_shared<State>(State{std::move(items), 0})) {}
  std::string type_name() const override { return "Cycler"; }
  std::optional<Value> attribute(Interpreter&, const std::string& name) override {
    // The bound methods share the state, so they stay valid on their own.
    std::shared_ptr<State> st = state_;
    if (name == "current") return st->items[st->position];
    if (name == "next") {
      return Value::function("next", [st](Interpreter&, CallArgs&) {
        Value v = st->items[st->position];
        st->position = (st->position + 1) % st->items.size();
        return v;
      });
    }
    if (name == "reset") {
      return Value::function("reset", [st](Interpreter&, CallArgs&) {
        st->position = 0;
        return Value::none();
      });
    }
    return std::nullopt;
  }

 private:
  struct State {
    std::vector<Value> items;
    size_t position;
  };
  std::shared_ptr<State> state_;
};

class Joiner : public Object {
 public:
  explicit Joiner(std::string sep) : sep_(std::move(sep)) {}
  std::string type_name() const override { return "Joiner"; }
  std::optional<Value> attribute(Interpreter&, const std::string&) override { return std::nullopt; }
  bool callable() const override { return true; }
  Value call(Interpreter&, CallArgs&) override {
    if (!used_) {
      used_ = true;
      return Value(std::string());
    }
    return Value(sep_);
  }

 private:
  std::string sep_;
  bool used_ = false;
};

Value global_cycler(Interpreter&, CallArgs& a) {
  if (a.positional.empty()) throw Error("cycler() needs at least one item");
  return Value(std::shared_ptr<Object>(std::make_shared<Cycler>(a.positional)));
}

Value global_joiner(Interpreter&, CallArgs& a) {
  ArgReader r("joiner", a, {"sep"});
  return Value(std::shared_ptr<Object>(std::make_shared<Joiner>(r.has(0) ? to_str(r.get(0)) : ", ")));
}

Value global_raise_exception(Interpreter&, CallArgs& a) {
  ArgReader r("raise_exception", a, {"message"});
  const std::string message = to_str(r.get(0));
  throw TemplateRaisedError(message);
}

// Python's datetime.strftime: the C library's strftime in the "C" locale,
// after Python's own %f (microseconds), %z and %Z (empty: naive time).
Value global_strftime_now(Interpreter& in, CallArgs& a) {
  ArgReader r("strftime_now", a, {"format"});
  if (!r.get(0).is_string()) throw Error("strftime_now() argument must be str, not " + type_name(r.get(0)));
  std::string format;
  const std::string& f = r.get(0).as_string();
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == '%' && i + 1 < f.size()) {
      const char c = f[i + 1];
      if (c == 'f') { format += "000000"; ++i; continue; }
      if (c == 'z' || c == 'Z') { ++i; continue; }
      format += f.substr(i, 2);
      ++i;
      continue;
    }
    format.push_back(f[i]);
  }
  if (format.empty()) return Value(std::string());
  std::tm tm = in.now();
  static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(0));
  std::string out(256 + format.size() * 8, '\0');
  size_t n = strftime_l(out.data(), out.size(), format.c_str(), &tm, c_locale);
  if (n == 0 && !format.empty()) {
    out.assign(64 * 1024, '\0');
    n = strftime_l(out.data(), out.size(), format.c_str(), &tm, c_locale);
  }
  out.resize(n);
  return Value(std::move(out));
}

Value global_lipsum(Interpreter&, CallArgs&) { throw Error("lipsum() is not supported by flatline's Jinja interpreter"); }

ScopePtr make_globals() {
  auto g = std::make_shared<Scope>();
  g->set("range", Value::function("range", global_range));
  g->set("dict", Value::function("dict", global_dict));
  g->set("namespace", Value::function("namespace", global_namespace));
  g->set("cycler", Value::function("cycler", global_cycler));
  g->set("joiner", Value::function("joiner", global_joiner));
  g->set("lipsum", Value::function("lipsum", global_lipsum));
  g->set("raise_exception", Value::function("raise_exception", global_raise_exception));
  g->set("strftime_now", Value::function("strftime_now", global_strftime_now));
  return g;
}

std::tm to_tm(const CivilTime& t) {
  std::tm tm{};
  tm.tm_year = t.year - 1900;
  tm.tm_mon = t.month - 1;
  tm.tm_mday = t.day;
  tm.tm_hour = t.hour;
  tm.tm_min = t.minute;
  tm.tm_sec = t.second;
  // Weekday and day of the year (for %a, %j, ...): normalise as UTC.
  const time_t seconds = timegm(&tm);
  std::tm normalised{};
  gmtime_r(&seconds, &normalised);
  return normalised;
}

std::tm local_now() {
  const time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&now, &tm);
  return tm;
}

template <class Json>
std::string render_impl(const ast::Body& body, const Json& context, const RenderOptions& options) {
  if (!context.is_object()) throw Error("the template context must be a JSON object, found " + std::string(context.type_name()));
  Limits limits;
  limits.max_output_bytes = options.max_output_bytes;
  limits.max_total_bytes = options.max_total_bytes;
  limits.max_loop_iterations = options.max_loop_iterations;
  limits.max_recursion_depth = options.max_recursion_depth;
  Interpreter interp(limits, options.now ? to_tm(*options.now) : local_now());
  auto scope = std::make_shared<Scope>(make_globals());
  for (auto it = context.begin(); it != context.end(); ++it) scope->set(it.key(), from_json(it.value()));
  return interp.render(body, scope);
}

}  // namespace

Template Template::parse(std::string_view source) {
  auto parsed = std::make_shared<Parsed>();
  parsed->body = parse_template(source);
  Template t;
  t.parsed_ = std::move(parsed);
  return t;
}

std::string Template::render(const nlohmann::ordered_json& context, const RenderOptions& options) const {
  return render_impl(parsed_->body, context, options);
}

std::string Template::render(const nlohmann::json& context, const RenderOptions& options) const {
  return render_impl(parsed_->body, context, options);
}

}  // namespace flatline::jinja
