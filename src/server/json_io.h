// JSON in and out for the HTTP API: request bodies, Go-style type errors
// (what Ollama's Go server says, so clients see the same messages), and
// serialisation that never throws on invalid UTF-8 from a model.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "util/error.h"

namespace flatline::server {

using json = nlohmann::ordered_json;

// An error with the HTTP status it should produce.
class HttpError : public Error {
 public:
  HttpError(int status, const std::string& message, int retry_after_seconds = 0)
      : Error(message), status_(status), retry_after_seconds_(retry_after_seconds) {}
  int status() const { return status_; }
  int retry_after_seconds() const { return retry_after_seconds_; }  // > 0: sent as Retry-After

 private:
  int status_;
  int retry_after_seconds_;
};

// Parses a request body that must be a JSON object. Empty body: 400
// "missing request body"; bad JSON or another type: 400.
json parse_body(const std::string& body, const char* go_struct);

// Invalid UTF-8 (a model can emit any byte) becomes U+FFFD instead of an exception.
std::string dump(const json& j);

// Directories whose absolute paths must not reach a client (the models and
// state directories): error messages name files relative to them.
void add_private_paths(const std::vector<std::string>& directories);
// `message` with every private directory prefix ("/srv/models/") removed.
std::string scrub_private_paths(std::string message);

// RFC 3339 in UTC with up to nanosecond precision, trailing zeros trimmed
// (Go's time.RFC3339Nano): "2024-05-01T12:00:00.123456789Z".
std::string rfc3339(std::chrono::system_clock::time_point t);
std::string rfc3339_now();
// The same from seconds + nanoseconds since 1970, for instants that a
// nanosecond time_point cannot hold (after 2262).
std::string rfc3339_unix(int64_t seconds, int64_t nanos);

// Field readers for request objects. A missing or null field gives nullopt;
// a field of the wrong type throws HttpError(400) worded like Go's
// encoding/json: `json: cannot unmarshal number into Go struct field
// ChatRequest.stream of type bool`.
class FieldReader {
 public:
  FieldReader(const json& object, std::string go_struct) : obj_(object), struct_(std::move(go_struct)) {}
  std::optional<std::string> string(const char* key) const;
  std::optional<bool> boolean(const char* key) const;
  std::optional<double> number(const char* key) const;
  std::optional<int64_t> integer(const char* key) const;
  const json* array(const char* key) const;
  const json* object(const char* key) const;
  const json* raw(const char* key) const;  // any non-null value

  [[noreturn]] void type_error(const char* key, const json& value, const char* go_type) const;

 private:
  const json& obj_;
  std::string struct_;
};

// Go's name for a JSON value's kind in unmarshal errors: string, number, bool, array, object.
const char* go_json_kind(const json& v);

}  // namespace flatline::server
