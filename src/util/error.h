// Error type used for every problem caused by user input (files, requests,
// options). Front ends catch it and print / return the message; nothing in
// the library aborts on bad input.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace flatline {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Thrown when an operation would exceed the memory budget. Separate type so
// the server can map it to its own status and the CLI to its own exit code.
class MemoryBudgetError : public Error {
 public:
  explicit MemoryBudgetError(const std::string& message) : Error(message) {}
};

// Thrown when a prompt / conversation does not fit in the context window.
class ContextOverflowError : public Error {
 public:
  explicit ContextOverflowError(const std::string& message) : Error(message) {}
};

}  // namespace flatline
