#include "runtime/memory_budget.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "util/error.h"
#include "util/limits.h"
#include "util/system_info.h"

namespace flatline {

std::string format_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
  return buf;
}

uint64_t parse_byte_size(const std::string& text, const std::string& what) {
  const std::string prefix = what.empty() ? "" : what + ": ";
  size_t i = 0, dots = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) dots += text[i++] == '.';
  if (i == 0 || dots > 1 || text[0] == '.')
    throw Error(prefix + "cannot read a memory size from '" + text + "' (examples: 6G, 512M, 1.5GiB)");
  double value = std::stod(text.substr(0, i));
  std::string unit;
  for (size_t j = i; j < text.size(); ++j)
    if (!std::isspace(static_cast<unsigned char>(text[j]))) unit += static_cast<char>(std::toupper(text[j]));
  double mult = 1;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "K" || unit == "KB" || unit == "KIB") mult = 1024.0;
  else if (unit == "M" || unit == "MB" || unit == "MIB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GB" || unit == "GIB") mult = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TB" || unit == "TIB") mult = 1024.0 * 1024 * 1024 * 1024;
  else throw Error(prefix + "unknown memory unit '" + unit + "' in '" + text + "' (use K, M, G or T)");
  const double bytes = value * mult;
  if (!(bytes <= static_cast<double>(limits::kMaxByteSize)))
    throw Error(prefix + "'" + text + "' is larger than the largest size accepted (1 PiB)");
  return static_cast<uint64_t>(std::llround(bytes));
}

MemoryBudget::MemoryBudget(uint64_t limit_bytes) : limit_(limit_bytes) {
  if (limit_ == 0) {
    // Leave 10% (at least 256 MiB) for the OS, the page cache of other
    // processes and this process's own code and heap.
    const MemoryAvailability available = available_memory();
    uint64_t margin = std::max<uint64_t>(available.bytes / 10, 256ull << 20);
    limit_ = available.bytes > margin ? available.bytes - margin : available.bytes / 2;
    source_ = format_bytes(available.bytes) + " available (" + available.source + ") minus " +
              format_bytes(available.bytes - limit_) + " kept free";
  } else {
    source_ = "set with --max-memory";
  }
}

void MemoryBudget::require(uint64_t bytes, const std::string& what) const {
  if (bytes <= free()) return;
  throw MemoryBudgetError(what + " needs " + format_bytes(bytes) + " but only " + format_bytes(free()) + " of the " +
                          format_bytes(limit_) + " memory budget is free (set the budget with --max-memory)");
}

}  // namespace flatline
