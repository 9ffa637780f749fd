#include "server/json_io.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <mutex>

namespace flatline::server {

json parse_body(const std::string& body, const char* go_struct) {
  size_t i = 0;
  while (i < body.size() && std::isspace(static_cast<unsigned char>(body[i]))) ++i;
  if (i == body.size()) throw HttpError(400, "missing request body");
  json j;
  try {
    j = json::parse(body);
  } catch (const nlohmann::json::exception& e) {  // parse errors, number overflow
    // nlohmann's text names the byte and what it expected, like Go's
    // "invalid character 'x' looking for beginning of value".
    std::string what = e.what();
    auto pos = what.find("parse error");
    throw HttpError(400, "invalid JSON: " + (pos == std::string::npos ? what : what.substr(pos)));
  }
  if (!j.is_object())
    throw HttpError(400, std::string("json: cannot unmarshal ") + go_json_kind(j) + " into Go value of type api." +
                             go_struct);
  return j;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

namespace {
std::mutex g_private_mutex;
std::vector<std::string> g_private_prefixes;  // with a trailing '/', longest first
}  // namespace

void add_private_paths(const std::vector<std::string>& directories) {
  std::lock_guard<std::mutex> lock(g_private_mutex);
  for (const std::string& dir : directories) {
    if (dir.empty()) continue;
    std::error_code ec;
    for (std::string form : {dir, std::filesystem::absolute(dir, ec).string(),
                             std::filesystem::weakly_canonical(dir, ec).string()}) {
      if (form.empty()) continue;
      if (form.back() != '/') form += '/';
      if (std::find(g_private_prefixes.begin(), g_private_prefixes.end(), form) == g_private_prefixes.end())
        g_private_prefixes.push_back(form);
    }
  }
  std::sort(g_private_prefixes.begin(), g_private_prefixes.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::string scrub_private_paths(std::string message) {
  std::lock_guard<std::mutex> lock(g_private_mutex);
  for (const std::string& prefix : g_private_prefixes) {
    for (size_t at = message.find(prefix); at != std::string::npos; at = message.find(prefix, at))
      message.erase(at, prefix.size());
  }
  return message;
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ns_total = duration_cast<nanoseconds>(t.time_since_epoch()).count();
  int64_t secs = ns_total / 1000000000;
  int64_t frac = ns_total % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    --secs;
  }
  return rfc3339_unix(secs, frac);
}

std::string rfc3339_unix(int64_t secs, int64_t frac) {
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out = buf;
  if (frac > 0) {
    char digits[32];
    std::snprintf(digits, sizeof digits, ".%09lld", static_cast<long long>(frac));
    std::string f = digits;
    while (f.back() == '0') f.pop_back();
    out += f;
  }
  return out + "Z";
}

std::string rfc3339_now() { return rfc3339(std::chrono::system_clock::now()); }

const char* go_json_kind(const json& v) {
  if (v.is_string()) return "string";
  if (v.is_number()) return "number";
  if (v.is_boolean()) return "bool";
  if (v.is_array()) return "array";
  if (v.is_object()) return "object";
  return "null";
}

void FieldReader::type_error(const char* key, const json& value, const char* go_type) const {
  throw HttpError(400, std::string("json: cannot unmarshal ") + go_json_kind(value) + " into Go struct field " +
                           struct_ + "." + key + " of type " + go_type);
}

const json* FieldReader::raw(const char* key) const {
  auto it = obj_.find(key);
  if (it == obj_.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<std::string> FieldReader::string(const char* key) const {
  const json* v = raw(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) type_error(key, *v, "string");
  return v->get<std::string>();
}

std::optional<bool> FieldReader::boolean(const char* key) const {
  const json* v = raw(key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) type_error(key, *v, "bool");
  return v->get<bool>();
}

std::optional<double> FieldReader::number(const char* key) const {
  const json* v = raw(key);
  if (!v) return std::nullopt;
  if (!v->is_number()) type_error(key, *v, "float64");
  return v->get<double>();
}

std::optional<int64_t> FieldReader::integer(const char* key) const {
  const json* v = raw(key);
  if (!v) return std::nullopt;
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_number_float()) {
    double d = v->get<double>();
    if (std::floor(d) == d && std::fabs(d) < 9.2e18) return static_cast<int64_t>(d);
  }
  type_error(key, *v, "int");
}

const json* FieldReader::array(const char* key) const {
  const json* v = raw(key);
  if (v && !v->is_array()) type_error(key, *v, "[]");
  return v;
}

const json* FieldReader::object(const char* key) const {
  const json* v = raw(key);
  if (v && !v->is_object()) type_error(key, *v, "map[string]interface {}");
  return v;
}

}  // namespace flatline::server
