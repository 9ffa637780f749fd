#include "server/metrics.h"

#include <cmath>
#include <cstdio>

namespace flatline::server {

std::string prom_escape_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string prom_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void PromWriter::family(const std::string& name, const char* type, const std::string& help) {
  out_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void PromWriter::sample(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels,
                        double value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += "{";
    for (size_t i = 0; i < labels.size(); ++i)
      out_ += (i ? "," : "") + labels[i].first + "=\"" + prom_escape_label(labels[i].second) + "\"";
    out_ += "}";
  }
  out_ += " " + prom_number(value) + "\n";
}

void Metrics::count_request(const std::string& route, const std::string& method, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{route, method, status}];
  Histogram& h = durations_[route];
  size_t b = 0;
  while (b < kDurationBuckets.size() && seconds > kDurationBuckets[b]) ++b;
  if (b < kDurationBuckets.size()) ++h.buckets[b];
  ++h.count;
  h.sum += seconds;
}

void Metrics::count_turn(const std::string& model, int64_t prompt_tokens, int64_t reused, int64_t evaluated,
                         int64_t generated, bool cancelled) {
  std::lock_guard<std::mutex> lock(mutex_);
  Tokens& t = tokens_[model];
  auto add = [](uint64_t& to, int64_t v) { to += v > 0 ? static_cast<uint64_t>(v) : 0; };
  add(t.prompt, prompt_tokens);
  add(t.reused, reused);
  add(t.evaluated, evaluated);
  add(t.generated, generated);
  ++t.turns;
  t.cancelled += cancelled;
}

void Metrics::render(std::string& out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  PromWriter w(out);
  w.family("flatline_http_requests_total", "counter", "HTTP requests answered, by route, method and status.");
  for (const auto& [key, n] : requests_) {
    const auto& [route, method, status] = key;
    w.sample("flatline_http_requests_total", {{"route", route}, {"method", method}, {"status", std::to_string(status)}},
             static_cast<double>(n));
  }
  w.family("flatline_http_request_duration_seconds", "histogram",
           "Time from a request's headers to the end of its response (streams included), by route.");
  for (const auto& [route, h] : durations_) {
    uint64_t cumulative = 0;
    for (size_t b = 0; b < kDurationBuckets.size(); ++b) {
      cumulative += h.buckets[b];
      w.sample("flatline_http_request_duration_seconds_bucket", {{"route", route}, {"le", prom_number(kDurationBuckets[b])}},
               static_cast<double>(cumulative));
    }
    w.sample("flatline_http_request_duration_seconds_bucket", {{"route", route}, {"le", "+Inf"}}, static_cast<double>(h.count));
    w.sample("flatline_http_request_duration_seconds_sum", {{"route", route}}, h.sum);
    w.sample("flatline_http_request_duration_seconds_count", {{"route", route}}, static_cast<double>(h.count));
  }
  struct Family {
    const char* name;
    const char* help;
    uint64_t Tokens::*field;
  };
  const Family families[] = {
      {"flatline_prompt_tokens_total", "Prompt tokens of finished generations (reused + evaluated).", &Tokens::prompt},
      {"flatline_prompt_tokens_reused_total", "Prompt tokens served from a cached conversation state.", &Tokens::reused},
      {"flatline_prompt_tokens_evaluated_total", "Prompt tokens the model evaluated (prompt_eval_count).", &Tokens::evaluated},
      {"flatline_generated_tokens_total", "Tokens generated (eval_count).", &Tokens::generated},
      {"flatline_generations_total", "Generations finished or cancelled.", &Tokens::turns},
      {"flatline_generations_cancelled_total", "Generations stopped because the client went away or the server stopped.",
       &Tokens::cancelled},
  };
  for (const Family& f : families) {
    w.family(f.name, "counter", f.help);
    for (const auto& [model, t] : tokens_) w.sample(f.name, {{"model", model}}, static_cast<double>(t.*(f.field)));
  }
}

}  // namespace flatline::server
