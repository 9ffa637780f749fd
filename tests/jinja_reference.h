// Runs tests/jinja/render_reference.py (Debian's python3-jinja2 with
// Hugging Face's chat-template environment) over a batch of cases, so the
// Jinja tests can compare flatline's output with Python's byte for byte.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace flatline::test {

struct ReferenceResult {
  bool ok = false;
  std::string output;      // when ok
  std::string error_type;  // Python exception class, e.g. "TemplateError"
  std::string error;       // its message
};

struct ReferenceCase {
  std::string template_source;
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
};

// The fixed "now" both engines use for strftime_now.
inline constexpr const char* kReferenceNow = "2025-07-15T10:30:00";

// Empty when /usr/bin/python3 can import jinja2; otherwise why not.
std::string python_jinja_unavailable_reason();
// Throws std::runtime_error if the script fails.
std::vector<ReferenceResult> render_with_python(const std::vector<ReferenceCase>& cases);

}  // namespace flatline::test

#define REQUIRE_PYTHON_JINJA()                                                             \
  do {                                                                                     \
    const std::string why_ = ::flatline::test::python_jinja_unavailable_reason();          \
    if (!why_.empty()) GTEST_SKIP() << why_;                                               \
  } while (0)
