// Knowing before doing: what a model, its states and its scratch buffers will
// take, checked against the memory flatline may use. Refusing with a clear
// message beats being killed by the kernel half-way through a conversation.
#pragma once

#include <cstdint>
#include <string>

namespace flatline {

std::string format_bytes(uint64_t bytes);  // "3.21 GiB", "512.0 KiB"

// Parses "8G", "512M", "1.5GiB", "2000000" (bytes), at most 1 PiB. Throws
// Error naming `what` (e.g. "--max-memory") when given.
uint64_t parse_byte_size(const std::string& text, const std::string& what = "");

class MemoryBudget {
 public:
  // limit 0: derive from the machine (available memory at start-up, the
  // tightest of MemAvailable and the cgroup limits, minus a safety margin
  // for the OS and the rest of this process).
  explicit MemoryBudget(uint64_t limit_bytes = 0);

  uint64_t limit() const { return limit_; }
  // Where the limit came from: "--max-memory", or the available memory and
  // which limit set it.
  const std::string& source() const { return source_; }
  uint64_t reserved() const { return reserved_; }
  uint64_t free() const { return limit_ > reserved_ ? limit_ - reserved_ : 0; }

  // Throws MemoryBudgetError("<what> needs X but only Y of the Z budget is free ...").
  void require(uint64_t bytes, const std::string& what) const;
  void reserve(uint64_t bytes) { reserved_ += bytes; }
  void release(uint64_t bytes) { reserved_ = bytes > reserved_ ? 0 : reserved_ - bytes; }

 private:
  uint64_t limit_;
  uint64_t reserved_ = 0;
  std::string source_;
};

}  // namespace flatline
