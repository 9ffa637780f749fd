// Counters for GET /metrics (Prometheus text exposition format 0.0.4).
// docs/SERVER.md lists every metric. Gauges that describe the current state
// (queue, memory, cache) are read when the page is rendered; this class
// keeps what must be counted as it happens.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace flatline::server {

class Metrics {
 public:
  // Upper bounds (seconds) of the request duration histogram's buckets.
  static constexpr std::array<double, 15> kDurationBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                              2.5,   5,    10,    30,    60,  120, 300};

  void count_request(const std::string& route, const std::string& method, int status, double seconds);
  // One finished generation: prompt tokens (whole prompt, reused from a
  // snapshot, evaluated now) and generated tokens.
  void count_turn(const std::string& model, int64_t prompt_tokens, int64_t reused, int64_t evaluated,
                  int64_t generated, bool cancelled);

  // Appends this class's metrics to `out`.
  void render(std::string& out) const;

 private:
  struct Histogram {
    std::array<uint64_t, kDurationBuckets.size()> buckets{};  // non-cumulative
    uint64_t count = 0;
    double sum = 0;
  };
  struct Tokens {
    uint64_t prompt = 0, reused = 0, evaluated = 0, generated = 0, turns = 0, cancelled = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests_;  // route, method, status
  std::map<std::string, Histogram> durations_;                              // by route
  std::map<std::string, Tokens> tokens_;                                    // by model
};

// Helpers for writing the exposition format.
class PromWriter {
 public:
  explicit PromWriter(std::string& out) : out_(out) {}
  // "# HELP" and "# TYPE" lines (once per metric family).
  void family(const std::string& name, const char* type, const std::string& help);
  // One sample; labels as {name, value} pairs (values escaped here).
  void sample(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels, double value);
  void sample(const std::string& name, double value) { sample(name, {}, value); }

 private:
  std::string& out_;
};

std::string prom_escape_label(const std::string& value);
std::string prom_number(double v);

}  // namespace flatline::server
