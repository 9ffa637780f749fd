#include "util/limits.h"

#include <cmath>
#include <cstdio>

#include "util/error.h"

namespace flatline::limits {

namespace {

std::string number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

}  // namespace

void check_range(const std::string& name, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi)
    throw Error(name + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) + " (got " +
                std::to_string(value) + ")");
}

void check_range(const std::string& name, double value, double lo, double hi) {
  if (!(value >= lo && value <= hi))  // false for NaN
    throw Error(name + " must be between " + number(lo) + " and " + number(hi) + " (got " + number(value) + ")");
}

void check_count_or_unlimited(const std::string& name, int64_t value, int64_t hi) {
  if (value == -1) return;
  if (value < 0 || value > hi)
    throw Error(name + " must be -1 (no limit) or between 0 and " + std::to_string(hi) + " (got " +
                std::to_string(value) + ")");
}

}  // namespace flatline::limits
