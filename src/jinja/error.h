// Errors of the Jinja interpreter. A parse error names the line and column
// and what was expected; a render error names the line of the statement or
// expression that failed. Both are flatline::Error, so front ends that
// already catch that type report them like any other bad input.
#pragma once

#include <string>

#include "util/error.h"

namespace flatline::jinja {

class Error : public flatline::Error {
 public:
  explicit Error(const std::string& message) : flatline::Error(message) {}
};

// raise_exception("...") in a template: the message is the template's own.
class TemplateRaisedError : public Error {
 public:
  explicit TemplateRaisedError(const std::string& message, int line = 0)
      : Error(line > 0 ? "the template raised an error at line " + std::to_string(line) + ": " + message : message),
        raised_message_(message) {}
  const std::string& raised_message() const { return raised_message_; }

 private:
  std::string raised_message_;
};

// A documented limit (output size, loop iterations, recursion) was reached.
class LimitError : public Error {
 public:
  explicit LimitError(const std::string& message) : Error(message) {}
};

}  // namespace flatline::jinja
